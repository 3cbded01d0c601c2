"""The approvals JSON API, over the approver's web session (the shapes are `mcp_hub.approvals.presentation`).

- `GET /api/approvals?status=pending|decided|all|<status>` → `{"actions": [...]}`;
- `GET /api/approvals/{id}` → the action with its arguments, `you_may_decide` and `why_not`, and what the page
  says: `decision`, `run` and `expiry` (sentences, `mcp_hub.approvals.states`), `why` (each rule that held it and
  what matched, as recorded then), `why_recorded` and `rules_changed` (how the rules as they read now differ:
  `mcp_hub.approvals.reasons`);
- `POST /api/approvals/{id}/decision` with `{"decision": "approve"|"deny", "reason": ...}` → the action.

Every GET answer carries the session's CSRF token in `X-CSRF-Token`; a POST must send it back in that header,
as `Content-Type: application/json` (which no HTML form can send), from the hub's origin. Errors are
`{"error": ..., "message": ...}` (`mcp_hub.web.errors`): 400, 401, 403 (`forbidden`, or `csrf`), 404, 409, 415.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mcp_hub.approvals.presentation import action_json, why_json
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.approvals.states import tell
from mcp_hub.bodies import read_json_object
from mcp_hub.domain import ALL_STATUSES, DECIDED_STATUSES, ActionStatus
from mcp_hub.errors import ActionNotFoundError, ApprovalError, InvalidInputError, InvalidRequestError
from mcp_hub.web.errors import api_error, api_error_for
from mcp_hub.web.sessions import CSRF_HEADER, LOGIN_PATH, WebSession, WebSessions

API_PATH: Final = "/api/approvals"
LIST_LIMIT: Final = 200
_MAX_JSON_BYTES: Final = 16 * 1024


def _statuses(value: str | None) -> tuple[ActionStatus, ...] | None:
    if value in (None, "", ActionStatus.PENDING):
        return (ActionStatus.PENDING,)
    if value == "decided":
        return DECIDED_STATUSES
    if value == "all":
        return ALL_STATUSES
    return (ActionStatus(value),) if value in ALL_STATUSES else None


class ApiRefusals:
    """The API turns away a request without a session with 401, other roles with 403."""

    def signed_out(self, request: Request) -> Response:
        del request
        return api_error(401, "unauthenticated", f"sign in at {LOGIN_PATH} first; the API uses the web session")

    def wrong_role(self, request: Request, viewer: WebSession) -> Response:
        del request, viewer
        return api_error(403, "forbidden", "only approvers and admins see approvals")


class ApprovalApi:
    """The endpoints of the API; each takes the approver's session (`mcp_hub.web.access.RequireRole`)."""

    def __init__(self, service: ApprovalService, sessions: WebSessions) -> None:
        self._service = service
        self._sessions = sessions

    def _with_csrf(self, body: dict[str, object], viewer: WebSession) -> JSONResponse:
        return JSONResponse(body, headers={CSRF_HEADER: viewer.csrf_token})

    async def list_actions(self, request: Request, viewer: WebSession) -> Response:
        statuses = _statuses(request.query_params.get("status"))
        if statuses is None:
            return api_error_for(InvalidRequestError(f"status must be pending, decided, all or one of {ALL_STATUSES}"))
        actions = await self._service.list_actions(statuses, limit=LIST_LIMIT)
        listed = [action_json(action, full=False, link=self._service.link(action.id)) for action in actions]
        return self._with_csrf({"actions": listed}, viewer)

    async def show(self, request: Request, viewer: WebSession) -> Response:
        action_id = request.path_params["action_id"]
        action = await self._service.get(action_id)
        if action is None:
            return api_error_for(ActionNotFoundError(f"no action {action_id!r}"))
        why_not = self._service.may_decide(action, viewer.user, await self._service.agent_owner(action))
        body = action_json(action, full=True, link=self._service.link(action.id))
        body["you_may_decide"] = why_not is None and action.status is ActionStatus.PENDING
        body["why_not"] = why_not
        # What the page says (issue 13 §3): the decision and the run apart, and why it was held.
        told = tell(action, datetime.now(UTC), self._service.settings.pending_ttl_seconds)
        body["decision"], body["run"], body["expiry"] = told.decision, told.run, told.expiry
        body |= why_json(self._service.briefing(action).why)
        return self._with_csrf(body, viewer)

    async def decide(self, request: Request, viewer: WebSession) -> Response:
        if not self._sessions.same_origin(request):
            return api_error(403, "forbidden", "cross-site request refused")
        if not viewer.csrf_ok(request.headers.get(CSRF_HEADER)):
            return api_error(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
        try:
            fields = await read_json_object(request, _MAX_JSON_BYTES)
        except InvalidInputError as exc:
            return api_error_for(exc)
        decision, reason = fields.get("decision"), fields.get("reason")
        if decision not in ("approve", "deny"):
            return api_error_for(InvalidRequestError('decision must be "approve" or "deny"'))
        if reason is not None and not isinstance(reason, str):
            return api_error_for(InvalidRequestError("reason must be a string"))
        try:
            action = await self._service.decide(
                request.path_params["action_id"], viewer.user, decision == "approve", reason
            )
        except ApprovalError as exc:
            return api_error_for(exc)
        return JSONResponse(action_json(action, full=False, link=self._service.link(action.id)))
