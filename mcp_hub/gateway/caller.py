"""Who is asking: the principal and decision behind one MCP request, and how the audit trail names it.

With auth, the principal comes from the bearer middleware (`mcp_hub.gateway.guard`, HTTP) or is fixed when the
stdio front door starts; a request with neither is refused (fail closed). Without auth there is no principal
and nothing is filtered. The client's self-reported name (`clientInfo`) only labels the audit record when
there is no principal: it is never a security input.
"""

from __future__ import annotations

from dataclasses import dataclass

import mcp_types as types
from starlette.requests import Request

from mcp_hub.authz.decisions import Access, AccessDecider, Principal
from mcp_hub.domain import Caller
from mcp_hub.errors import InvalidTokenError
from mcp_hub.gateway.context import HubContext
from mcp_hub.gateway.guard import header_of, principal_of


@dataclass(frozen=True, slots=True)
class Asking:
    """One request's caller: its principal and decision (None without auth), and its audit label."""

    principal: Principal | None
    access: Access | None
    caller: Caller

    def allows(self, public_name: str, kind: str) -> bool:
        return self.access is None or self.access.allows(public_name, kind)

    @property
    def cache_scope(self) -> str:
        """T27: a list filtered for this caller must not be reused for another."""
        return "public" if self.access is None else "private"


def _self_reported_caller(ctx: HubContext) -> Caller:
    """Self-reported identity (clientInfo and peer address): audit context, never a security input."""
    client_info: types.Implementation | None = None
    if ctx.session.client_params is not None:
        client_info = ctx.session.client_params.client_info
    elif ctx.meta is not None:
        raw_info = ctx.meta.get(types.CLIENT_INFO_META_KEY)
        if isinstance(raw_info, dict):
            name = raw_info.get("name")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            client_info = types.Implementation(name=str(name), version="") if name else None  # pyright: ignore[reportUnknownArgumentType]
    label = client_info.name if client_info is not None else "unknown"
    request = ctx.request
    if isinstance(request, Request):
        peer = request.client.host if request.client is not None else "?"
        label = f"{label}@{peer}"
    else:
        label = f"{label}@stdio"
    return Caller(client=label, session=_session_of(ctx))


def _session_of(ctx: HubContext) -> str | None:
    """The 2025-11-25 session id of an HTTP request (2026-07-28 has none)."""
    request = ctx.request
    return header_of(request.scope, b"mcp-session-id") if isinstance(request, Request) else None


class CallerResolver:
    """Turns a request context into its `Asking`."""

    def __init__(self, decider: AccessDecider | None, stdio_principal: Principal | None = None) -> None:
        self._decider = decider
        self._stdio_principal = stdio_principal

    async def __call__(self, ctx: HubContext) -> Asking:
        decided = await self.decision(ctx)
        if decided is None:
            return Asking(None, None, _self_reported_caller(ctx))
        principal, access = decided
        # The principal names the caller: the self-reported name is not read at all.
        return Asking(principal, access, Caller(client=principal.label, session=_session_of(ctx)))

    async def decision(self, ctx: HubContext) -> tuple[Principal, Access] | None:
        """The principal and its decision; None without auth; `InvalidTokenError` when auth names nobody."""
        if self._decider is None:
            return None
        request = ctx.request
        if isinstance(request, Request):
            found = principal_of(request.scope)
            if found is not None:
                return found
        elif self._stdio_principal is not None:
            return self._stdio_principal, await self._decider.access(self._stdio_principal)
        raise InvalidTokenError("no authenticated principal for this request")

    def principal_key(self, ctx: HubContext) -> str | None:
        """Who is asking, as a string (what a sealed `requestState` is bound to); None without auth."""
        if self._decider is None:
            return None
        request = ctx.request
        principal: Principal | None = None
        if isinstance(request, Request):
            found = principal_of(request.scope)
            principal = found[0] if found is not None else None
        else:
            principal = self._stdio_principal
        if principal is None:
            raise InvalidTokenError("no authenticated principal for this request")
        return f"{principal.agent_id}/{principal.user_id or ''}"
