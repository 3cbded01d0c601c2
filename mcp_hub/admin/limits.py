"""An agent's own limits (over `[[limits.agents]]`), as the admin API, the console and `mcp-hub limits` set them."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.config.settings import AgentLimits
from mcp_hub.db.identities import IdentityStore
from mcp_hub.db.limits import LimitStore
from mcp_hub.errors import InvalidInputError

LIMIT_NAMES = ("per_agent", "per_agent_connector", "per_agent_tool", "daily_calls", "monthly_calls")


def merged_limits(own: dict[str, Any], changes: dict[str, Any], agent_name: str) -> dict[str, Any]:
    """`own` with `changes` over it (a None value drops that limit), refused (`InvalidInputError` naming the field)
    if the hub could not use it."""
    merged = {name: value for name, value in {**own, **changes}.items() if value is not None}
    try:
        AgentLimits.model_validate({**merged, "agent": agent_name})
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise InvalidInputError(f"{where}: {problem['msg']}") from None
    return merged


class LimitAdmin:
    """Read, set and clear an agent's own limits (the running hubs see them within the decision cache's bound)."""

    def __init__(self, limits: LimitStore, identities: IdentityStore, audit: AdminAudit) -> None:
        self._limits = limits
        self._identities = identities
        self._audit = audit

    async def own(self, agent_name: str) -> dict[str, Any]:
        """The agent's own limits ({} when it has none); `NotFoundError` for an unknown agent."""
        agent = await self._identities.agent_by_name(agent_name)
        return await self._limits.agent_limits(agent.id) or {}

    async def set(self, actor: Actor, agent_name: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of the agent's own limits (a None value drops one); the result is what is stored."""
        async with self._audit.change(actor, "limits.set", agent_name) as change:
            agent = await self._identities.agent_by_name(agent_name)
            merged = merged_limits(await self._limits.agent_limits(agent.id) or {}, changes, agent.name)
            await self._limits.set_agent_limits(agent.id, merged)
            change.detail = ", ".join(f"{name}={merged[name]}" for name in sorted(merged)) or "none"
            return merged

    async def clear(self, actor: Actor, agent_name: str) -> bool:
        async with self._audit.change(actor, "limits.clear", agent_name) as change:
            agent = await self._identities.agent_by_name(agent_name)
            cleared = await self._limits.clear_agent_limits(agent.id)
            change.detail = "own limits dropped" if cleared else "had no own limits"
            return cleared
