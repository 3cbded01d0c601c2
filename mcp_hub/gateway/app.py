"""The hub's HTTP application: the MCP endpoint (both eras) and `/healthz`.

Streamable HTTP as specified in https://modelcontextprotocol.io/specification/2026-07-28/basic/transports
(stateless: every request stands alone, so any replica can serve it) and
https://modelcontextprotocol.io/specification/2025-11-25/basic/transports (sessions, `Mcp-Session-Id`).
The SDK routes each request by its `MCP-Protocol-Version` header. Host and Origin are checked against
an allow-list on every request (DNS-rebinding protection, threat T12).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from mcp_hub.authz.endpoints import auth_routes
from mcp_hub.authz.resource import BearerAuthMiddleware
from mcp_hub.gateway.forwarding import Caller
from mcp_hub.runtime import Hub
from mcp_hub.web.approvals import approval_routes

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(hub: Hub) -> TransportSecuritySettings:
    """Host/Origin allow-lists: loopback, the public base URL, and what the operator added."""
    settings = hub.settings
    hosts = {f"{host}:*" for host in _LOOPBACK_HOSTS}
    origins = {f"http://{host}:*" for host in _LOOPBACK_HOSTS}
    public = urlsplit(settings.public_base_url)
    if public.hostname:
        host = f"[{public.hostname}]" if ":" in public.hostname else public.hostname
        hosts.update({host, f"{host}:*"})
        origins.add(f"{public.scheme}://{public.netloc}")
    hosts.update(settings.hub.allowed_hosts)
    origins.update(settings.hub.allowed_origins)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=sorted(hosts), allowed_origins=sorted(origins)
    )


def build_app(hub: Hub, *, on_started: Callable[[], None] | None = None) -> Starlette:
    """The ASGI app; its lifespan runs the hub (database, pool, audit) and the MCP session manager."""
    settings = hub.settings
    mcp_app = hub.server.streamable_http_app(
        streamable_http_path=settings.hub.mcp_path,
        transport_security=transport_security(hub),
        max_request_body_size=settings.hub.max_request_body_bytes,
        max_sessions=settings.hub.max_legacy_sessions,
    )

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(hub.health_report())

    routes: list[BaseRoute] = list(mcp_app.routes)
    if hub.auth is not None:
        routes = [_protected(route, hub) for route in routes] + auth_routes(hub.auth)
        routes += approval_routes(hub.approvals, hub.auth)  # issue 4: pages and API for approvers

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with hub.running(), hub.server.session_manager.run():
            if on_started is not None:
                on_started()
            yield

    return Starlette(routes=[*routes, Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)


def _protected(route: BaseRoute, hub: Hub) -> BaseRoute:
    """The MCP endpoint behind the bearer-token middleware (other routes of the SDK app stay as they are)."""
    if not isinstance(route, Route) or route.path != hub.settings.hub.mcp_path or hub.auth is None:
        return route
    guarded = BearerAuthMiddleware(
        route.app,
        hub.auth,
        tool_exists=hub.catalog.tool_exists,
        max_body_bytes=hub.settings.hub.max_request_body_bytes,
        on_refused=lambda tool, label: hub.forwarder.audit_refusal(tool, Caller(client=label)),
    )
    return Route(route.path, guarded, methods=sorted(route.methods or ()), name=route.name)
