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
from starlette.routing import Route

from mcp_hub.runtime import Hub

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

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        async with hub.running(), hub.server.session_manager.run():
            if on_started is not None:
                on_started()
            yield

    return Starlette(routes=[*mcp_app.routes, Route("/healthz", healthz, methods=["GET"])], lifespan=lifespan)
