"""The approver's pages and JSON API (issue 4 §4-§5): inbox, detail, decision, live updates.

Pages (all behind a web session of a user with role `approver` or `admin`; otherwise to `/login?next=...`):
- `GET /approvals`: the pending actions, newest first, with agent, tool, age and time left, then the latest
  decisions; `GET /approvals/history`: the decided actions.
- `GET /approvals/{id}`: who asks (agent, on behalf of whom, the agent's owner), the tool and its
  description, the full arguments (long strings folded in `<details>`), rules and approvers, expiry with a
  live countdown, and the Approve / Deny form (disabled, with the reason, when `may_decide` refuses).
- `POST /approvals/{id}/decision`: the form (CSRF token, same-origin) → 303 back to the detail page;
  403 when this user may not decide (separation of duties, T20), 409 when it was already decided.
- `GET /approvals/events`: `text/event-stream`; an `action` event (`{"id", "status"}`) whenever an action
  changes. Changes made by this process wake the stream at once (`ApprovalService.on_change`); the store is
  also polled every `POLL_SECONDS`, so decisions made by the CLI or by another replica appear too.
- `GET /approvals/live`: the inbox's tables alone, which `/approvals/static/inbox.js` fetches on each event.

The pages' CSP is the web pages' policy plus `script-src 'self'; connect-src 'self'`: the one script is
served by the hub itself, nothing inline, and it may only talk to the hub.

JSON API (same session cookie; `X-CSRF-Token` header on POST, the token from the `X-CSRF-Token` response
header of any GET; `Content-Type: application/json` so no HTML form can send it):
- `GET /api/approvals?status=pending|decided|all|<status>`, `GET /api/approvals/{id}`,
- `POST /api/approvals/{id}/decision` with `{"decision": "approve"|"deny", "reason": ...}`;
errors as `{"error": ..., "message": ...}` with 400/401/403/404/409/415.

An approval link in a notification is never pre-authenticated (T22): it is only this page's address.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, cast

import anyio
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute

from mcp_hub.approvals.feed import ActionFeed
from mcp_hub.approvals.presentation import INBOX_PATH, action_json, duration, iso_seconds
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.bodies import read_form, read_json_object
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.db.identities import IdentityStore
from mcp_hub.domain import ALL_STATUSES, APPROVER_ROLES, DECIDED_STATUSES, ActionStatus
from mcp_hub.errors import ApprovalError, InvalidInputError
from mcp_hub.web.errors import TITLES, api_error, api_error_for, status_and_code
from mcp_hub.web.login import login_url, logout_form
from mcp_hub.web.pages import PAGE_FORM, Html, content_security_policy, html, page_response, page_route
from mcp_hub.web.sessions import WebSession, WebSessions

API_PATH: Final = "/api/approvals"
SCRIPT_PATH: Final = "/approvals/static/inbox.js"
CSRF_HEADER: Final = "X-CSRF-Token"
POLL_SECONDS: Final = 2.0
"""How often an event stream looks at the database for changes made by other processes."""
STREAM_SECONDS: Final = 300.0
"""An event stream ends after this long and the browser reconnects (a stream is never open for good)."""
_PING_SECONDS: Final = 15.0
_FOLD_AT: Final = 120
_PREVIEW: Final = 60
_MAX_DEPTH: Final = 12
_MAX_JSON_BYTES: Final = 16 * 1024
_INBOX_LIMIT: Final = 100
_HISTORY_LIMIT: Final = 200
_SCRIPT: Final = r"""// mcp-hub approvals: the live inbox and countdowns (served by the hub; no inline script).
"use strict";
(function () {
  function format(ms) {
    var total = Math.floor(ms / 1000), h = Math.floor(total / 3600), m = Math.floor((total % 3600) / 60);
    var s = total % 60;
    if (h) { return h + " h " + m + " min"; }
    if (m) { return m + " min " + s + " s"; }
    return s + " s";
  }
  function tick() {
    document.querySelectorAll("time[data-countdown]").forEach(function (el) {
      var ms = Date.parse(el.getAttribute("datetime")) - Date.now();
      el.textContent = ms > 0 ? format(ms) : "expired";
    });
  }
  tick();
  window.setInterval(tick, 1000);
  var live = document.getElementById("live");
  var status = document.getElementById("live-status");
  var decision = document.querySelector("section[data-action-id]");
  if (!window.EventSource || (!live && !decision)) { return; }
  var loading = false, again = false;
  function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    var focused = document.activeElement && live.contains(document.activeElement)
      ? document.activeElement.getAttribute("href") : null;
    live.setAttribute("aria-busy", "true");
    fetch(live.getAttribute("data-src"), { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error(String(response.status)); }
        var count = response.headers.get("x-pending-count");
        return response.text().then(function (text) {
          live.innerHTML = text;
          tick();
          if (focused) {
            var target = live.querySelector('a[href="' + focused + '"]');
            if (target) { target.focus(); }
          }
          if (status && count !== null) { status.textContent = count + " waiting. This list updates by itself."; }
        });
      })
      .catch(function () { if (status) { status.textContent = "Could not refresh the list; reload the page."; } })
      .finally(function () {
        live.removeAttribute("aria-busy");
        loading = false;
        if (again) { again = false; refresh(); }
      });
  }
  var source = new EventSource("/approvals/events");
  // What changed between drawing this page and (re)connecting is in no event: fetch the list once then.
  source.addEventListener("open", function () { if (live) { refresh(); } });
  source.addEventListener("action", function (event) {
    var data = JSON.parse(event.data);
    if (live) { refresh(); }
    if (decision && data.id === decision.getAttribute("data-action-id") && data.status !== "pending") {
      var shown = document.getElementById("action-status");
      if (shown) { shown.textContent = data.status; }
      var fields = document.getElementById("decision-fields");
      if (fields) { fields.disabled = true; }
      if (status) { status.textContent = "This action is now " + data.status + ". Reload to see the details."; }
    }
  });
  source.addEventListener("signed-out", function () { source.close(); window.location.reload(); });
})();
"""
_DONE_MESSAGES: Final = {"approved": "You approved this action.", "denied": "You denied this action."}

_STYLE: Final = """
main { max-width: 60rem; }
header.bar { display: flex; flex-wrap: wrap; align-items: center; gap: 0 1rem; }
header.bar form .actions button { margin-top: 0; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 1rem; padding: 0; margin: 0; }
table { width: 100%; border-collapse: collapse; margin: 1rem 0; }
caption { text-align: left; font-weight: 600; padding: 0.25rem 0; }
th, td { text-align: left; padding: 0.4rem 0.5rem; border-bottom: 1px solid #8884; vertical-align: top;
  overflow-wrap: anywhere; }
