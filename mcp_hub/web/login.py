"""Sign-in and sign-out for the hub's users: `GET/POST /login`, `POST /logout`.

Passwords are checked with Argon2id (RFC 9106, `mcp_hub.credentials`) in a worker thread, so the
event loop keeps serving while the hash is computed. An unknown name is checked against a dummy hash, so a
wrong name and a wrong password take the same time and get the same answer ("Wrong name or password."), as
does a disabled user (OWASP Authentication cheat sheet: no account enumeration).

After sign-in the browser goes to `next`, which must be a path on the hub itself (a relative reference
starting with a single `/`, RFC 3986 §4.2): anything else (`https://evil.example`, `//evil.example`,
`/\\evil.example`) is replaced by the default, so the login page is no open redirector.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlencode, urlsplit

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mcp_hub.credentials import dummy_password_hash, verify_password
from mcp_hub.db.identities import IdentityStore
from mcp_hub.web.pages import Html, html, message_page, page_response, page_route, read_own_form
from mcp_hub.web.sessions import WebSession, WebSessions

LOGIN_PATH: Final = "/login"
LOGOUT_PATH: Final = "/logout"
DEFAULT_NEXT: Final = LOGIN_PATH
WRONG_CREDENTIALS: Final = "Wrong name or password."
_MAX_NEXT_LENGTH: Final = 8192
_MAX_FIELD_LENGTH: Final = 1024


def safe_next(value: str | None) -> str:
    """`value` if it is a path on this hub (no scheme, no host, no backslash, no control characters)."""
    if value is None or not value or len(value) > _MAX_NEXT_LENGTH:
        return DEFAULT_NEXT
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return DEFAULT_NEXT
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in value):
        return DEFAULT_NEXT
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return value


def login_url(next_path: str) -> str:
    """Where to send a browser that must sign in before it may see `next_path`."""
    return f"{LOGIN_PATH}?{urlencode({'next': next_path})}"


def _login_form(next_path: str, *, name: str = "", error: str | None = None) -> Html:
    alert = html('<p class="error" role="alert" id="login-error">{error}</p>\n', error=error) if error else Html("")
    described = ' aria-describedby="login-error"' if error else ""
    return html(
        "<h1>Sign in to mcp-hub</h1>\n{alert}"
        '<form method="post" action="{action}">\n'
        '<input type="hidden" name="next" value="{next}">\n'
        '<label for="name">Name</label>\n'
        '<input type="text" id="name" name="name" value="{name}" autocomplete="username" autocapitalize="none"'
        ' spellcheck="false" required{described}>\n'
        '<label for="password">Password</label>\n'
        '<input type="password" id="password" name="password" autocomplete="current-password" required{described}>\n'
        '<div class="actions"><button type="submit">Sign in</button></div>\n'
        "</form>",
        alert=alert,
        action=LOGIN_PATH,
        next=next_path,
        name=name,
        described=Html(described),
    )


def _signed_in(session: WebSession) -> Html:
    return html(
        "<h1>Signed in</h1>\n<p>You are signed in to mcp-hub as <strong>{name}</strong>.</p>\n{logout}",
        name=session.user.name,
        logout=logout_form(session),
    )


def logout_form(session: WebSession) -> Html:
    """A sign-out button (a POST with the CSRF token, so no other site can sign the user out)."""
    return html(
        '<form method="post" action="{action}">\n<input type="hidden" name="csrf" value="{csrf}">\n'
        '<div class="actions"><button type="submit">Sign out</button></div>\n</form>',
        action=LOGOUT_PATH,
        csrf=session.csrf_token,
    )


def login_routes(identities: IdentityStore, sessions: WebSessions) -> list[BaseRoute]:
    async def show(request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        session = await sessions.current(request)
        if session is not None:
            if next_path != DEFAULT_NEXT:
                return RedirectResponse(next_path, status_code=303)
            return page_response("Signed in", _signed_in(session))
        return page_response("Sign in", _login_form(next_path))

    async def submit(request: Request) -> Response:
        form = await read_own_form(request, same_origin=sessions.same_origin(request))
        if not isinstance(form, dict):
            return form
        next_path = safe_next(form.get("next"))
        name = form.get("name", "")[:_MAX_FIELD_LENGTH]
        password = form.get("password", "")[:_MAX_FIELD_LENGTH]
        user = await identities.user_by_name(name) if name else None
        password_hash = user.password_hash if user is not None else dummy_password_hash()
        valid = await anyio.to_thread.run_sync(verify_password, password_hash, password)
        if user is None or not valid or not user.enabled:
            return page_response("Sign in", _login_form(next_path, name=name, error=WRONG_CREDENTIALS), status=400)
        response = RedirectResponse(next_path, status_code=303)
        await sessions.start(request, response, user)
        return response

    async def logout(request: Request) -> Response:
        form = await read_own_form(request, same_origin=sessions.same_origin(request))
        if not isinstance(form, dict):
            return form
        session = await sessions.current(request)
        if session is not None and not session.csrf_ok(form.get("csrf")):
            return message_page("Refused", "This form has expired. Reload the page and try again.", status=403)
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        await sessions.end(request, response)
        return response

    return [
        page_route(LOGIN_PATH, show, methods=["GET"]),
        page_route(LOGIN_PATH, submit, methods=["POST"]),
        page_route(LOGOUT_PATH, logout, methods=["POST"]),
    ]
