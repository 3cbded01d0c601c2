"""Browser sessions of the hub's users: the cookie, its CSRF token, and the same-origin check of forms.

Follows the OWASP Session Management and CSRF Prevention cheat sheets:

- The session id is 256 bits from the OS CSPRNG, sent only in a cookie and stored only as its SHA-256
  (`web_sessions.id_sha256`), so a database leak yields no usable session. A new id on every sign-in
  (no session fixation); the row is deleted at sign-out; it expires after `[auth] web_session_ttl_seconds`.
- The cookie is `HttpOnly` (no script reads it), `SameSite=Lax` (a cross-site POST does not carry it, a
  top-level GET, the way an OAuth client opens the authorization endpoint, does) and `Path=/`. When the
  hub's public base URL is https it is also `Secure` and named `__Host-mcp_hub_session`: RFC 6265bis §4.1.3.2
  makes browsers accept a `__Host-` cookie only if it is `Secure`, host-only and for `/`, so neither a
  sibling subdomain nor a plain-http page can plant or overwrite it (threat T06). Browsers refuse `Secure`
  cookies from plain-http origins, so a hub served over http (loopback development and tests) uses the
  unprefixed name `mcp_hub_session` without `Secure`.
- Each session has its own CSRF token (synchronizer token pattern), embedded in every form and compared in
  constant time; forms are also refused when the browser says they come from another origin (`Origin`,
  or `Sec-Fetch-Site: cross-site` when `Origin` is absent).
- A session of a user who has since been disabled is not a session.

Sessions start at `LOGIN_PATH` and end at `LOGOUT_PATH` (`mcp_hub.web.login`); `login_url(path)` is where a
browser without one goes first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.credentials import new_secret, same_text, sha256_hex
from mcp_hub.db.identities import IdentityStore, UserRecord
from mcp_hub.db.web_sessions import WebSessionStore
from mcp_hub.domain import Clock, utc_now

LOGIN_PATH: Final = "/login"
LOGOUT_PATH: Final = "/logout"
CSRF_HEADER: Final = "X-CSRF-Token"
"""Where the hub's own scripts send the session's CSRF token on a JSON write (the approvals API, the admin API)."""
SECURE_COOKIE_NAME: Final = "__Host-mcp_hub_session"
PLAIN_COOKIE_NAME: Final = "mcp_hub_session"
_MAX_COOKIE_LENGTH: Final = 256


def login_url(next_path: str) -> str:
    """Where to send a browser that must sign in before it may see `next_path`."""
    return f"{LOGIN_PATH}?{urlencode({'next': next_path})}"


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in user, with the CSRF token their forms must carry."""

    user: UserRecord
    csrf_token: str
    expires_at: datetime

    def csrf_ok(self, submitted: str | None) -> bool:
        """Constant-time check of a form's CSRF token."""
        return same_text(submitted, self.csrf_token)


class WebSessions:
    """Starts, finds and ends browser sessions; one instance per hub process (it holds no state)."""

    def __init__(
        self,
        store: WebSessionStore,
        identities: IdentityStore,
        *,
        public_base_url: str,
        ttl_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._identities = identities
        public = urlsplit(public_base_url)
        self.origin = f"{public.scheme}://{public.netloc}"
        self.secure = public.scheme == "https"
        self.cookie_name = SECURE_COOKIE_NAME if self.secure else PLAIN_COOKIE_NAME
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    async def current(self, request: Request) -> WebSession | None:
        """The request's session, if its cookie names a live session of an enabled user."""
        session_id = request.cookies.get(self.cookie_name)
        if not session_id or len(session_id) > _MAX_COOKIE_LENGTH:
            return None
        record = await self._store.web_session(sha256_hex(session_id))
        if record is None:
            return None
        user = await self._identities.user_by_id(record.user_id)
        if user is None or not user.enabled:
            return None
        return WebSession(user=user, csrf_token=record.csrf_token, expires_at=record.expires_at)

    async def start(self, request: Request, response: Response, user: UserRecord) -> WebSession:
        """A new session for `user` (ending the one the request had, if any), its cookie set on `response`."""
        await self._forget(request)
        session_id = new_secret()
        csrf_token = new_secret()
        expires_at = self._clock() + timedelta(seconds=self._ttl_seconds)
        await self._store.create_web_session(sha256_hex(session_id), user.id, csrf_token, expires_at)
        response.set_cookie(
            self.cookie_name,
            session_id,
            max_age=self._ttl_seconds,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )
        return WebSession(user=user, csrf_token=csrf_token, expires_at=expires_at)

    async def end(self, request: Request, response: Response) -> None:
        """Delete the request's session and tell the browser to drop the cookie."""
        await self._forget(request)
        response.delete_cookie(self.cookie_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def same_origin(self, request: Request) -> bool:
        """Does a form post come from the hub's own pages? (Fetch Metadata and `Origin`, when sent.)

        The pages are sent with `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` on a
        same-origin form post (Fetch, "serializing a request origin"); `Sec-Fetch-Site` then says where the
        post came from.
        """
        origin = request.headers.get("origin")
        if origin == "null":
            return request.headers.get("sec-fetch-site") == "same-origin"
        if origin is not None:
            return origin == self.origin
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")

    async def _forget(self, request: Request) -> None:
        session_id = request.cookies.get(self.cookie_name)
        if session_id and len(session_id) <= _MAX_COOKIE_LENGTH:
            await self._store.delete_web_session(sha256_hex(session_id))
