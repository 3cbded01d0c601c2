"""The guard in front of `/mcp`: the resource server's bearer check (RFC 6750), the scope check of a 2026-07-28
`tools/call`, and the binding of legacy sessions to their principal.

Pure ASGI middleware (it must not buffer responses, which may be SSE streams). Per request:
1. `Authorization: Bearer <token>`, or `DPoP <token>` with a `DPoP` proof for a DPoP-bound token
   (`mcp_hub.authz.bearer`; RFC 9449, threat T08: the proof's `htu` is compared with the hub's public base URL and
   the request's path, never with the `Host` header; `dpop_required`: Bearer refused). Missing or invalid → 401
   with `WWW-Authenticate: Bearer resource_metadata=..., scope=...` (RFC 9728 §5.1, MCP authorization spec), so
   clients can discover the authorization server (`DPoP ..., algs=...` for a DPoP refusal, RFC 9449 §7.1). A
   token whose audience this endpoint does not accept (`audiences`: a virtual server's token anywhere but on that
   virtual server, issue 11 §6) is invalid here.
2. The token's principal and its `Access` (`mcp_hub.authz.decisions`) go into the ASGI scope for the
   MCP handlers (`scope["mcp_hub.principal"]`, `scope["mcp_hub.access"]`).
3. A 2026-07-28 `tools/call` outside the caller's grants is answered here with 403
   `error="insufficient_scope"` naming the scope (RFC 6750 §3.1) and the JSON-RPC error of `AccessDeniedError`.
   The decision reads the JSON-RPC body, never the `Mcp-Name` header (threat T14). Legacy sessions and stdio get
   the same JSON-RPC error from the handler instead, from the same decision. A 2026-07-28 `tools/call` refused
   by a limit (`mcp_hub.limits.calls.CallLimits`, the same decision the handler applies elsewhere) is answered
   here with 429 and `Retry-After` (RFC 6585 §4); one the limits admitted is marked charged
   (`LIMITS_CHARGED_KEY`) so that the handler does not count it twice.
   The body it read and parsed for this stays in the scope (`READ_BODY_KEY`): the fast path
   (`mcp_hub.gateway.fast_path`) neither reads nor parses it again.
4. A 2025-11-25 session id is bound to the principal that created it; another principal presenting it
   gets 404, as if the session did not exist (threat T13). The binding is the SDK session manager's own:
   the principal goes into `scope["user"]` as an `AuthenticatedUser` (client id = agent id, subject = user
   id), the manager records it when it creates a session and compares it on every later request. So it
   lives and dies with the session (removed on DELETE, idle timeout or crash, never evicted while the
   session is alive), and an unknown or forged session id is the manager's 404 (fail closed).
5. Fair shares of legacy sessions (threat T28, `mcp_hub.gateway.legacy_sessions`): a request that would open a
   2025-11-25 session is refused with 429 when its principal already has `max_legacy_sessions_per_principal`
   open, and with 403 when the agent or user is disabled; any request of a disabled principal closes its
   sessions.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, cast

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.authz import scopes
from mcp_hub.authz.bearer import BearerAuthenticator, ProofRequest
from mcp_hub.authz.decisions import Access, AccessDecider, Principal
from mcp_hub.authz.http import insufficient_scope_challenge, unauthorized_response
from mcp_hub.bodies import parse_json
from mcp_hub.errors import AccessDeniedError, InvalidTokenError
from mcp_hub.gateway.errors import jsonrpc_error_body, limited_body
from mcp_hub.gateway.legacy_sessions import LegacySessions, Owner
from mcp_hub.limits.backends import retry_after_header
from mcp_hub.limits.calls import CallLimits, Refusal
from mcp_hub.telemetry.tracing import AUTH_TIMES_KEY, POLICY_TIMES_KEY

LIMITS_CHARGED_KEY: Final = "mcp_hub.limits_charged"
READ_BODY_KEY: Final = "mcp_hub.read_body"
"""The body the guard already read and parsed (`ReadBody`), for the fast path: one read, one parse per request."""
PRINCIPAL_KEY: Final = "mcp_hub.principal"
ACCESS_KEY: Final = "mcp_hub.access"
MODERN_ERA: Final = "2026-07-28"
_MAX_SESSION_OWNERS: Final = 4096


@dataclass(frozen=True, slots=True)
class ReadBody:
    """A request body already read (at most the cap + 1 bytes) and its JSON (`message`), None if not JSON."""

    body: bytes
    message: Any


def parse_message(body: bytes) -> Any:
    """The JSON of a request body, None when it is not JSON (the SDK path then answers the parse error)."""
    try:
        return parse_json(body)
    except ValueError:
        return None


def header_of(scope: Scope, name: bytes) -> str | None:
    """A request header's first value (`name` lower-case, as ASGI gives names), without building Starlette's
    `Headers` (which decodes every header on each lookup)."""
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def principal_of(scope: Scope) -> tuple[Principal, Access] | None:
    principal = scope.get(PRINCIPAL_KEY)
    access = scope.get(ACCESS_KEY)
    if isinstance(principal, Principal) and isinstance(access, Access):
        return principal, access
    return None


class BearerAuthMiddleware:
    """Requires a valid access token on every request to the wrapped MCP app."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: BearerAuthenticator,
        decider: AccessDecider,
        *,
        issuer: str,
        resource_metadata_url: str,
        public_tool_name: Callable[[str], str | None],
        max_body_bytes: int,
        on_refused: Callable[[str, str], Awaitable[None]],
        # (tool, caller label): the audit record of a refused call
        limits: CallLimits | None = None,
        on_limited: Callable[[str, str, Refusal], Awaitable[None]] | None = None,
        sessions: LegacySessions | None = None,
        audiences: frozenset[str] | None = None,
        timed: bool = False,
        dpop_required: bool = False,
    ) -> None:
        """`audiences`: the token audiences this endpoint accepts (None: whatever the token service verified);
        `timed`: note when the token check and the policy check ran, for the request's trace (`[tracing]`);
        `dpop_required`: only DPoP-bound tokens with their proofs (`[auth] dpop = "required"`)."""
        self._dpop_required = dpop_required
        self._audiences = audiences
        self._timed = timed
        self._limits = limits
        self._on_limited = on_limited
        self._app = app
        self._authenticator = authenticator
        self._decider = decider
        self._issuer = issuer
        self._resource_metadata_url = resource_metadata_url
        self._public_tool_name = public_tool_name
        """The public name of the tool a request names (the names differ on a connector's profile), or None."""
        self._on_refused = on_refused
        self._max_body_bytes = max_body_bytes
        self._sessions = sessions
        self._session_owners: dict[tuple[str, str | None], AuthenticatedUser] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        started = time.time_ns() if self._timed else 0
        try:
            principal = self._for_this_resource(
                await self._authenticator.authenticate(
                    headers.get("authorization"),
                    lambda: self._proof_request(scope, headers),
                    dpop_required=self._dpop_required,
                )
            )
        except InvalidTokenError as exc:
            response = unauthorized_response(exc, self._resource_metadata_url, dpop_required=self._dpop_required)
            await response(scope, receive, send)
            return
        access = await self._decider.access(principal)
        if self._timed:
            scope[AUTH_TIMES_KEY] = (started, time.time_ns())
        scope[PRINCIPAL_KEY] = principal
        scope[ACCESS_KEY] = access
        scope["user"] = self._session_owner(principal)
        sessions = self._sessions
        if sessions is not None and not await self._session_allowed(sessions, principal, headers, scope, receive, send):
            return

        if (
            scope["method"] == "POST"
            # Without limits and with every tool allowed, there is nothing to refuse: the body need not be read.
            and (self._limits is not None or not access.allows_every_tool)
            and headers.get("mcp-protocol-version") == MODERN_ERA
        ):
            body, receive = await buffer_body(receive, self._max_body_bytes)
            read = ReadBody(body, parse_message(body))
            scope[READ_BODY_KEY] = read
            call = self._tools_call(read.message)
            if call is not None:
                public, arguments = call
                checked = time.time_ns() if self._timed else 0
                if not access.allows(public):
                    await self._on_refused(public, principal.label)
                    await self._forbidden(public, body, scope, receive, send)
                    return
                if self._limits is not None:
                    refusal = await self._limits.check(principal.agent_id, principal.agent_name, public, arguments)
                    if refusal is not None:
                        if self._on_limited is not None:
                            await self._on_limited(public, principal.label, refusal)
                        await self._too_many(refusal, body, scope, receive, send)
                        return
                    scope[LIMITS_CHARGED_KEY] = True
                if self._timed:
                    scope[POLICY_TIMES_KEY] = (checked, time.time_ns())

        await self._app(scope, receive, send)

    def _proof_request(self, scope: Scope, headers: Headers) -> ProofRequest:
        # The public URL: the issuer is the hub's public base URL, and each MCP route matches its path exactly.
        return ProofRequest(scope["method"], self._issuer + scope["path"], tuple(headers.getlist("dpop")))

    def _for_this_resource(self, principal: Principal) -> Principal:
        if self._audiences is not None and principal.audience not in self._audiences:
            raise InvalidTokenError(f"the access token is not for this resource (aud: {principal.audience})")
        return principal

    async def _session_allowed(
        self,
        sessions: LegacySessions,
        principal: Principal,
        headers: Headers,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> bool:
        """False (and the refusal sent) when this request may not open the legacy session it would open."""
        owner = Owner(principal.agent_id, principal.user_id)
        version = headers.get("mcp-protocol-version")
        opening = (
            scope["method"] == "POST"
            and "mcp-session-id" not in headers
            and (version is None or version in HANDSHAKE_PROTOCOL_VERSIONS)
        )
        open_sessions = sessions.count(owner)
        if not opening and not open_sessions:
            return True  # nothing to open and nothing to close: most requests (every 2026-07-28 one)
        enabled = await self._decider.is_enabled(principal)
        if not enabled and open_sessions:
            await sessions.close(owner)
        if not opening:
            return True
        if not enabled:
            message, status = "the agent or user is disabled", 403
        elif not sessions.admits(owner):
            message = (
                f"this caller already has {sessions.per_principal} open sessions (the most one caller may "
                "have): end one (HTTP DELETE) or reuse it"
            )
            status = 429
        else:
            return True
        body = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}
        await JSONResponse(body, status_code=status)(scope, receive, send)
        return False

    def _session_owner(self, principal: Principal) -> AuthenticatedUser:
        """Who owns a legacy session, as the SDK session manager compares it: (client id, issuer, subject).

        Only the identity goes in: never the bearer token (the manager keeps the owner for the session's life).
        One object per (agent, user), made once: nothing changes it, and the manager compares its fields.
        """
        owners = self._session_owners
        owner = owners.get(principal.key)
        if owner is None:
            if len(owners) >= _MAX_SESSION_OWNERS:
                owners.clear()
            owner = owners[principal.key] = self._new_session_owner(principal)
        return owner

    def _new_session_owner(self, principal: Principal) -> AuthenticatedUser:
        # `model_construct`: the values are ours and already valid; no validation.
        owner = AccessToken.model_construct(
            token="",  # deliberately empty: the bearer token is not kept with the session
            client_id=principal.agent_id,
            scopes=[],
            subject=principal.user_id,
            claims={"iss": self._issuer},
        )
        return AuthenticatedUser(owner)

    def _tools_call(self, message: Any) -> tuple[str, dict[str, Any] | None] | None:
        """The public name and arguments of a `tools/call` of a known tool; None for anything else (malformed
        JSON-RPC gets the SDK's parse error, an unknown tool the handler's -32602, as without auth)."""
        if not isinstance(message, dict):
            return None
        fields = cast("dict[str, Any]", message)
        params: object = fields.get("params")
        if fields.get("method") != "tools/call" or not isinstance(params, dict):
            return None
        params_map = cast("dict[str, Any]", params)
        name: object = params_map.get("name")
        public = self._public_tool_name(name) if isinstance(name, str) else None
        if public is None:
            return None
        arguments: object = params_map.get("arguments")
        return public, cast("dict[str, Any]", arguments) if isinstance(arguments, dict) else None

    async def _too_many(self, refusal: Refusal, body: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        request_id: Any = None
        try:
            request_id = parse_json(body).get("id")
        except (ValueError, AttributeError):
            request_id = None
        response = JSONResponse(
            limited_body(refusal, request_id),
            status_code=429,
            headers={"Retry-After": retry_after_header(refusal.retry_after_seconds)},
        )
        await response(scope, receive, send)

    async def _forbidden(self, tool: str, body: bytes, scope: Scope, receive: Receive, send: Send) -> None:
        denied = AccessDeniedError(tool, scopes.required_scope("tool", tool))
        request_id: Any = None
        try:
            request_id = parse_json(body).get("id")
        except (ValueError, AttributeError):
            request_id = None
        challenge = insufficient_scope_challenge(denied, self._resource_metadata_url)
        response = JSONResponse(
            jsonrpc_error_body(denied, request_id), status_code=403, headers={"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)


async def buffer_body(receive: Receive, limit: int) -> tuple[bytes, Receive]:
    """Read the body (up to `limit` + 1 bytes are kept) and return a `receive` that replays it."""
    # Past the limit the rest is drained, not kept: the SDK sees limit + 1 bytes and answers 413 itself.
    chunks: list[bytes] = []
    kept = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk: bytes = message.get("body", b"")
        if kept <= limit:
            piece = chunk[: limit + 1 - kept]
            chunks.append(piece)
            kept += len(piece)
        more = bool(message.get("more_body", False))
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
