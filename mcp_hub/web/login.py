"""Sign-in and sign-out for the hub's users: `GET/POST /login`, `POST /logout`.

Passwords are checked with Argon2id (RFC 9106, `mcp_hub.credentials`) in a worker thread, so the
event loop keeps serving while the hash is computed. An unknown name is checked against a dummy hash, so a
wrong name and a wrong password take the same time and get the same answer ("Wrong name or password."), as
does a disabled user (OWASP Authentication cheat sheet: no account enumeration).

After sign-in the browser goes to `next` (without one: `/`, the start page that sends each role where it works),
which must be a path on the hub itself (a relative reference
starting with a single `/`, RFC 3986 §4.2): anything else (`https://evil.example`, `//evil.example`,
`/\\evil.example`) is replaced by the default, so the login page is no open redirector.

Failed sign-ins slow down (`mcp_hub.limits.endpoints.SignInThrottle`, issue 10 §1): past a few failures for one
name (or more from one address) within a window, every attempt gets 429 and waits for the window's end, the
right password included; attempts from one address are also rate limited.

The pages are `templates/login.html` and, for a browser already signed in, `templates/signed_in.html`.
"""

from __future__ import annotations

import math
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mcp_hub.credentials import dummy_password_hash, verify_password
from mcp_hub.db.identities import IdentityStore
from mcp_hub.limits.backends import retry_after_header
from mcp_hub.limits.endpoints import SignInThrottle
from mcp_hub.web.pages import EXPIRED_FORM, Pages, page_route, read_own_form
from mcp_hub.web.sessions import LOGIN_PATH, LOGOUT_PATH, WebSessions

DEFAULT_NEXT: Final = "/"
"""Where a sign-in without `next` lands: the start page, which sends each role on (`mcp_hub.web.home`)."""
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


def _too_many(wait: float) -> str:
    minutes, seconds = divmod(max(1, math.ceil(wait)), 60)
    later = f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    return f"Too many sign-in attempts. Try again in {later}."


def login_routes(
    identities: IdentityStore, sessions: WebSessions, pages: Pages, throttle: SignInThrottle | None = None
) -> list[BaseRoute]:
    def login_page(
        request: Request, next_path: str, *, name: str = "", error: str | None = None, status: int | None = None
    ) -> Response:
        context = {"next_path": next_path, "name": name, "error": error}
        return pages.render(request, "login.html", context, status=status or (400 if error else 200))

    async def show(request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        session = await sessions.current(request)
        if session is not None:
            if next_path != DEFAULT_NEXT:
                return RedirectResponse(next_path, status_code=303)
            return pages.render(request, "signed_in.html", {"session": session})
        return login_page(request, next_path)

    async def submit(request: Request) -> Response:
        form = await read_own_form(request, same_origin=sessions.same_origin(request))
        if not isinstance(form, dict):
            return pages.problem(request, form)
        next_path = safe_next(form.get("next"))
        name = form.get("name", "")[:_MAX_FIELD_LENGTH]
        password = form.get("password", "")[:_MAX_FIELD_LENGTH]
        address = request.client.host if request.client is not None else "unknown"
        if throttle is not None:
            wait = await throttle.wait_seconds(name, address)
            if wait > 0:
                response = login_page(
                    request, next_path, name=name, error=_too_many(wait), status=HTTPStatus.TOO_MANY_REQUESTS
                )
                response.headers["Retry-After"] = retry_after_header(wait)
                return response
        user = await identities.user_by_name(name) if name else None
        password_hash = user.password_hash if user is not None else dummy_password_hash()
        valid = await anyio.to_thread.run_sync(verify_password, password_hash, password)
        if user is None or not valid or not user.enabled:
            if throttle is not None:
                await throttle.failed(name, address)
            return login_page(request, next_path, name=name, error=WRONG_CREDENTIALS)
        response = RedirectResponse(next_path, status_code=303)
        await sessions.start(request, response, user)
        return response

    async def logout(request: Request) -> Response:
        form = await read_own_form(request, same_origin=sessions.same_origin(request))
        if not isinstance(form, dict):
            return pages.problem(request, form)
        session = await sessions.current(request)
        if session is not None and not session.csrf_ok(form.get("csrf")):
            return pages.problem(request, EXPIRED_FORM)
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        await sessions.end(request, response)
        return response

    return [
        page_route(LOGIN_PATH, show, methods=["GET"]),
        page_route(LOGIN_PATH, submit, methods=["POST"]),
        page_route(LOGOUT_PATH, logout, methods=["POST"]),
    ]
