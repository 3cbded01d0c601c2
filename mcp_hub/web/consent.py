"""The pages of the authorization endpoint, `/oauth/authorize`: sign-in first, then the consent page (threat T06).

The protocol (checking the request, keeping it while the user decides, issuing the code, the redirect back)
is `mcp_hub.authz.authorization`; this module is what the user sees. `GET` shows an error page when the client
or redirect URI is wrong (never a redirect), sends errors of the rest of the request back to the client, sends
a browser that is not signed in to `/login?next=<this request>`, and otherwise shows the consent page: the
client's name and id, the host it will be sent back to, and the scopes the token would carry, with Approve and
Deny (`templates/consent.html`). The form carries a single-use consent id and the session's CSRF token; the
page may not be framed.

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
from mcp_hub.errors import OAuthError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.pages import FORM_ACTION_SELF, Pages, content_security_policy, page_route, read_own_form
from mcp_hub.web.sessions import WebSessions, login_url

_CSP_HOST: Final = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_CSP_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_SIGNED_OUT: Final = Problem(403, "Signed out", "Your session has ended. Start again from the application.")
_EXPIRED: Final = Problem(403, "Refused", "This form has expired. Start again from the application.")
_INCOMPLETE: Final = Problem(400, "Bad request", "The form is incomplete.")
_ANSWERED: Final = Problem(400, "Already answered", "This request was already answered, or it expired. Start again.")


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


class ConsentPages:
    """`GET` and `POST /oauth/authorize`."""

    def __init__(self, requests: AuthorizationRequests, sessions: WebSessions, pages: Pages) -> None:
        self._requests = requests
        self._sessions = sessions
        self._pages = pages

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
            return self._pages.problem(request, problem_for(exc))
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
        context = {
            "session": session,
            "client": agent.display_name or agent.name,
            "client_id": agent.client_id,
            "host": _redirect_host(redirect_uri),
            "scopes": granted,
            "authorize_path": AUTHORIZE_PATH,
            "consent_id": consent_id,
        }
        return self._pages.render(
            request, "consent.html", context, csp=content_security_policy(_form_action(redirect_uri))
        )

    async def _decide(self, request: Request) -> Response:
        requests = self._requests
        form = await read_own_form(request, same_origin=self._sessions.same_origin(request))
        if not isinstance(form, dict):
            return self._pages.problem(request, form)
        session = await self._sessions.current(request)
        if session is None:
            return self._pages.problem(request, _SIGNED_OUT)
        if not session.csrf_ok(form.get("csrf")):
            return self._pages.problem(request, _EXPIRED)
        decision = form.get("decision")
        consent_id = form.get("consent")
        if decision not in ("approve", "deny") or not consent_id:
            return self._pages.problem(request, _INCOMPLETE)
        parameters = await requests.close_consent(consent_id, session.user.id)
        if parameters is None:
            return self._pages.problem(request, _ANSWERED)
        try:
            agent, redirect_uri = await requests.client_and_redirect(
                {key: value for key, value in parameters.items() if isinstance(value, str)}
            )
        except OAuthError as exc:
            return self._pages.problem(request, problem_for(exc))
        if decision == "deny":
            state = parameters.get("state")
            denied = OAuthError("access_denied", "the user denied the request")
            target = requests.error_to_client(redirect_uri, denied, state if isinstance(state, str) else None)
        else:
            target = await requests.approve(agent, redirect_uri, session.user.id, parameters)
        return RedirectResponse(target, status_code=303)
