"""The pages of the authorization endpoint, `/oauth/authorize`: sign-in first, then the consent page (threat T06).

The protocol (checking the request, keeping it while the user decides, issuing the code, the redirect back)
is `mcp_hub.authz.authorization`; this module is what the user sees. `GET` shows an error page when the client
or redirect URI is wrong (never a redirect), sends errors of the rest of the request back to the client, sends
a browser that is not signed in to `/login?next=<this request>`, and otherwise shows the consent page: the
client's name and id, the host it will be sent back to, and the scopes the token would carry, with Approve and
Deny. The form carries a single-use consent id and the session's CSRF token; the page may not be framed.

`POST` (the user's decision) checks the origin and CSRF token, consumes the consent id (a replay gets an
error page), and redirects (303) to the redirect URI with either a single-use authorization code or
`error=access_denied`; always with `state` and `iss`.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mcp_hub.authz.authorization import MAX_STATE_LENGTH, AuthorizationRequests
from mcp_hub.authz.urls import AUTHORIZE_PATH
from mcp_hub.db.identities import AgentRecord
from mcp_hub.errors import OAuthError
from mcp_hub.web.login import login_url, logout_form
from mcp_hub.web.pages import FORM_ACTION_SELF, Html, html, message_page, page_response, page_route, read_own_form
from mcp_hub.web.sessions import WebSession, WebSessions

_CSP_HOST: Final = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_CSP_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")


def _form_action(redirect_uri: str) -> str:
    """The CSP `form-action` of the consent page: the hub, and the redirect URI the decision redirects to."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https") and parts.hostname and _CSP_HOST.match(parts.netloc.rpartition("@")[2]):
        return f"{FORM_ACTION_SELF} {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if parts.scheme not in ("http", "https") and _CSP_SCHEME.match(parts.scheme):
        return f"{FORM_ACTION_SELF} {parts.scheme}:"  # a native app's private-use scheme (RFC 8252 §7.1)
    return FORM_ACTION_SELF


def _redirect_host(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    return parts.netloc.rpartition("@")[2] or f"{parts.scheme}: (an app on this device)"


def _consent_page(
    session: WebSession, agent: AgentRecord, redirect_uri: str, granted: list[str], consent_id: str
) -> Html:
    items = [html("<li><code>{scope}</code></li>", scope=scope) for scope in granted]
    return html(
        "<h1>Allow {client} to use mcp-hub?</h1>\n"
        "<p><strong>{client}</strong> (client id <code>{client_id}</code>) asks to use mcp-hub on your behalf,"
        " as <strong>{user}</strong>.</p>\n"
        "<p>If you allow it, it will be sent back to <strong>{host}</strong> and may call these tools:</p>\n"
        '<ul aria-label="Scopes">{items}</ul>\n'
        "<p>It will never get more than your own grants allow. Only allow applications you started yourself.</p>\n"
        '<form method="post" action="{action}">\n'
        '<input type="hidden" name="consent" value="{consent}">\n'
        '<input type="hidden" name="csrf" value="{csrf}">\n'
        '<div class="actions">'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</div>\n</form>\n<footer>Not {user}? {logout}</footer>",
        client=agent.display_name or agent.name,
        client_id=agent.client_id,
        user=session.user.name,
        host=_redirect_host(redirect_uri),
        items=items,
        action=AUTHORIZE_PATH,
        consent=consent_id,
        csrf=session.csrf_token,
        logout=logout_form(session),
    )


class ConsentPages:
    """`GET` and `POST /oauth/authorize`."""

    def __init__(self, requests: AuthorizationRequests, sessions: WebSessions) -> None:
        self._requests = requests
        self._sessions = sessions

    def routes(self) -> list[BaseRoute]:
        return [
            page_route(AUTHORIZE_PATH, self._ask, methods=["GET"]),
            page_route(AUTHORIZE_PATH, self._decide, methods=["POST"]),
        ]

    async def _ask(self, request: Request) -> Response:
        requests = self._requests
        try:
            params = requests.parse_query(request.url.query)
            agent, redirect_uri = await requests.client_and_redirect(params)
        except OAuthError as exc:
            return message_page("Cannot continue", exc.description, status=400)
        state = params.get("state")
        try:
            wanted = requests.rest_of_request(agent, redirect_uri, params)
        except OAuthError as exc:
            kept_state = state if state and len(state) <= MAX_STATE_LENGTH else None
            return RedirectResponse(requests.error_to_client(redirect_uri, exc, kept_state), status_code=303)

        session = await self._sessions.current(request)
        if session is None:
            return RedirectResponse(login_url(f"{AUTHORIZE_PATH}?{request.url.query}"), status_code=303)
        try:
            granted = await requests.scopes_for(agent, session.user.id, wanted.scope)
        except OAuthError as exc:
            return RedirectResponse(requests.error_to_client(redirect_uri, exc, wanted.state), status_code=303)
        consent_id = await requests.open_consent(wanted, session.user.id, granted)
        return page_response(
            "Allow access",
            _consent_page(session, agent, redirect_uri, granted, consent_id),
            form_action=_form_action(redirect_uri),
        )

    async def _decide(self, request: Request) -> Response:
        requests = self._requests
        form = await read_own_form(request, same_origin=self._sessions.same_origin(request))
        if not isinstance(form, dict):
            return form
        session = await self._sessions.current(request)
        if session is None:
            return message_page("Signed out", "Your session has ended. Start again from the application.", status=403)
        if not session.csrf_ok(form.get("csrf")):
            return message_page("Refused", "This form has expired. Start again from the application.", status=403)
        decision = form.get("decision")
        consent_id = form.get("consent")
        if decision not in ("approve", "deny") or not consent_id:
            return message_page("Bad request", "The form is incomplete.", status=400)
        parameters = await requests.close_consent(consent_id, session.user.id)
        if parameters is None:
            return message_page(
                "Already answered", "This request was already answered, or it expired. Start again.", status=400
            )
        try:
            agent, redirect_uri = await requests.client_and_redirect(
                {key: value for key, value in parameters.items() if isinstance(value, str)}
            )
        except OAuthError as exc:
            return message_page("Cannot continue", exc.description, status=400)
        if decision == "deny":
            state = parameters.get("state")
            denied = OAuthError("access_denied", "the user denied the request")
            target = requests.error_to_client(redirect_uri, denied, state if isinstance(state, str) else None)
        else:
            target = await requests.approve(agent, redirect_uri, session.user.id, parameters)
        return RedirectResponse(target, status_code=303)
