"""The approver's pages: the inbox and its live tables, the history, an action's page and its decision form.

Templates `approvals/inbox.html`, `live.html`, `history.html`, `detail.html` (in the layout `approvals/
layout.html`) and `message.html` for refusals; CSP `SCRIPTED_CSP`, since the inbox and the detail page run the
hub's script (`/static/approvals.js`: countdowns, and the live list it fetches from `/approvals/live`).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_hub.approvals.presentation import INBOX_PATH
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.approvals.states import tell
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.identities import IdentityStore
from mcp_hub.domain import DECIDED_STATUSES, ActionStatus, utc_now
from mcp_hub.errors import ActionNotFoundError, ApprovalError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.pages import SCRIPTED_CSP, Pages, read_viewers_form
from mcp_hub.web.sessions import WebSession, WebSessions

PENDING_LIMIT: Final = 100
LATEST_DECISIONS: Final = 10
HISTORY_LIMIT: Final = 200
AGENT_HISTORY: Final = 10
"""How many of the agent's latest audit rows an action's page shows."""
NOT_AN_APPROVER: Final = Problem(403, "Not an approver", "Only approvers and admins see approvals.")
_CHOOSE: Final = Problem(400, "Bad request", "Choose Approve or Deny.")
_DONE_MESSAGES: Final = {"approved": "You approved this action.", "denied": "You denied this action."}


class ApprovalPages:
    """The endpoints of the pages; each takes the approver's session (`mcp_hub.web.access.RequireRole`)."""

    def __init__(
        self,
        service: ApprovalService,
        identities: IdentityStore,
        audit: AuditStore,
        sessions: WebSessions,
        pages: Pages,
    ) -> None:
        self._service = service
        self._identities = identities
        self._audit = audit
        self._sessions = sessions
        self._pages = pages

    def _render(self, request: Request, viewer: WebSession, template: str, context: dict[str, object]) -> Response:
        return self._pages.render(request, template, {**context, "viewer": viewer}, csp=SCRIPTED_CSP)

    def _problem(self, request: Request, viewer: WebSession, problem: Problem, back: str | None = None) -> Response:
        return self._pages.problem(request, problem, csp=SCRIPTED_CSP, viewer=viewer, back=back)

    async def _lists(self) -> tuple[list[ActionRecord], list[ActionRecord]]:
        """What waits for a decision (newest first), and the latest decisions."""
        pending = await self._service.list_actions([ActionStatus.PENDING], limit=PENDING_LIMIT)
        return pending, await self._service.list_actions(DECIDED_STATUSES, limit=LATEST_DECISIONS)

    async def inbox(self, request: Request, viewer: WebSession) -> Response:
        """`GET /approvals`: what waits for a decision, newest first, then the latest decisions."""
        pending, decided = await self._lists()
        context: dict[str, object] = {"now": utc_now(), "pending": pending, "decided": decided}
        return self._render(request, viewer, "approvals/inbox.html", context)

    async def live(self, request: Request, viewer: WebSession) -> Response:
        """`GET /approvals/live`: the inbox's tables alone, with the number waiting in `X-Pending-Count`."""
        del viewer
        pending, decided = await self._lists()
        return self._pages.render(
            request,
            "approvals/live.html",
            {"now": utc_now(), "pending": pending, "decided": decided},
            csp=SCRIPTED_CSP,
            headers={"x-pending-count": str(len(pending))},
        )

    async def history(self, request: Request, viewer: WebSession) -> Response:
        """`GET /approvals/history`: the decided actions, newest first."""
        decided = await self._service.list_actions(DECIDED_STATUSES, limit=HISTORY_LIMIT)
        return self._render(request, viewer, "approvals/history.html", {"now": utc_now(), "decided": decided})

    async def detail(self, request: Request, viewer: WebSession) -> Response:
        """`GET /approvals/{id}`: everything about one action; the decision form while it is pending."""
        action_id = request.path_params["action_id"]
        action = await self._service.get(action_id)
        if action is None:
            return self._problem(request, viewer, problem_for(ActionNotFoundError(f"There is no action {action_id}.")))
        owner_id = await self._service.agent_owner(action)
        pending = action.status is ActionStatus.PENDING
        now = utc_now()
        told = tell(action, now, self._service.settings.pending_ttl_seconds)
        done = request.query_params.get("done", "")
        mine = action.decided_by == viewer.user.name and told.verdict == done
        context: dict[str, object] = {
            "action": action,
            "now": now,
            "pending": pending,
            "told": told,
            "briefing": self._service.briefing(action),
            "recent": await self._audit.recent_of_agent(action.agent_name, AGENT_HISTORY),
            "owner": await self._identities.user_by_id(owner_id) if owner_id else None,
            "on_behalf": await self._identities.user_by_id(action.user_id) if action.user_id else None,
            # Only while it can be decided: a decided action's page has no form, so nothing to explain.
            "why_not": self._service.may_decide(action, viewer.user, owner_id) if pending else None,
            # The confirmation after this viewer's own decision, only while it is the page's truth.
            "done": _DONE_MESSAGES.get(done) if mine else None,
        }
        return self._render(request, viewer, "approvals/detail.html", context)

    async def decide(self, request: Request, viewer: WebSession) -> Response:
        """`POST /approvals/{id}/decision`: the form (same origin, CSRF token) → 303 back to the action's page."""
        action_id = request.path_params["action_id"]
        back = f"{INBOX_PATH}/{action_id}"
        form = await read_viewers_form(request, viewer, same_origin=self._sessions.same_origin(request))
        if isinstance(form, Problem):
            return self._problem(request, viewer, form, back)
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            return self._problem(request, viewer, _CHOOSE, back)
        try:
            action = await self._service.decide(action_id, viewer.user, decision == "approve", form.get("reason"))
        except ApprovalError as exc:
            return self._problem(request, viewer, problem_for(exc), back)
        return RedirectResponse(f"{back}?done={action.status}", status_code=303)
