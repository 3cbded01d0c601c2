"""The connectors pages and the review queue of downstream definitions (issue 11 §1-§4, issue 13 §2).

- `GET /admin/connectors`: every connector this process serves, live (state, since when, era, tools, calls
  running and queued, circuit breaker), and the ones the database remembers but no longer serves.
- `GET /admin/connectors/{id}`: one connector and the tools the catalog offers from it.
- `GET /admin/review`: what waits for an admin (and what the hub refused), from `catalog_pins`.
- `GET /admin/review/definition?name=...`: one waiting definition against the approved one, field by field
  (`mcp_hub.console.diff`), hidden characters escaped and flagged (T16, T31), with Approve and Reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.console.base import ConsolePage
from mcp_hub.console.diff import Change, compare
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.pins import PinRecord, PinStore
from mcp_hub.domain import ConnectorId, PinStatus
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.web.errors import Problem
from mcp_hub.web.sessions import WebSession

_MAX_NAME: Final = 512


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    """A served connector as the pages show it."""

    id: str
    state: str
    since: datetime
    detail: str | None
    era: str | None
    tools: int
    running: int
    queued: int
    breaker: str
    retry_in_seconds: float | None


def connector_rows(pool: DownstreamPool) -> list[ConnectorRow]:
    """Every connector this process serves, by id, with its live health and breaker."""
    calls = pool.calls()
    rows: list[ConnectorRow] = []
    for connector_id, health in pool.health().items():
        report: dict[str, Any] = calls.get(connector_id, {})
        breaker: dict[str, Any] = report.get("breaker", {})
        rows.append(
            ConnectorRow(
                id=connector_id,
                state=health.state.value,
                since=health.since,
                detail=health.detail,
                era=health.era,
                tools=health.tool_count,
                running=int(report.get("running", 0)),
                queued=int(report.get("queued", 0)),
                breaker=str(breaker.get("state", "closed")),
                retry_in_seconds=breaker.get("retry_in_seconds"),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A waiting definition and the pin it would replace (None: a new name)."""

    waiting: PinRecord
    approved: PinRecord | None

    @property
    def is_change(self) -> bool:
        return self.approved is not None


def review_item(history: list[PinRecord], waiting: PinRecord) -> ReviewItem:
    """`waiting` with the approved definition of its name (or the last one approved, when it was superseded)."""
    same_name = [pin for pin in history if pin.connector_id == waiting.connector_id and pin.kind == waiting.kind]
    approved = next((pin for pin in same_name if pin.status is PinStatus.APPROVED), None)
    if approved is None:
        superseded = [pin for pin in same_name if pin.status is PinStatus.SUPERSEDED]
        approved = superseded[-1] if superseded else None
    return ReviewItem(waiting=waiting, approved=approved)


class ConnectorPages:
    def __init__(
        self, page: ConsolePage, pool: DownstreamPool, catalog: Catalog, store: CatalogStore, pins: PinStore
    ) -> None:
        self._page = page
        self._pool = pool
        self._catalog = catalog
        self._store = store
        self._pins = pins

    async def index(self, request: Request, viewer: WebSession) -> Response:
        served = connector_rows(self._pool)
        serving = {row.id for row in served}
        remembered = [status for status in await self._store.list_connectors() if status.id not in serving]
        waiting = await self._pins.waiting()
        context: dict[str, object] = {
            "connectors": served,
            "remembered": remembered,
            "waiting_by_connector": _count_by_connector(waiting),
        }
        return self._page.render(request, viewer, "connectors.html", context, section="connectors")

    async def detail(self, request: Request, viewer: WebSession) -> Response:
        connector_id = request.path_params["connector_id"]
        row = next((row for row in connector_rows(self._pool) if row.id == connector_id), None)
        if row is None:
            problem = Problem(404, "Not found", f"This hub serves no connector {connector_id!r}.")
            return self._page.problem(request, viewer, problem, back="/admin/connectors")
        context: dict[str, object] = {
            "connector": row,
            "tools": self._catalog.tools.of_connector(ConnectorId(connector_id)),
            "waiting": [pin for pin in await self._pins.waiting() if pin.connector_id == connector_id],
        }
        return self._page.render(request, viewer, "connector.html", context, section="connectors")

    async def review(self, request: Request, viewer: WebSession) -> Response:
        waiting = await self._pins.waiting()
        context: dict[str, object] = {
            "waiting": [pin for pin in waiting if pin.status is PinStatus.PENDING],
            "refused": [pin for pin in waiting if pin.status is PinStatus.REFUSED],
            "done": request.query_params.get("done"),
        }
        return self._page.render(request, viewer, "review.html", context, section="review")

    async def definition(self, request: Request, viewer: WebSession) -> Response:
        name = request.query_params.get("name", "")[:_MAX_NAME]
        history = await self._pins.history(name) if name else []
        waiting = [pin for pin in history if pin.status in (PinStatus.PENDING, PinStatus.REFUSED)]
        if not waiting:
            problem = Problem(404, "Not found", f"Nothing waits for review under {name!r}.")
            return self._page.problem(request, viewer, problem, back="/admin/review")
        items = [review_item(history, pin) for pin in reversed(waiting)]
        context: dict[str, object] = {
            "name": name,
            "items": [
                (item, compare(item.approved.definition if item.approved else None, item.waiting.definition))
                for item in items
            ],
            "Change": Change,
            "decide_path": None,
        }
        return self._page.render(request, viewer, "definition.html", context, section="review")


def _count_by_connector(pins: list[PinRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pin in pins:
        if pin.status is PinStatus.PENDING:
            counts[pin.connector_id] = counts.get(pin.connector_id, 0) + 1
    return counts
