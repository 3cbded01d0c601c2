"""The approver's pages, JSON API and live updates (issue 4 §4-§5; docs/approvals.md).

Every route is for a web session of a user with role `approver` or `admin` (`mcp_hub.domain.APPROVER_ROLES`),
checked once by `mcp_hub.web.access.RequireRole`: pages send anyone else to `/login?next=...` (or show a user of
another role a 403 page), the API answers 401 / 403.

- `pages`: `GET /approvals` (the inbox: pending actions, newest first, with agent, tool, age and time left,
  then the latest decisions), `GET /approvals/live` (its tables alone, which `/static/approvals.js` fetches on
  each event), `GET /approvals/history`, `GET /approvals/{id}` (pending: who asks, the tool, every argument in
  full, why it was held (as recorded then, and how the rules differ now), the tool's annotations as the server's
  claims, risk cues, the agent's owner and last calls, the expiry explained, and the Approve / Deny form, disabled
  with the reason when `may_decide` refuses;
  decided: the decision and the run stated apart (`mcp_hub.approvals.states`), the result, no question, no form), and
  `POST /approvals/{id}/decision` (the form: CSRF token, same origin → 303 back; 403 when this user may not
  decide (separation of duties, T20), 409 when it was already decided).
- `events`: `GET /approvals/events`, server-sent events of the actions' changes.
- `api`: `/api/approvals`, the same over JSON.

The pages' CSP is the web pages' policy plus `script-src 'self'; connect-src 'self'` (`SCRIPTED_CSP`): the one
script is served by the hub itself, nothing inline, and it may only talk to the hub.

An approval link in a notification is never pre-authenticated (T22): it is only the action page's address.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from mcp_hub.approvals.feed import ActionFeed
from mcp_hub.approvals.presentation import INBOX_PATH
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.identities import IdentityStore
from mcp_hub.domain import APPROVER_ROLES
from mcp_hub.web.access import RequireRole
from mcp_hub.web.approvals.api import API_PATH, ApiRefusals, ApprovalApi
from mcp_hub.web.approvals.events import EVENTS_PATH, ActionEvents
from mcp_hub.web.approvals.pages import NOT_AN_APPROVER, ApprovalPages
from mcp_hub.web.pages import SCRIPTED_CSP, PageRefusals, Pages, page_route
from mcp_hub.web.sessions import WebSessions


def approval_routes(
    service: ApprovalService,
    identities: IdentityStore,
    audit: AuditStore,
    sessions: WebSessions,
    feed: ActionFeed,
    pages: Pages,
    *,
    max_streams_per_session: int,
) -> list[BaseRoute]:
    """The routes of the pages, the event stream and the API, each behind the approver check."""
    page = RequireRole(sessions, APPROVER_ROLES, PageRefusals(pages, NOT_AN_APPROVER, csp=SCRIPTED_CSP))
    api = RequireRole(sessions, APPROVER_ROLES, ApiRefusals())
    views = ApprovalPages(service, identities, audit, sessions, pages)
    events = ActionEvents(service, sessions, feed, max_streams_per_session=max_streams_per_session)
    json_api = ApprovalApi(service, sessions)
    return [
        page_route(INBOX_PATH, page(views.inbox), methods=["GET"]),
        page_route(f"{INBOX_PATH}/history", page(views.history), methods=["GET"]),
        page_route(f"{INBOX_PATH}/live", page(views.live), methods=["GET"]),
        page_route(EVENTS_PATH, page(events.stream), methods=["GET"]),
        page_route(INBOX_PATH + "/{action_id}", page(views.detail), methods=["GET"]),
        page_route(INBOX_PATH + "/{action_id}/decision", page(views.decide), methods=["POST"]),
        page_route(API_PATH, api(json_api.list_actions), methods=["GET"]),
        page_route(API_PATH + "/{action_id}", api(json_api.show), methods=["GET"]),
        page_route(API_PATH + "/{action_id}/decision", api(json_api.decide), methods=["POST"]),
    ]
