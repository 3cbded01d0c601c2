"""`/admin/api/audit` (filtered pages), `/admin/api/audit/export` (JSON lines), `/admin/api/usage` (per agent and
UTC day), over the audit query layer (`mcp_hub.db.audit_query`, through `mcp_hub.admin.audit_log`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from starlette.responses import StreamingResponse

from mcp_hub.admin.services import AdminServices
from mcp_hub.db.audit_query import (
    MAX_PAGE,
    AuditFilter,
    AuditRecord,
    Order,
    UsageDay,
    json_line,
    parse_outcome,
    parse_time,
)
from mcp_hub.domain import AuditOutcome
from mcp_hub.web.admin_api.framework import Call, Operation

Text = Annotated[str, Field(min_length=1, max_length=300)]


def _time(value: object) -> object:
    return parse_time(value) if isinstance(value, str) else value


FilterTime = Annotated[datetime, BeforeValidator(_time), Field(description="ISO 8601; UTC when it has no offset")]
"""A filter time read as the CLI and the console read it (`audit_query.parse_time`)."""
JSON_LINES = "application/x-ndjson"


class AuditQuery(BaseModel):
    """Which rows: every parameter optional, all must hold."""

    model_config = ConfigDict(extra="forbid")

    agent: Text | None = Field(default=None, description="an agent's name (its calls for itself and for users)")
    tool: Text | None = Field(default=None, description="a public tool or prompt name, or resource URI")
    connector: Text | None = None
    outcome: Annotated[str, Field(max_length=1000)] | None = Field(
        default=None, description="one outcome or several, comma-separated (ok,tool_error,...)"
    )
    method: Text | None = Field(default=None, description="tools/call, prompts/get, admin/agents.create, ...")
    since: FilterTime | None = Field(default=None, description="inclusive")
    until: FilterTime | None = Field(default=None, description="exclusive")

    @field_validator("outcome")
    @classmethod
    def _known_outcomes(cls, value: str | None) -> str | None:
        if value is not None:
            for item in value.split(","):
                parse_outcome(item)  # the one reading of an outcome (InvalidInputError is a ValueError)
        return value

    def audit_filter(self) -> AuditFilter:
        outcomes = tuple(AuditOutcome(item) for item in self.outcome.split(",")) if self.outcome else ()
        return AuditFilter(
            agent=self.agent,
            tool=self.tool,
            connector=self.connector,
            outcomes=outcomes,
            method=self.method,
            since=self.since,
            until=self.until,
        )


class AuditPageQuery(AuditQuery):
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: Annotated[str, Field(min_length=1, max_length=40)] | None = Field(
        default=None, description="a previous page's `next`"
    )
    order: Order = Order.NEWEST_FIRST


class UsageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: Text | None = None
    since: FilterTime | None = None
    until: FilterTime | None = None


class AuditRecordOut(BaseModel):
    id: int
    at: datetime
    client: str
    session: str | None
    public_name: str
    connector_id: str | None
    downstream_name: str | None
    outcome: AuditOutcome
    latency_ms: float
    downstream_ms: float | None
    detail: str | None
    method: str
    prev_hash: str
    row_hash: str


def record_out(record: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut.model_validate(record.to_json())


class AuditList(BaseModel):
    items: list[AuditRecordOut]
    next: str | None


class UsageDayOut(BaseModel):
    day: date
    agent: str
    calls: int
    errors: int
    """Calls that failed at the tool, the downstream or the hub (as the dashboard counts them)."""
    refused: int
    """Calls the hub turned away: unknown names, grants, limits, loops."""
    downstream_ms: float
    approvals_requested: int
    approvals_approved: int
    approvals_denied: int
    approvals_expired: int
    outcomes: dict[str, int]


def usage_out(day: UsageDay) -> UsageDayOut:
    return UsageDayOut.model_validate(day.to_json())


class UsageList(BaseModel):
    items: list[UsageDayOut]


def operations(services: AdminServices) -> list[Operation]:
    log = services.audit_log

    async def list_audit(call: Call) -> AuditList:
        query: AuditPageQuery = call.query
        found = await log.page(query.audit_filter(), cursor=query.cursor, limit=query.limit, order=query.order)
        return AuditList(items=[record_out(record) for record in found.records], next=found.next_cursor)

    async def export_audit(call: Call) -> StreamingResponse:
        query: AuditQuery = call.query
        records = log.export(call.actor, query.audit_filter())
        first = await anext(records, None)  # the export's own audit row is written before the first byte

        async def lines() -> AsyncIterator[bytes]:
            if first is not None:
                yield json_line(first)
            async for record in records:
                yield json_line(record)

        return StreamingResponse(lines(), media_type=JSON_LINES)

    async def usage(call: Call) -> UsageList:
        query: UsageQuery = call.query
        days = await log.usage(AuditFilter(agent=query.agent, since=query.since, until=query.until))
        return UsageList(items=[usage_out(day) for day in days])

    return [
        Operation(
            "GET", "/audit", list_audit, "Audit records, filtered and paged", "audit", AuditList, query=AuditPageQuery
        ),
        Operation(
            "GET",
            "/audit/export",
            export_audit,
            "Every matching record as JSON lines (oldest first)",
            "audit",
            AuditRecordOut,
            query=AuditQuery,
            media_type=JSON_LINES,
        ),
        Operation(
            "GET",
            "/usage",
            usage,
            "Calls, errors, downstream time and approvals per agent per UTC day",
            "audit",
            UsageList,
            query=UsageQuery,
        ),
    ]
