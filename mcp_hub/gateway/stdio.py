"""The hub over stdio, for local desktop clients that launch their servers as subprocesses.

https://modelcontextprotocol.io/specification/2026-07-28/basic/transports#stdio: the client's first
request decides the era (the SDK's dual-era loop). Everything the hub logs goes to stderr.

Identity (issue 3 §8). Stdio has no HTTP headers, so with `[auth] enabled` the caller is named once, when
the hub starts, and every list and call of the session is decided for it by the same decision point as
on HTTP (`mcp_hub.authz.decisions`):

- `mcp-hub stdio --agent NAME`: the agent's stored grants decide (no token cap). Whoever can start the hub
  with this configuration can read its database, so naming an agent is trusted like an admin command.
- an access token in `MCP_HUB_TOKEN`: verified exactly as a bearer token on `/mcp` (threat T02); its
  agent's grants decide and its scopes cap them (T10). Every later request checks the token again, so once
  it expires or is revoked (seen within `auth.decision_cache_seconds`), each request is a JSON-RPC error
  -32003 saying so, until the client starts the hub with a fresh token (T09).

Either way grants, and the agent being enabled, are re-read within `auth.decision_cache_seconds` (T09).

Without either, with both, for an unknown or disabled agent, or with a bad token, the hub refuses to
start: nothing is served and no downstream server is launched. A call outside the grants is JSON-RPC
error -32003 whose message names the scope needed (there is no HTTP status on stdio).
"""

from __future__ import annotations

import os
from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.stdio import stdio_server

from mcp_hub.authz.bearer import BearerAuthenticator
from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.errors import AuthError, InvalidTokenError, NotFoundError
from mcp_hub.gateway.server import HubServer
from mcp_hub.telemetry.tracing import Tracing

TOKEN_ENV: Final = "MCP_HUB_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
_NO_IDENTITY: Final = (
    f"auth is enabled: start `mcp-hub stdio` with --agent NAME, or with an access token in {TOKEN_ENV}"
)


class TokenStillValid:
    """Server middleware: each request of a session named by `MCP_HUB_TOKEN` re-checks the token.

    Ending the session instead is not possible cleanly: the SDK's stdio transport reads stdin in a thread
    that only the client can release (by closing stdin), so the hub answers with errors until it does.
    """

    _HANDSHAKE: Final = frozenset({"initialize", "ping", "server/discover"})

    def __init__(self, authenticator: BearerAuthenticator, token: str, *, tracing: Tracing | None = None) -> None:
        """`tracing`: each check in a `hub.auth` span (inside the request's, `mcp_hub.telemetry.tracing`)."""
        self._authenticator = authenticator
        self._token = token.strip()
        self._tracing = tracing if tracing is not None else Tracing.off()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in self._HANDSHAKE:
            try:
                with self._tracing.span("hub.auth"):
                    await self._authenticator.principal_for(self._token)
            except InvalidTokenError as exc:
                raise InvalidTokenError(
                    f"the access token in {TOKEN_ENV} is no longer valid: {exc.description}"
                ) from None
        return await call_next(ctx)


def token_from_environment() -> str | None:
    """The access token in `MCP_HUB_TOKEN`, if it is set and not empty."""
    return os.environ.get(TOKEN_ENV, "").strip() or None


def require_one_identity(*, agent: str | None, token: str | None) -> None:
    """With auth, the caller is named exactly once: `--agent NAME` or a token in `MCP_HUB_TOKEN`."""
    if agent is not None and token is not None:
        raise AuthError(f"name the stdio caller once: either --agent or {TOKEN_ENV}, not both")
    if agent is None and token is None:
        raise AuthError(_NO_IDENTITY)


async def identify(
    authenticator: BearerAuthenticator, decider: AccessDecider, *, agent: str | None, token: str | None
) -> Principal:
    """Whom this stdio session serves: `--agent NAME` or the token's caller; `AuthError` saying why not."""
    require_one_identity(agent=agent, token=token)
    if token is not None:
        try:
            principal = await authenticator.principal_for(token.strip())
        except InvalidTokenError as exc:
            raise AuthError(f"{TOKEN_ENV} is not a usable access token: {exc.description}") from None
    elif agent is not None:
        try:
            principal = await decider.principal_for_agent(agent)
        except NotFoundError:
            raise AuthError(f"no agent named {agent!r} (see `mcp-hub agents list`)") from None
    else:
        raise AuthError(_NO_IDENTITY)
    if principal.audience is not None and principal.audience != authenticator.resource:
        raise AuthError(f"{TOKEN_ENV} is a token for {principal.audience}, not for the hub's whole catalog")
    if not await decider.is_enabled(principal):
        raise AuthError(f"{principal.label} is disabled (`mcp-hub agents enable` turns it back on)")
    return principal


async def serve(server: HubServer) -> None:
    """Serve one client on this process's stdin/stdout until it disconnects."""
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())
