"""The connectors pages and the review queue of downstream definitions (issue 11 §1-§4, issue 13 §2).

- `GET /admin/connectors`: every connector this process serves, live (state, since when, era, tools, calls
  running and queued, circuit breaker), and the ones the database remembers but no longer serves.
- `GET /admin/connectors/{id}`: one connector and the tools the catalog offers from it.
- `GET /admin/review`: what waits for an admin (and what the hub refused), from `catalog_pins`.
- `GET /admin/review/definition?name=...`: one waiting definition against the approved one, field by field
  (`mcp_hub.console.diff`), hidden characters escaped and flagged (T16, T31), with Approve and Reject
  (`POST /admin/review/decision`).
- `POST /admin/connectors` adds a connector (its file, written by `mcp_hub.admin.connectors.ConnectorAdmin`, where
  the live reload picks it up); `POST /admin/connectors/{id}/{enable|disable|remove}` (disable and remove after a
  confirmation page, `GET /admin/connectors/{id}/confirm?do=...`).

Changes go through the admin services (`ConnectorAdmin`, `CatalogReview`), audited with the signed-in admin.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.changes import Actor
from mcp_hub.admin.connectors import ConnectorAdmin
from mcp_hub.admin.review import CatalogReview
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.console.base import ConsolePage, FieldErrors, see_other
from mcp_hub.console.diff import Change, compare
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.pins import PinRecord, PinStore
from mcp_hub.domain import ConnectorId, PinStatus
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import ConflictError, HubError, InvalidInputError, NotFoundError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.sessions import WebSession

_MAX_NAME: Final = 512
CONNECTORS_PATH: Final = "/admin/connectors"
REVIEW_PATH: Final = "/admin/review"
_FORM_FIELDS: Final = ("id", "transport", "command", "args", "url", "protocol", "trust", "description")
_CONFIRMATIONS: Final = {
    "disable": (
        "Disable connector {id}?",
        "Its tools leave the catalog and calls to them fail until it is enabled again; calls in flight finish.",
        "Disable the connector",
    ),
    "remove": (
        "Remove connector {id}?",
        "Its file is deleted: its tools leave the catalog at once. Its audit history and review decisions stay.",
        "Remove the connector",
    ),
}


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
        self,
        page: ConsolePage,
        pool: DownstreamPool,
        catalog: Catalog,
        store: CatalogStore,
        pins: PinStore,
        connectors: ConnectorAdmin,
        review: CatalogReview,
    ) -> None:
        self._page = page
        self._pool = pool
        self._catalog = catalog
        self._store = store
        self._pins = pins
        self._connectors = connectors
        self._review = review

    async def index(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        served = connector_rows(self._pool)
        serving = {row.id for row in served}
        remembered = [status for status in await self._store.list_connectors() if status.id not in serving]
        waiting = await self._pins.waiting()
        context: dict[str, object] = {
            "connectors": served,
            "files": {state.id: state for state in self._connectors.list()},
            "remembered": remembered,
            "waiting_by_connector": _count_by_connector(waiting),
            "errors": errors or {},
            "values": values or {"transport": "stdio", "protocol": "auto", "trust": "review"},
            "done": request.query_params.get("done"),
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "connectors.html", context, section="connectors", status=status)

    async def add(self, request: Request, viewer: WebSession) -> Response:
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=CONNECTORS_PATH)
        values = {name: form.get(name, "").strip() for name in _FORM_FIELDS}
        errors = _spec_errors(values)
        if isinstance(errors, ConnectorSpec):
            try:
                await self._connectors.add(Actor.user(viewer.user.name), errors)
            except ConflictError:
                errors = {"id": f"A connector {values['id']!r} exists already."}
            except InvalidInputError as exc:
                errors = {"form": str(exc)}
            else:
                return see_other(f"{CONNECTORS_PATH}/{values['id']}?done=added")
        return await self.index(request, viewer, errors=errors, values=values)

    async def confirm(self, request: Request, viewer: WebSession) -> Response:
        connector_id = request.path_params["connector_id"]
        wording = _CONFIRMATIONS.get(request.query_params.get("do", ""))
        if wording is None:
            return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such action."))
        question, consequence, button = wording
        context: dict[str, object] = {
            "title": question.format(id=connector_id),
            "consequence": consequence,
            "button": button,
            "danger": True,
            "action": f"{CONNECTORS_PATH}/{connector_id}/{request.query_params['do']}",
            "fields": {},
            "back": f"{CONNECTORS_PATH}/{connector_id}",
        }
        return self._page.render(request, viewer, "confirm.html", context, section="connectors")

    async def act(self, request: Request, viewer: WebSession) -> Response:
        """`POST /admin/connectors/{id}/{enable|disable|remove}`."""
        connector_id, action = request.path_params["connector_id"], request.path_params["action"]
        back = f"{CONNECTORS_PATH}/{connector_id}"
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=back)
        actor = Actor.user(viewer.user.name)
        try:
            if action in ("enable", "disable"):
                await self._connectors.set_enabled(actor, connector_id, action == "enable")
                return see_other(f"{back}?done={action}d")
            if action == "remove":
                await self._connectors.remove(actor, connector_id)
                return see_other(f"{CONNECTORS_PATH}?done=removed")
        except HubError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=back)
        return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such action."), back=back)

    async def decide(self, request: Request, viewer: WebSession) -> Response:
        """`POST /admin/review/decision`: approve (the digest shown) or reject what waits under a name."""
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=REVIEW_PATH)
        name, decision = form.get("name", ""), form.get("decision")
        if decision not in ("approve", "reject"):
            return self._page.problem(request, viewer, Problem(400, "Bad request", "Choose Approve or Reject."))
        reason = form.get("reason", "").strip()[:500] or None
        try:
            await self._review.decide(
                Actor.user(viewer.user.name),
                name,
                approve=decision == "approve",
                sha256=form.get("sha256") or None,
                reason=reason,
            )
        except NotFoundError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=REVIEW_PATH)
        return see_other(f"{REVIEW_PATH}?done={decision}d")

    async def detail(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        connector_id = request.path_params["connector_id"]
        row = next((row for row in connector_rows(self._pool) if row.id == connector_id), None)
        try:
            state = self._connectors.get(connector_id)
        except NotFoundError:
            state = None
        if row is None and state is None:
            problem = Problem(404, "Not found", f"This hub has no connector {connector_id!r}.")
            return self._page.problem(request, viewer, problem, back=CONNECTORS_PATH)
        context: dict[str, object] = {
            "connector_id": connector_id,
            "connector": row,
            "file": state,
            "done": request.query_params.get("done"),
            "tools": self._catalog.tools.of_connector(ConnectorId(connector_id)),
            "waiting": [pin for pin in await self._pins.waiting() if pin.connector_id == connector_id],
            "errors": errors or {},
            "values": values or (_form_values(state.spec) if state is not None and state.spec else {}),
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "connector.html", context, section="connectors", status=status)

    async def edit(self, request: Request, viewer: WebSession) -> Response:
        """`POST /admin/connectors/{id}/edit`: the form's fields over the file's connector, through
        `ConnectorAdmin.replace` (the pool restarts the connector; calls in flight finish)."""
        connector_id = request.path_params["connector_id"]
        back = f"{CONNECTORS_PATH}/{connector_id}"
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=back)
        try:
            existing = self._connectors.get(connector_id).spec
        except NotFoundError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=CONNECTORS_PATH)
        if existing is None:
            refusal = Problem(409, "Refused", "The connector's file does not load: fix or replace it first.")
            return self._page.problem(request, viewer, refusal, back=back)
        values = {name: form.get(name, "").strip() for name in _FORM_FIELDS}
        values |= {"id": existing.id, "transport": existing.transport}
        checked = _spec_errors(values, existing)
        if isinstance(checked, ConnectorSpec):
            try:
                await self._connectors.replace(Actor.user(viewer.user.name), checked)
            except InvalidInputError as exc:
                checked = {"form": str(exc)}
            else:
                return see_other(f"{back}?done=edited")
        return await self.detail(request, viewer, errors=checked, values=values)

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
            "decide_path": f"{REVIEW_PATH}/decision",
        }
        return self._page.render(request, viewer, "definition.html", context, section="review")


def _spec_errors(values: dict[str, str], base: ConnectorSpec | None = None) -> ConnectorSpec | FieldErrors:
    """The connector the form describes (over `base`, the file's connector, when editing: what the form does
    not show is kept), or its errors by field (pydantic's, put next to the field they name)."""
    fields: dict[str, object] = {} if base is None else base.model_dump()
    fields |= {
        "id": values["id"],
        "transport": values["transport"],
        "protocol": values["protocol"] or "auto",
        "trust": values["trust"] or "review",
        "description": values["description"],
    }
    if values["transport"] == "stdio":
        fields["command"] = values["command"] or None
        fields["args"] = values["args"].split()
    else:
        fields["url"] = values["url"] or None
    try:
        return ConnectorSpec.model_validate(fields)
    except ValidationError as exc:
        errors: FieldErrors = {}
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else "form"
            message = str(error["msg"]).removeprefix("Value error, ")
            if where == "form" and "command" in message:
                where = "command"
            elif where == "form" and "url" in message:
                where = "url"
            errors.setdefault(where if where in _FORM_FIELDS else "form", message)
        return errors


def _form_values(spec: ConnectorSpec) -> dict[str, str]:
    """The edit form's fields of a connector file."""
    return {
        "id": spec.id,
        "transport": spec.transport,
        "command": spec.command or "",
        "args": " ".join(spec.args),
        "url": spec.url or "",
        "protocol": spec.protocol,
        "trust": spec.trust,
        "description": spec.description,
    }


def _count_by_connector(pins: list[PinRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pin in pins:
        if pin.status is PinStatus.PENDING:
            counts[pin.connector_id] = counts.get(pin.connector_id, 0) + 1
    return counts
