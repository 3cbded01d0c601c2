"""`/admin/api/connectors`, `/admin/api/catalog/review`, `/admin/api/virtual-servers`, `/admin/api/approval-rules`.

Connectors are files (`connectors/<id>.toml`) that the live reload picks up (`mcp_hub.admin.connectors`): the body
of an add or edit is a connector file's fields as JSON (the same model, `ConnectorSpec`). Virtual servers and
approval rules are configuration files too, shown here and changed by editing them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_hub.admin.connectors import ConnectorState, shown
from mcp_hub.admin.services import AdminServices
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import ApprovalRule
from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.db.pins import PinRecord
from mcp_hub.domain import PinStatus
from mcp_hub.errors import InvalidInputError, NotFoundError
from mcp_hub.web.admin_api.framework import Call, ListQuery, NoQuery, Operation, page


class ConnectorHealth(BaseModel):
    state: str
    since: datetime
    era: str | None
    tools: int
    detail: str | None
    attempts: int


class ConnectorOut(BaseModel):
    id: str
    config: dict[str, Any] | None = Field(
        description="the file's fields; env and header values other than ${NAME} masked"
    )
    file_error: str | None = Field(description="why the file does not load (the running connector keeps its old one)")
    health: ConnectorHealth | None = Field(description="null: not running in this process")
    calls: dict[str, Any] | None = Field(description="calls running and queued, and the circuit breaker")


def connector_out(state: ConnectorState) -> ConnectorOut:
    return ConnectorOut(
        id=state.id,
        config=shown(state.spec) if state.spec is not None else None,
        file_error=state.file_error,
        health=ConnectorHealth.model_validate(state.health) if state.health is not None else None,
        calls=dict(state.calls) if state.calls is not None else None,
    )


class ConnectorList(BaseModel):
    items: list[ConnectorOut]
    next: str | None


class PinOut(BaseModel):
    name: str
    kind: str
    connector: str
    downstream_name: str
    status: PinStatus
    sha256: str
    flags: list[str]
    first_seen: datetime
    last_seen: datetime
    decided_by: str | None
    reason: str | None
    definition: dict[str, Any]


def pin_out(record: PinRecord) -> PinOut:
    return PinOut(
        name=record.public_name,
        kind=record.kind,
        connector=record.connector_id,
        downstream_name=record.name,
        status=record.status,
        sha256=record.sha256,
        flags=list(record.flags),
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        decided_by=record.decided_by,
        reason=record.reason,
        definition=record.definition,
    )


class PinList(BaseModel):
    items: list[PinOut]


class PinPage(BaseModel):
    items: list[PinOut]
    next: str | None


PublicName = Annotated[str, Field(min_length=1, max_length=300)]


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PublicName


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: PublicName = Field(description="the public name (or URI) that waits")
    sha256: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{4,64}$")] | None = Field(
        default=None, description="approve this digest (a prefix of it) rather than the newest"
    )
    reason: Annotated[str, Field(max_length=500)] | None = None


class VirtualServerList(BaseModel):
    items: list[VirtualServerSpec]


class ApprovalRuleList(BaseModel):
    items: list[ApprovalRule]
    editable: bool = Field(description="false: the rules are [[approvals.rules]] in config.toml; edit the file")


def operations(services: AdminServices) -> list[Operation]:
    connectors, review = services.connectors, services.review

    async def list_connectors(call: Call) -> ConnectorList:
        items, next_key = page(connectors.list(), lambda state: state.id, call.query)
        return ConnectorList(items=[connector_out(state) for state in items], next=next_key)

    async def get_connector(call: Call) -> ConnectorOut:
        return connector_out(connectors.get(call.path["id"]))

    async def add_connector(call: Call) -> ConnectorOut:
        spec: ConnectorSpec = call.body
        await connectors.add(call.actor, spec)
        return connector_out(connectors.get(spec.id))

    async def edit_connector(call: Call) -> ConnectorOut:
        spec: ConnectorSpec = call.body
        if spec.id != call.path["id"]:
            raise InvalidInputError(f"the body's id {spec.id!r} is not the path's {call.path['id']!r}")
        await connectors.replace(call.actor, spec)
        return connector_out(connectors.get(spec.id))

    async def enable_connector(call: Call) -> ConnectorOut:
        spec = await connectors.set_enabled(call.actor, call.path["id"], True)
        return connector_out(connectors.get(spec.id))

    async def disable_connector(call: Call) -> ConnectorOut:
        spec = await connectors.set_enabled(call.actor, call.path["id"], False)
        return connector_out(connectors.get(spec.id))

    async def remove_connector(call: Call) -> None:
        await connectors.remove(call.actor, call.path["id"])

    async def review_queue(call: Call) -> PinList:
        del call
        return PinList(items=[pin_out(record) for record in await review.waiting()])

    async def list_pins(call: Call) -> PinPage:
        items, next_key = page(await review.pins(), lambda record: record.public_name, call.query)
        return PinPage(items=[pin_out(record) for record in items], next=next_key)

    async def definition_history(call: Call) -> PinList:
        query: HistoryQuery = call.query
        return PinList(items=[pin_out(record) for record in await review.history(query.name)])

    async def approve_definition(call: Call) -> PinList:
        body: Decision = call.body
        decided = await review.decide(call.actor, body.name, approve=True, sha256=body.sha256, reason=body.reason)
        return PinList(items=[pin_out(record) for record in decided])

    async def reject_definition(call: Call) -> PinList:
        body: Decision = call.body
        decided = await review.decide(call.actor, body.name, approve=False, sha256=body.sha256, reason=body.reason)
        return PinList(items=[pin_out(record) for record in decided])

    async def list_virtual_servers(call: Call) -> VirtualServerList:
        del call
        return VirtualServerList(items=list(services.virtual_servers()))

    async def get_virtual_server(call: Call) -> VirtualServerSpec:
        for spec in services.virtual_servers():
            if spec.name == call.path["name"]:
                return spec
        raise NotFoundError(f"no virtual server {call.path['name']!r}")

    async def list_approval_rules(call: Call) -> ApprovalRuleList:
        del call
        return ApprovalRuleList(items=list(services.approval_rules), editable=False)

    one = "/connectors/{id}"
    return [
        Operation(
            "GET",
            "/connectors",
            list_connectors,
            "Connectors with health",
            "connectors",
            ConnectorList,
            query=ListQuery,
        ),
        Operation(
            "POST",
            "/connectors",
            add_connector,
            "Add a connector (a new connectors/<id>.toml)",
            "connectors",
            ConnectorOut,
            body=ConnectorSpec,
            status=201,
            errors=(409,),
        ),
        Operation("GET", one, get_connector, "One connector", "connectors", ConnectorOut, errors=(404,)),
        Operation(
            "PUT",
            one,
            edit_connector,
            "Replace a connector's file",
            "connectors",
            ConnectorOut,
            body=ConnectorSpec,
            errors=(404,),
        ),
        Operation(
            "POST",
            one + "/enable",
            enable_connector,
            "Enable a connector",
            "connectors",
            ConnectorOut,
            errors=(404, 409),
        ),
        Operation(
            "POST",
            one + "/disable",
            disable_connector,
            "Disable a connector",
            "connectors",
            ConnectorOut,
            errors=(404, 409),
        ),
        Operation(
            "DELETE", one, remove_connector, "Remove a connector's file", "connectors", None, status=204, errors=(404,)
        ),
        Operation(
            "GET", "/catalog/pins", list_pins, "Approved definitions (pins)", "catalog", PinPage, query=ListQuery
        ),
        Operation("GET", "/catalog/review", review_queue, "Definitions waiting for review", "catalog", PinList),
        Operation(
            "GET",
            "/catalog/history",
            definition_history,
            "Every definition seen under a name",
            "catalog",
            PinList,
            query=HistoryQuery,
            errors=(404,),
        ),
        Operation(
            "POST",
            "/catalog/review/approve",
            approve_definition,
            "Approve a waiting definition",
            "catalog",
            PinList,
            body=Decision,
            errors=(404,),
        ),
        Operation(
            "POST",
            "/catalog/review/reject",
            reject_definition,
            "Reject what waits under a name",
            "catalog",
            PinList,
            body=Decision,
            errors=(404,),
        ),
        Operation(
            "GET", "/virtual-servers", list_virtual_servers, "Virtual servers", "virtual servers", VirtualServerList
        ),
        Operation(
            "GET",
            "/virtual-servers/{name}",
            get_virtual_server,
            "One virtual server",
            "virtual servers",
            VirtualServerSpec,
            errors=(404,),
        ),
        Operation(
            "GET",
            "/approval-rules",
            list_approval_rules,
            "Approval rules (read-only: config.toml)",
            "approval rules",
            ApprovalRuleList,
            query=NoQuery,
        ),
    ]
