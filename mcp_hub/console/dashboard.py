"""`GET /admin`: the dashboard. Connector health and breakers (live, from this process's pool), the last hour's
calls per minute, error rate and p50/p95 latency, the busiest agents and tools (from the audit trail, through
`mcp_hub.db.dashboard`), and what waits for a decision (approvals, and definitions for review)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.approvals.service import ApprovalService
from mcp_hub.console.base import ConsolePage
from mcp_hub.console.charts import minute_chart, shares
from mcp_hub.console.connectors import connector_rows
from mcp_hub.db.dashboard import DashboardStore, Ranked
from mcp_hub.db.pins import PinStore
from mcp_hub.domain import ActionStatus, PinStatus, utc_now
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.web.sessions import WebSession

WINDOW: Final = timedelta(hours=1)
TOP: Final = 5
PENDING_SHOWN: Final = 10


def _ranking(ranked: list[Ranked]) -> list[tuple[Ranked, float]]:
    return list(zip(ranked, shares([item.calls for item in ranked]), strict=True))


class DashboardPage:
    def __init__(
        self,
        page: ConsolePage,
        dashboard: DashboardStore,
        pool: DownstreamPool,
        approvals: ApprovalService,
        pins: PinStore,
    ) -> None:
        self._page = page
        self._dashboard = dashboard
        self._pool = pool
        self._approvals = approvals
        self._pins = pins

    async def show(self, request: Request, viewer: WebSession) -> Response:
        until = utc_now().replace(second=0, microsecond=0) + timedelta(minutes=1)
        since = until - WINDOW
        traffic = await self._dashboard.traffic(since, until)
        pending = await self._approvals.list_actions([ActionStatus.PENDING], limit=PENDING_SHOWN + 1)
        waiting = [pin for pin in await self._pins.waiting() if pin.status is PinStatus.PENDING]
        context: dict[str, object] = {
            "traffic": traffic,
            "chart": minute_chart(traffic.minutes),
            "connectors": connector_rows(self._pool),
            "top_agents": _ranking(await self._dashboard.top_agents(since, TOP)),
            "top_tools": _ranking(await self._dashboard.top_tools(since, TOP)),
            "pending": pending[:PENDING_SHOWN],
            "more_pending": len(pending) > PENDING_SHOWN,
            "waiting_review": len(waiting),
        }
        return self._page.render(request, viewer, "dashboard.html", context, section="dashboard")
