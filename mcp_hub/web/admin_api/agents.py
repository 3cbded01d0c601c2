"""`/admin/api/agents`: agents, their grants, their effective tools and their own limits."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mcp_hub.admin.services import AdminServices
from mcp_hub.authz import scopes
from mcp_hub.config.settings import Rate
from mcp_hub.db.identities import AgentRecord
from mcp_hub.domain import AgentSource, ClientAuthMethod
from mcp_hub.web.admin_api.framework import Call, ListQuery, Operation, page

Name = Annotated[
    str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="1-64 lowercase letters, digits, _ . -")
]
GrantPattern = Annotated[
    str,
    Field(min_length=1, max_length=250, description="tool:<glob>, prompt:<glob>, resource:<glob>, or admin:api"),
    AfterValidator(scopes.validate_pattern),
]


class AgentOut(BaseModel):
    name: str
    client_id: str
    kind: Literal["confidential", "public", "key"]
    source: AgentSource
    enabled: bool
    owner_user_id: str | None
    redirect_uris: list[str]
    created_at: datetime


def agent_out(agent: AgentRecord) -> AgentOut:
    kind: Literal["confidential", "public", "key"] = (
        "public"
        if agent.auth_method is ClientAuthMethod.NONE
        else "key"
        if agent.auth_method is ClientAuthMethod.PRIVATE_KEY_JWT
        else "confidential"
    )
    return AgentOut(
        name=agent.name,
        client_id=agent.client_id,
        kind=kind,
        source=agent.source,
        enabled=agent.enabled,
        owner_user_id=agent.owner_user_id,
        redirect_uris=list(agent.redirect_uris),
        created_at=agent.created_at,
    )


class AgentList(BaseModel):
    items: list[AgentOut]
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    grants: list[GrantPattern] = Field(default_factory=list[str], max_length=100)
    public: bool = Field(default=False, description="a public client (authorization code + PKCE), no secret")
    redirect_uris: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list[str], max_length=10
    )
    owner: Name | None = Field(default=None, description="the user responsible, who may never approve its actions")


class AgentCreated(BaseModel):
    agent: AgentOut
    client_secret: str | None = Field(description="shown this once; the hub keeps only its SHA-256")
    grants: list[str]


class AgentSecret(BaseModel):
    client_secret: str = Field(description="shown this once; the old secret no longer works")


class Grants(BaseModel):
    grants: list[str]


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: GrantPattern


class GrantChange(BaseModel):
    pattern: str
    changed: bool = Field(description="false: it was already granted (or, revoking, was not granted)")


class Effective(BaseModel):
    tools: list[str]
    prompts: list[str]


class RevokeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: GrantPattern


class AgentLimitsOut(BaseModel):
    agent: str
    own: dict[str, Any] = Field(description="the agent's own limits over [[limits.agents]] ({}: none)")


class AgentLimitsIn(BaseModel):
    """The limits to change; a field set to null drops that limit, a field left out keeps it."""

    model_config = ConfigDict(extra="forbid")

    per_agent: Rate | None = None
    per_agent_connector: Rate | None = None
    per_agent_tool: Rate | None = None
    daily_calls: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    monthly_calls: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None


def operations(services: AdminServices) -> list[Operation]:
    agents, limits = services.agents, services.limits

    async def list_agents(call: Call) -> AgentList:
        items, next_key = page(await agents.list(), lambda agent: agent.name, call.query)
        return AgentList(items=[agent_out(agent) for agent in items], next=next_key)

    async def create_agent(call: Call) -> AgentCreated:
        body: AgentCreate = call.body
        created = await agents.create(
            call.actor, body.name, body.grants, public=body.public, redirect_uris=body.redirect_uris, owner=body.owner
        )
        return AgentCreated(
            agent=agent_out(created.agent), client_secret=created.client_secret, grants=list(created.grants)
        )

    async def get_agent(call: Call) -> AgentOut:
        return agent_out(await agents.get(call.path["name"]))

    async def delete_agent(call: Call) -> None:
        await agents.delete(call.actor, call.path["name"])

    async def disable_agent(call: Call) -> AgentOut:
        return agent_out(await agents.set_enabled(call.actor, call.path["name"], False))

    async def enable_agent(call: Call) -> AgentOut:
        return agent_out(await agents.set_enabled(call.actor, call.path["name"], True))

    async def rotate_agent_secret(call: Call) -> AgentSecret:
        return AgentSecret(client_secret=await agents.rotate_secret(call.actor, call.path["name"]))

    async def list_grants(call: Call) -> Grants:
        return Grants(grants=await agents.grants(call.path["name"]))

    async def add_grant(call: Call) -> GrantChange:
        body: GrantIn = call.body
        return GrantChange(
            pattern=body.pattern, changed=await agents.grant(call.actor, call.path["name"], body.pattern)
        )

    async def revoke_grant(call: Call) -> GrantChange:
        query: RevokeQuery = call.query
        removed = await agents.revoke(call.actor, call.path["name"], query.pattern)
        return GrantChange(pattern=query.pattern, changed=removed)

    async def effective_tools(call: Call) -> Effective:
        allowed = await agents.effective(call.path["name"])
        return Effective(
            tools=[name for kind, name in allowed if kind == "tool"],
            prompts=[name for kind, name in allowed if kind == "prompt"],
        )

    async def get_limits(call: Call) -> AgentLimitsOut:
        name = call.path["name"]
        return AgentLimitsOut(agent=name, own=await limits.own(name))

    async def set_limits(call: Call) -> AgentLimitsOut:
        body: AgentLimitsIn = call.body
        changes = body.model_dump(mode="json", include=body.model_fields_set)
        name = call.path["name"]
        return AgentLimitsOut(agent=name, own=await limits.set(call.actor, name, changes))

    async def clear_limits(call: Call) -> None:
        await limits.clear(call.actor, call.path["name"])

    one = "/agents/{name}"
    return [
        Operation("GET", "/agents", list_agents, "List agents", "agents", AgentList, query=ListQuery),
        Operation(
            "POST",
            "/agents",
            create_agent,
            "Create an agent (its secret shown once)",
            "agents",
            AgentCreated,
            body=AgentCreate,
            status=201,
            errors=(404, 409),
        ),
        Operation("GET", one, get_agent, "One agent", "agents", AgentOut, errors=(404,)),
        Operation("DELETE", one, delete_agent, "Delete an agent", "agents", None, status=204, errors=(404,)),
        Operation("POST", one + "/disable", disable_agent, "Disable an agent", "agents", AgentOut, errors=(404,)),
        Operation("POST", one + "/enable", enable_agent, "Enable an agent", "agents", AgentOut, errors=(404,)),
        Operation(
            "POST",
            one + "/rotate-secret",
            rotate_agent_secret,
            "A new client secret (shown once)",
            "agents",
            AgentSecret,
            errors=(404,),
        ),
        Operation("GET", one + "/grants", list_grants, "The agent's grants", "grants", Grants, errors=(404,)),
        Operation(
            "POST", one + "/grants", add_grant, "Grant a pattern", "grants", GrantChange, body=GrantIn, errors=(404,)
        ),
        Operation(
            "DELETE",
            one + "/grants",
            revoke_grant,
            "Revoke a pattern (?pattern=...)",
            "grants",
            GrantChange,
            query=RevokeQuery,
            errors=(404,),
        ),
        Operation(
            "GET",
            one + "/effective",
            effective_tools,
            "What the grants allow in the catalog now",
            "grants",
            Effective,
            errors=(404,),
        ),
        Operation(
            "GET", one + "/limits", get_limits, "The agent's own limits", "limits", AgentLimitsOut, errors=(404,)
        ),
        Operation(
            "PATCH",
            one + "/limits",
            set_limits,
            "Change the agent's own limits",
            "limits",
            AgentLimitsOut,
            body=AgentLimitsIn,
            errors=(404,),
        ),
        Operation(
            "DELETE",
            one + "/limits",
            clear_limits,
            "Drop the agent's own limits",
            "limits",
            None,
            status=204,
            errors=(404,),
        ),
    ]
