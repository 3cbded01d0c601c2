"""Limits of the endpoints that cost the hub work before it knows who asks: the OAuth endpoints and sign-in
(issue 10 §1; threats T05, T11, T28).

- `EndpointThrottle`, ASGI middleware in front of `/oauth/token`, `/oauth/register`, `/oauth/authorize`,
  `/oauth/revoke` and `/oauth/introspect`: a token bucket per source address, and at the token endpoint one per
  client too (the client id of HTTP Basic authentication or of the form, RFC 6749 §2.3.1). Refused: HTTP 429
  with `Retry-After` (RFC 6585 §4) and an RFC 6749 §5.2-shaped body (`temporarily_unavailable`).
- `SignInThrottle`, used by the sign-in page: a bucket per source address, and failed sign-ins counted per user
  name and per address in fixed windows; past `failed_sign_ins_per_name` (or `..._per_address`) every attempt
  waits for the window's end, the right password included, so a password cannot be guessed at speed.

The source address is the connection's peer (`scope["client"]`): behind a reverse proxy, run uvicorn with its
proxy-headers settings so the peer is the real client.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.config.settings import EndpointLimits, Rate
from mcp_hub.limits.backends import BucketSpec, CounterSpec, LimitBackend, retry_after_header

_MAX_FORM_BYTES: Final = 64 * 1024
_NEVER: Final = 1_000_000_000


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    per_address: Rate | None
    per_client: Rate | None = None


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def throttled_paths(oauth_prefix: str) -> frozenset[str]:
    """The paths `EndpointThrottle` acts on (every other request passes through it untouched)."""
    return frozenset(f"{oauth_prefix}/{name}" for name in ("token", "register", "authorize", "revoke", "introspect"))


Refused = Callable[[str, str, str], Awaitable[None]]
"""(what was refused, e.g. `/oauth/token`, the source address, why): records a refusal in the audit trail."""


async def _not_recorded(_what: str, _address: str, _why: str) -> None:
    return None


class EndpointThrottle:
    """Per-address (and at the token endpoint per-client) buckets in front of the OAuth endpoints."""

    def __init__(
        self,
        app: ASGIApp,
        backend: LimitBackend,
        settings: EndpointLimits,
        *,
        oauth_prefix: str,
        on_refused: Refused = _not_recorded,
    ) -> None:
        self._on_refused = on_refused
        self._app = app
        self._backend = backend
        self._rules = {
            f"{oauth_prefix}/token": _Rule("token", settings.token_per_address, settings.token_per_client),
            f"{oauth_prefix}/register": _Rule("register", settings.register_per_address),
            f"{oauth_prefix}/authorize": _Rule("authorize", settings.authorize_per_address),
            f"{oauth_prefix}/revoke": _Rule("revoke", settings.revoke_introspect_per_address),
            f"{oauth_prefix}/introspect": _Rule("introspect", settings.revoke_introspect_per_address),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rule = self._rules.get(scope.get("path", "")) if scope["type"] == "http" else None
        if rule is None:
            await self._app(scope, receive, send)
            return
        buckets: list[BucketSpec] = []
        if rule.per_address is not None:
            rate, address = rule.per_address, _address(scope)
            buckets.append(BucketSpec(f"ep:{rule.name}:{address}", rate.rate, rate.burst, "per_address"))
        if rule.per_client is not None and scope.get("method") == "POST":
            client_id, receive = await _client_id(scope, receive)
            if client_id:
                rate = rule.per_client
                buckets.append(BucketSpec(f"ep:{rule.name}:client:{client_id}", rate.rate, rate.burst, "per_client"))
        verdict = await self._backend.admit(buckets, [])
        if verdict.allowed:
            await self._app(scope, receive, send)
            return
        seconds = retry_after_header(verdict.retry_after_seconds)
        await self._on_refused(scope.get("path", ""), _address(scope), f"{verdict.refused_by}; retry after {seconds} s")
        response = JSONResponse(
            {
                "error": "temporarily_unavailable",
                "error_description": f"too many requests ({verdict.refused_by}); retry after {seconds} s",
            },
            status_code=429,
            headers={"Retry-After": seconds, "Cache-Control": "no-store"},
        )
        await response(scope, receive, send)


async def _client_id(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The client id of HTTP Basic authentication, else of the form body (read once, bounded, and replayed)."""
    authorization = Headers(scope=scope).get("authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            user = base64.b64decode(authorization[6:], validate=True).decode().split(":", 1)[0]
            return unquote(user)[:256] or None, receive
        except (binascii.Error, UnicodeDecodeError):
            return None, receive
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size <= _MAX_FORM_BYTES:
            chunks.append(chunk)
        more = bool(message.get("more_body", False))
    # Past the cap nothing is kept: the endpoint reads a body one byte over its own cap and refuses it.
    body = b"".join(chunks) if size <= _MAX_FORM_BYTES else b"x" * (_MAX_FORM_BYTES + 1)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {
                "type": "http.request",
                "body": body,
                "more_body": False,
            }
        return await receive()

    try:
        values = parse_qs(body.decode("ascii"), max_num_fields=100).get("client_id", [])
    except (UnicodeDecodeError, ValueError):
        values = []
    return (values[0][:256] if values else None), replay


class SignInThrottle:
    """How long a sign-in attempt must wait (0: it may try now), and the count of failed ones."""

    def __init__(
        self,
        backend: LimitBackend,
        settings: EndpointLimits,
        *,
        clock: Callable[[], float] = time.time,
        on_refused: Refused = _not_recorded,
    ) -> None:
        self._on_refused = on_refused
        self._backend = backend
        self._settings = settings
        self._clock = clock

    async def wait_seconds(self, name: str, address: str) -> float:
        """0 when an attempt may be made now (and is counted against the address's bucket); else how long to wait.

        Failures are counted in fixed windows; a name (or address) that reached its limit in this window or in
        the one before waits until this one ends. Reading the window before too means a boundary does not wipe
        the count: failures just before it and attempts just after it are still a lockout (for one to two
        windows), never a fresh allowance."""
        window, remaining = self._window()
        counts = await self._backend.counts(
            [
                self._key(kind, value, at)
                for at in (window, window - 1)
                for kind, value in (("name", name), ("address", address))
            ]
        )
        limits = self._settings
        by_name, by_address = max(counts[0], counts[2]), max(counts[1], counts[3])
        if by_name >= limits.failed_sign_ins_per_name or by_address >= limits.failed_sign_ins_per_address:
            await self._on_refused("/login", address, f"failed sign-ins for {name[:64]!r}; wait {remaining:.0f} s")
            return remaining
        rate = limits.login_per_address
        if rate is None:
            return 0.0
        verdict = await self._backend.admit([BucketSpec(f"signin:{address}", rate.rate, rate.burst, "per_address")], [])
        if verdict.allowed:
            return 0.0
        await self._on_refused("/login", address, f"per_address; wait {verdict.retry_after_seconds:.0f} s")
        return verdict.retry_after_seconds

    async def failed(self, name: str, address: str) -> None:
        window, _ = self._window()
        kept = 2 * self._settings.failed_sign_in_window_seconds  # read again in the next window
        counters = [
            CounterSpec(self._key("name", name, window), _NEVER, kept, "failed_sign_ins_per_name"),
            CounterSpec(self._key("address", address, window), _NEVER, kept, "failed_sign_ins_per_address"),
        ]
        await self._backend.admit([], counters)

    def _window(self) -> tuple[int, float]:
        now = self._clock()
        seconds = self._settings.failed_sign_in_window_seconds
        window = int(now // seconds)
        return window, (window + 1) * seconds - now

    @staticmethod
    def _key(kind: str, value: str, window: int) -> str:
        return f"signin-failed:{kind}:{value[:256]}:{window}"
