"""`LimitStore`: agents' own rate limits and quotas, set by an admin (`mcp-hub limits set`, issue 10 §1)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from mcp_hub.db._base import Store, rowcount
from mcp_hub.db.models import AgentLimitOverride
from mcp_hub.domain import AgentId


class LimitStore(Store):
    """Reads and writes `agent_limits`: one JSON object of overrides per agent."""

    async def agent_limits(self, agent_id: AgentId) -> dict[str, Any] | None:
        async with self._reads() as session:
            row = await session.get(AgentLimitOverride, agent_id)
        return dict(row.limits) if row is not None else None

    async def set_agent_limits(self, agent_id: AgentId, limits: dict[str, Any]) -> None:
        async with self._writes.begin() as session:
            row = await session.get(AgentLimitOverride, agent_id)
            if row is None:
                session.add(AgentLimitOverride(agent_id=agent_id, limits=limits, updated_at=self._clock()))
            else:
                row.limits = limits
                row.updated_at = self._clock()

    async def clear_agent_limits(self, agent_id: AgentId) -> bool:
        async with self._writes.begin() as session:
            result = await session.execute(delete(AgentLimitOverride).where(AgentLimitOverride.agent_id == agent_id))
        return rowcount(result) > 0
