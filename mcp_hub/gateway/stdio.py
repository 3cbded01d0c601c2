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

import structlog
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from mcp_hub.authz.decisions import Principal
from mcp_hub.authz.resource import FORBIDDEN_CODE
from mcp_hub.authz.service import AuthService
from mcp_hub.db.engine import require_current_schema
from mcp_hub.errors import AuthError, InvalidTokenError, NotFoundError
from mcp_hub.runtime import Hub

TOKEN_ENV: Final = "MCP_HUB_TOKEN"  # noqa: S105 - the name of an environment variable, not a secret
_NO_IDENTITY: Final = (
    f"auth is enabled: start `mcp-hub stdio` with --agent NAME, or with an access token in {TOKEN_ENV}"
)

logger = structlog.get_logger(__name__)


class _TokenStillValid:
    """Server middleware: each request of a session named by `MCP_HUB_TOKEN` re-checks the token.

    Ending the session instead is not possible cleanly: the SDK's stdio transport reads stdin in a thread
    that only the client can release (by closing stdin), so the hub answers with errors until it does.
    """

    _HANDSHAKE: Final = frozenset({"initialize", "ping", "server/discover"})

    def __init__(self, auth: AuthService, token: str) -> None:
        self._auth = auth
        self._token = token

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in self._HANDSHAKE:
            try:
                await self._auth.decider.principal_for_token(await self._auth.tokens.verify(self._token))
            except InvalidTokenError as exc:
                raise MCPError(
                    code=FORBIDDEN_CODE,
                    message=f"the access token in {TOKEN_ENV} is no longer valid: {exc.description}",
                    data={"error": "invalid_token"},
                ) from None
        return await call_next(ctx)


async def serve_stdio(hub: Hub, *, agent: str | None = None, token: str | None = None) -> None:
    """Serve one client on this process's stdin/stdout until it disconnects, as `agent` or `token`'s caller.

    Raises `AuthError` (before anything is served) when auth is enabled and the caller cannot be named.
    """
    principal = await _identify(hub, agent=agent, token=token)
    server = hub.server_for(principal)
    if principal is not None and token is not None and hub.auth is not None:
        server.middleware.append(_TokenStillValid(hub.auth, token.strip()))
    async with hub.running(), stdio_server() as (read_stream, write_stream):
        if principal is not None:
            logger.info("stdio caller identified", caller=principal.label)
        await server.run(read_stream, write_stream, server.create_initialization_options())


def token_from_environment() -> str | None:
    """The access token in `MCP_HUB_TOKEN`, if it is set and not empty."""
    return os.environ.get(TOKEN_ENV, "").strip() or None


async def _identify(hub: Hub, *, agent: str | None, token: str | None) -> Principal | None:
    auth = hub.auth
    if auth is None:
        if agent is not None or token is not None:
            logger.warning("auth is disabled in this configuration: the stdio caller's identity is not used")
        return None
    if agent is not None and token is not None:
        raise AuthError(f"name the stdio caller once: either --agent or {TOKEN_ENV}, not both")
    if agent is None and token is None:
        raise AuthError(_NO_IDENTITY)
    try:
        await require_current_schema(hub.engine)
        await auth.start()
        return await _principal(auth, agent=agent, token=token)
    finally:
        # `hub.running()` opens the engine again; a refused start must not leave connections behind.
        await hub.engine.dispose()


async def _principal(auth: AuthService, *, agent: str | None, token: str | None) -> Principal:
    if token is not None:
        try:
            principal = await auth.decider.principal_for_token(await auth.tokens.verify(token.strip()))
        except InvalidTokenError as exc:
            raise AuthError(f"{TOKEN_ENV} is not a usable access token: {exc.description}") from None
    elif agent is not None:
        try:
            principal = await auth.decider.principal_for_agent(agent)
        except NotFoundError:
            raise AuthError(f"no agent named {agent!r} (see `mcp-hub agents list`)") from None
    else:
        raise AuthError(_NO_IDENTITY)
    if not await auth.decider.is_enabled(principal):
        raise AuthError(f"{principal.label} is disabled (`mcp-hub agents enable` turns it back on)")
    return principal