a:focus-visible, button:focus-visible, textarea:focus-visible, summary:focus-visible, input:focus-visible {
  outline: 3px solid #1565c0; outline-offset: 2px; }
textarea { display: block; width: 100%; box-sizing: border-box; font-size: 1rem; padding: 0.5rem; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; margin: 0.25rem 0; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1rem; }
dl.facts dt { font-weight: 600; }
dl.facts dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
dl.json { margin: 0; padding-left: 1rem; border-left: 2px solid #8884; }
dl.json dd { margin: 0 0 0.25rem 1rem; min-width: 0; }
ol.json { margin: 0; padding-left: 2rem; }
fieldset { border: 1px solid #8886; padding: 0.75rem; min-width: 0; }
.status { border-left: 0.25rem solid #2e7d32; padding: 0.5rem 0.75rem; }
.note { border-left: 0.25rem solid #ef6c00; padding: 0.5rem 0.75rem; }
.hint { font-size: 0.9rem; }
@media (max-width: 40rem) {
  body { padding: 0.5rem; }
  main { margin: 0.5rem auto; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 0.5rem; }
  table.action-list thead { position: absolute; width: 1px; height: 1px; overflow: hidden;
    clip-path: inset(50%); }
  table.action-list, table.action-list tbody, table.action-list tr, table.action-list td { display: block; }
  table.action-list caption { display: block; text-align: left; }
  table.action-list tr { border-bottom: 1px solid #8884; padding: 0.5rem 0; }
  table.action-list td { border: 0; padding: 0.1rem 0; }
  table.action-list td::before { content: attr(data-label) ": "; font-weight: 600; }
}
"""


def page_csp() -> str:
    """The web pages' policy, plus the hub's own script and its requests back to the hub."""
    return content_security_policy() + "; script-src 'self'; connect-src 'self'"


def _now() -> datetime:
    return datetime.now(UTC)


def _countdown(action: ActionRecord, now: datetime) -> Html:
    if action.status is not ActionStatus.PENDING:
        return html("{status}", status=action.status)
    left = (action.expires_at - now).total_seconds()
    return html(
        '<time datetime="{at}" data-countdown>{left}</time>',
        at=iso_seconds(action.expires_at),
        left=duration(left) if left > 0 else "expired",
    )


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_value(value: object, depth: int = 0) -> Html:
    """JSON as nested lists for reading: keys as terms, long strings folded in `<details>`."""
    if depth >= _MAX_DEPTH:
        return html("<pre>{text}</pre>", text=json.dumps(value, ensure_ascii=False, indent=2))
    if isinstance(value, str):
        if len(value) > _FOLD_AT or "\n" in value:
            return html(
                "<details><summary><code>{preview}</code> "
                '<span class="hint">({count} characters: show all)</span></summary><pre>{full}</pre></details>',
                preview=_json_text(value[:_PREVIEW])[:-1] + '…"',
                count=len(value),
                full=value,
            )
        return html("<code>{text}</code>", text=_json_text(value))
    if isinstance(value, Mapping):
        mapping = cast("Mapping[str, object]", value)
        if not mapping:
            return Html("<code>{}</code>")
        items = [
            html("<dt><code>{key}</code></dt><dd>{value}</dd>", key=str(key), value=render_value(item, depth + 1))
            for key, item in mapping.items()
        ]
        return html('<dl class="json">{items}</dl>', items=items)
    if isinstance(value, list):
        elements = cast("list[object]", value)
        if not elements:
            return Html("<code>[]</code>")
        rendered = [html("<li>{value}</li>", value=render_value(item, depth + 1)) for item in elements]
        return html('<ol class="json" start="0">{items}</ol>', items=rendered)
    return html("<code>{text}</code>", text=_json_text(value))


def _header(session: WebSession) -> Html:
    return html(
        '<style>{style}</style>\n<header class="bar">\n'
        '<nav aria-label="Approvals"><ul><li><a href="{inbox}">Inbox</a></li>'
        '<li><a href="{inbox}/history">History</a></li></ul></nav>\n'
        "<p>Signed in as <strong>{name}</strong> ({role})</p>\n{logout}\n</header>\n",
        style=Html(_STYLE),
        inbox=INBOX_PATH,
        name=session.user.name,
        role=session.user.role,
        logout=logout_form(session),
    )


def _page(title: str, session: WebSession, body: Html, *, status: int = 200, script: bool = False) -> HTMLResponse:
    tail = html('\n<script src="{src}" defer></script>', src=SCRIPT_PATH) if script else Html("")
    response = page_response(title, html("{header}{body}{tail}", header=_header(session), body=body, tail=tail))
    response.status_code = status
    response.headers["content-security-policy"] = page_csp()
    return response


def _actions_table(caption: str, actions: Sequence[ActionRecord], now: datetime, *, decided: bool) -> Html:
    if not actions:
        return html('<p class="empty">{text}</p>', text="Nothing is waiting." if not decided else "No decisions yet.")
    last = "Decision" if decided else "Time left"
    rows: list[Html] = []
    for action in actions:
        if decided:
            outcome = action.status + (f" by {action.decided_by}" if action.decided_by else "")
            last_cell = html("{outcome}", outcome=outcome)
        else:
            last_cell = _countdown(action, now)
        rows.append(
            html(
                '<tr data-action-id="{id}">'
                '<td data-label="Tool"><a href="{inbox}/{id}">{tool}</a></td>'
                '<td data-label="Agent">{agent}</td>'
                '<td data-label="Asked"><time datetime="{created}">{age} ago</time></td>'
                '<td data-label="{last}">{last_cell}</td></tr>',
                id=action.id,
                inbox=INBOX_PATH,
                tool=action.public_name,
                agent=action.agent_name,
                created=iso_seconds(action.created_at),
                age=duration((now - action.created_at).total_seconds()),
                last=last,
                last_cell=last_cell,
            )
        )
    return html(
        '<table class="action-list"><caption>{caption}</caption>\n<thead><tr><th scope="col">Tool</th>'
        '<th scope="col">Agent</th><th scope="col">Asked</th><th scope="col">{last}</th></tr></thead>\n'
        "<tbody>{rows}</tbody></table>",
        caption=caption,
        last=last,
        rows=rows,
    )


def _statuses(value: str | None) -> tuple[ActionStatus, ...] | None:
    if value in (None, "", ActionStatus.PENDING):
        return (ActionStatus.PENDING,)
    if value == "decided":
        return DECIDED_STATUSES
    if value == "all":
        return ALL_STATUSES
    return (ActionStatus(value),) if value in ALL_STATUSES else None


class ApprovalPages:
    """The routes of this module over one `ApprovalService` and the hub's web sessions."""

    def __init__(
        self, service: ApprovalService, identities: IdentityStore, sessions: WebSessions, feed: ActionFeed
    ) -> None:
        self._service = service
        self._identities = identities
        self._sessions = sessions
        self._feed = feed

    def routes(self) -> list[BaseRoute]:
        return [
            page_route(SCRIPT_PATH, self.script, methods=["GET"]),
            page_route(INBOX_PATH, self.inbox, methods=["GET"]),
            page_route(f"{INBOX_PATH}/history", self.history, methods=["GET"]),
            page_route(f"{INBOX_PATH}/live", self.live, methods=["GET"]),
            page_route(f"{INBOX_PATH}/events", self.events, methods=["GET"]),
            page_route(INBOX_PATH + "/{action_id}", self.detail, methods=["GET"]),
            page_route(INBOX_PATH + "/{action_id}/decision", self.decide_form, methods=["POST"]),
            page_route(API_PATH, self.api_list, methods=["GET"]),
            page_route(API_PATH + "/{action_id}", self.api_show, methods=["GET"]),
            page_route(API_PATH + "/{action_id}/decision", self.api_decide, methods=["POST"]),
        ]

    # --- who is asking ---------------------------------------------------------------------------------

    async def _viewer(self, request: Request) -> WebSession | Response:
        """The approver's session, or the redirect to sign in, or a 403 page for other roles."""
        session = await self._sessions.current(request)
        if session is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(login_url(target), status_code=303)
        if session.user.role not in APPROVER_ROLES:
            return self._message(session, "Not an approver", "Only approvers and admins see approvals.", 403)
        return session

    async def _api_viewer(self, request: Request) -> WebSession | Response:
        session = await self._sessions.current(request)
        if session is None:
            return api_error(401, "unauthenticated", "sign in at /login first; the API uses the web session")
        if session.user.role not in APPROVER_ROLES:
            return api_error(403, "forbidden", "only approvers and admins see approvals")
        return session

    def _message(self, session: WebSession, title: str, message: str, status: int, back: str | None = None) -> Response:
        link = html('<p><a href="{back}">Back to the action</a></p>', back=back) if back else Html("")
        body = html('<h1>{title}</h1>\n<p role="alert">{message}</p>\n{link}', title=title, message=message, link=link)
        return _page(title, session, body, status=status)

    # --- pages -------------------------------------------------------------------------------------------

    async def script(self, _request: Request) -> Response:
        return Response(_SCRIPT, media_type="text/javascript")

    async def _live_html(self) -> tuple[Html, int]:
        now = _now()
        pending = await self._service.list_actions([ActionStatus.PENDING], limit=_INBOX_LIMIT)
        decided = await self._service.list_actions(DECIDED_STATUSES, limit=10)
        body = html(
            "{pending}\n<h2>Latest decisions</h2>\n{decided}",
            pending=_actions_table(f"Pending actions, newest first ({len(pending)})", pending, now, decided=False),
            decided=_actions_table("The latest decisions, newest first", decided, now, decided=True),
        )
        return body, len(pending)

    async def inbox(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        live, count = await self._live_html()
        body = html(
            "<h1>Approvals</h1>\n"
            '<p id="live-status" role="status" aria-live="polite" class="hint">{count} waiting. '
            "This list updates by itself.</p>\n"
            '<section aria-labelledby="pending-heading">\n<h2 id="pending-heading">Waiting for a decision</h2>\n'
            '<div id="live" data-src="{src}">{live}</div>\n</section>\n'
            '<p><a href="{inbox}/history">All decided actions</a></p>',
            count=count,
            src=f"{INBOX_PATH}/live",
            live=live,
            inbox=INBOX_PATH,
        )
        return _page("Approvals", viewer, body, script=True)

    async def live(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        live, count = await self._live_html()
        return HTMLResponse(live.text, headers={"content-security-policy": page_csp(), "x-pending-count": str(count)})

    async def history(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        decided = await self._service.list_actions(DECIDED_STATUSES, limit=_HISTORY_LIMIT)
        body = html(
            "<h1>Decided actions</h1>\n{table}",
            table=_actions_table(f"The latest {len(decided)} decided actions", decided, _now(), decided=True),
        )
        return _page("Decided actions", viewer, body)

    async def detail(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        action_id = request.path_params["action_id"]
        action = await self._service.get(action_id)
        if action is None:
            return self._message(viewer, "Not found", f"There is no action {action_id}.", 404)
        agent = await self._identities.agent_by_id(action.agent_id)
        owner = await self._identities.user_by_id(agent.owner_user_id) if agent and agent.owner_user_id else None
        on_behalf = await self._identities.user_by_id(action.user_id) if action.user_id else None
        why_not = self._service.may_decide(action, viewer.user, agent.owner_user_id if agent else None)
        done = _DONE_MESSAGES.get(request.query_params.get("done", ""))
        now = _now()
        facts = html(
            '<dl class="facts">'
            '<dt>Status</dt><dd><strong id="action-status">{status}</strong></dd>'
            "<dt>Agent</dt><dd>{agent}{owner}</dd>"
            "<dt>On behalf of</dt><dd>{user}</dd>"
            "<dt>Tool</dt><dd><code>{tool}</code> (connector <code>{connector}</code>, "
            "its name there <code>{downstream}</code>)</dd>"
            "<dt>Description</dt><dd>{description}</dd>"
            "<dt>Rules</dt><dd>{rules}</dd>"
            "<dt>Approvers</dt><dd>{approvers}</dd>"
            '<dt>Asked</dt><dd><time datetime="{created}">{created}</time> ({age} ago)</dd>'
            '<dt>Expires</dt><dd><time datetime="{expires}">{expires}</time> (time left: {left})</dd>'
            "{decided}"
            "</dl>",
            status=action.status,
            agent=action.agent_name,
            owner=html(" (owned by {name})", name=owner.name) if owner else Html(""),
            user=on_behalf.name if on_behalf else "nobody: the agent acts for itself",
            tool=action.public_name,
            connector=action.connector_id,
            downstream=action.downstream_name,
            description=action.description or "(none)",
            rules=", ".join(action.rules),
            approvers=", ".join(action.approvers),
            created=iso_seconds(action.created_at),
            age=duration((now - action.created_at).total_seconds()),
            expires=iso_seconds(action.expires_at),
            left=_countdown(action, now),
            decided=self._decided_facts(action),
        )
        body = html(
            "<h1>Approve <code>{tool}</code> for {agent}?</h1>\n{done}"
            '<p id="live-status" role="status" aria-live="polite" class="hint"></p>\n'
            "{facts}\n"
            '<section aria-labelledby="arguments-heading">\n<h2 id="arguments-heading">Arguments</h2>\n{arguments}\n'
            "<details><summary>The arguments as JSON</summary><pre>{raw}</pre></details>\n</section>\n"
            "{form}",
            tool=action.public_name,
            agent=action.agent_name,
            done=html('<p class="status" role="status">{message}</p>\n', message=done) if done else Html(""),
            facts=facts,
            arguments=render_value(action.arguments),
            raw=json.dumps(action.arguments, ensure_ascii=False, indent=2),
            form=self._decision_form(action, viewer, why_not),
        )
        return _page(action.public_name, viewer, body, script=True)

    def _decided_facts(self, action: ActionRecord) -> Html:
        if action.decided_at is None:
            return Html("")
        return html(
            '<dt>Decided</dt><dd>{status} by {by} at <time datetime="{at}">{at}</time></dd>'
            "<dt>Reason</dt><dd>{reason}</dd>{outcome}",
            status=action.status,
            by=action.decided_by or "the hub",
            at=iso_seconds(action.decided_at),
            reason=action.reason or "(none given)",
            outcome=self._outcome_facts(action),
        )

    @staticmethod
    def _outcome_facts(action: ActionRecord) -> Html:
        """What the approved call returned, so the approver sees what their approval did."""
        if action.result is None or action.completed_at is None:
            return Html("")
        return html(
            '<dt>Result</dt><dd>{kind} at <time datetime="{at}">{at}</time>{content}</dd>',
            kind="a tool error" if action.result.get("isError") else "returned",
            at=iso_seconds(action.completed_at),
            content=render_value(action.result.get("content", [])),
        )

    def _decision_form(self, action: ActionRecord, viewer: WebSession, why_not: str | None) -> Html:
        if action.status is not ActionStatus.PENDING:
            why_not = f"this action is {action.status}: decisions are final"
        note = (
            html('<p class="note" id="why-not">You cannot decide this action: {why}.</p>\n', why=why_not)
            if why_not
            else Html("")
        )
        return html(
            '<section aria-labelledby="decide-heading" data-action-id="{id}">\n'
            '<h2 id="decide-heading">Decision</h2>\n{note}'
            '<form method="post" action="{inbox}/{id}/decision">\n'
            '<input type="hidden" name="csrf" value="{csrf}">\n'
            '<fieldset id="decision-fields"{disabled}>\n<legend>Approve or deny</legend>\n'
            '<label for="reason">Reason (optional; the agent sees it)</label>\n'
            '<textarea id="reason" name="reason" rows="3" maxlength="2000"></textarea>\n'
            '<div class="actions"><button type="submit" name="decision" value="approve">Approve</button>'
            '<button type="submit" name="decision" value="deny">Deny</button></div>\n'
            "</fieldset>\n</form>\n</section>",
            id=action.id,
            note=note,
            inbox=INBOX_PATH,
            csrf=viewer.csrf_token,
            disabled=Html(' disabled aria-describedby="why-not"') if why_not else Html(""),
        )

    async def decide_form(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        action_id = request.path_params["action_id"]
        back = f"{INBOX_PATH}/{action_id}"
        if not self._sessions.same_origin(request):
            return self._message(viewer, "Refused", "This form was sent from another site.", 403, back)
        try:
            form = (await read_form(request, PAGE_FORM)).as_dict()
        except InvalidInputError as exc:
            return self._message(viewer, "Bad request", str(exc), 400, back)
        if not viewer.csrf_ok(form.get("csrf")):
            return self._message(viewer, "Refused", "This form has expired. Reload the page and try again.", 403, back)
        decision = form.get("decision")
        if decision not in ("approve", "deny"):
            return self._message(viewer, "Bad request", "Choose Approve or Deny.", 400, back)
        try:
            action = await self._service.decide(action_id, viewer.user, decision == "approve", form.get("reason"))
        except ApprovalError as exc:
            status, _ = status_and_code(exc, api=False)
            return self._message(viewer, TITLES.get(status, "Refused"), str(exc), status, back)
        return RedirectResponse(f"{back}?done={action.status}", status_code=303)

    # --- live updates ------------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        viewer = await self._viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        # Look before the response starts: the browser fetches the list when the stream opens, so every
        # change after this snapshot must become an event, or one made between that fetch and a later
        # snapshot would never reach the page.
        wake = self._feed.next_change()
        seen = await self._snapshot()
        return StreamingResponse(
            self._stream(request, wake, seen),
            media_type="text/event-stream",
            headers={"content-security-policy": page_csp(), "x-accel-buffering": "no"},
        )

    async def _snapshot(self) -> dict[str, str]:
        return {action.id: action.status for action in await self._service.list_actions(ALL_STATUSES, limit=500)}

    async def _stream(self, request: Request, wake: anyio.Event, seen: dict[str, str]) -> AsyncIterator[str]:
        yield f"retry: {int(POLL_SECONDS * 1000)}\n\n"
        started = last_sent = anyio.current_time()
        while anyio.current_time() - started < STREAM_SECONDS:
            with anyio.move_on_after(POLL_SECONDS):
                await wake.wait()
            wake = self._feed.next_change()
            if await self._sessions.current(request) is None:
                yield "event: signed-out\ndata: {}\n\n"
                return
            now_seen = await self._snapshot()
            changed = [(key, status) for key, status in now_seen.items() if seen.get(key) != status]
            seen = now_seen
            for action_id, status in changed:
                yield f"event: action\ndata: {json.dumps({'id': action_id, 'status': status})}\n\n"
                last_sent = anyio.current_time()
            if anyio.current_time() - last_sent >= _PING_SECONDS:
                yield ": ping\n\n"
                last_sent = anyio.current_time()

    # --- JSON API ------------------------------------------------------------------------------------------

    def _with_csrf(self, response: JSONResponse, session: WebSession) -> JSONResponse:
        response.headers[CSRF_HEADER] = session.csrf_token
        return response

    async def api_list(self, request: Request) -> Response:
        viewer = await self._api_viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        statuses = _statuses(request.query_params.get("status"))
        if statuses is None:
            return api_error(400, "invalid_request", f"status must be pending, decided, all or one of {ALL_STATUSES}")
        actions = await self._service.list_actions(statuses, limit=_HISTORY_LIMIT)
        body = {"actions": [action_json(a, full=False, link=self._service.link(a.id)) for a in actions]}
        return self._with_csrf(JSONResponse(body), viewer)

    async def api_show(self, request: Request) -> Response:
        viewer = await self._api_viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
        action_id = request.path_params["action_id"]
        action = await self._service.get(action_id)
        if action is None:
            return api_error(404, "not_found", f"no action {action_id!r}")
        why_not = self._service.may_decide(action, viewer.user, await self._service.agent_owner(action))
        body = action_json(action, full=True, link=self._service.link(action.id))
        body["you_may_decide"] = why_not is None and action.status is ActionStatus.PENDING
        body["why_not"] = why_not
        return self._with_csrf(JSONResponse(body), viewer)

    async def api_decide(self, request: Request) -> Response:
        viewer = await self._api_viewer(request)
        if not isinstance(viewer, WebSession):
            return viewer
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
            return api_error(400, "invalid_request", 'decision must be "approve" or "deny"')
        if reason is not None and not isinstance(reason, str):
            return api_error(400, "invalid_request", "reason must be a string")
        try:
            action = await self._service.decide(
                request.path_params["action_id"], viewer.user, decision == "approve", reason
            )
        except ApprovalError as exc:
            return api_error_for(exc)
        return JSONResponse(action_json(action, full=False, link=self._service.link(action.id)))
