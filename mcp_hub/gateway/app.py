"""The hub's MCP endpoint over HTTP (both eras), `/healthz` and `/readyz`, as routes for the hub's Starlette app.

Streamable HTTP as specified in https://modelcontextprotocol.io/specification/2026-07-28/basic/transports
(stateless: every request stands alone, so any replica can serve it) and
https://modelcontextprotocol.io/specification/2025-11-25/basic/transports (sessions, `Mcp-Session-Id`).
The SDK routes each request by its `MCP-Protocol-Version` header. Host and Origin are checked against
an allow-list on every request (DNS-rebinding protection, threat T12). 2025-11-25 streams are resumable
(`Last-Event-ID`, the SSE `retry` field): `gateway/resumption.py` in front of the SDK, `gateway/event_store.py`
behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.settings import HubSettings
from mcp_hub.domain import Health, HubPhase
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.gateway.event_store import EventLog, SessionScopedEventStore
from mcp_hub.gateway.fast_path import FastPath, FastPathStats
from mcp_hub.gateway.legacy_sessions import LegacySessions
from mcp_hub.gateway.readiness import Readiness
from mcp_hub.gateway.resumption import ResumableStreams, refetch_notifications
from mcp_hub.gateway.server import HubServer

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"


def transport_security(settings: HubSettings) -> TransportSecuritySettings:
    """Host/Origin allow-lists: loopback, the public base URL, and what the operator added."""
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


Guard = Callable[[ASGIApp, Callable[[str], str | None]], ASGIApp]
"""Wraps an MCP endpoint in the bearer check; the callable maps a tool name of that endpoint to its public name."""


def mcp_routes(
    server: HubServer,
    settings: HubSettings,
    catalog: Catalog,
    *,
    path: str,
    public_tool_name: Callable[[str], str | None],
    stream_events: EventLog,
    sessions: LegacySessions,
    guard: Guard | None = None,
    fast_path: FastPathStats | None = None,
) -> list[BaseRoute]:
    """The SDK's Streamable HTTP endpoint for `server` at `path`, 2025-11-25 sessions counted in `sessions` and
    their streams resumable from `stream_events`; with `guard`, the MCP endpoint goes through it first; with
    `fast_path`, 2026-07-28 calls and lists take the fast path (`mcp_hub.gateway.fast_path`) behind the guard."""
    security = transport_security(settings)
    manager = server.serve_sessions(
        sessions,
        event_store=SessionScopedEventStore(stream_events),
        security_settings=security,
        retry_interval=settings.streams.retry_ms,
        max_request_body_size=settings.hub.max_request_body_bytes,
        max_sessions=settings.hub.max_legacy_sessions,
    )
    endpoint: ASGIApp = ResumableStreams(
        StreamableHTTPASGIApp(manager),
        stream_events,
        retry_ms=settings.streams.retry_ms,
        refetch=partial(refetch_notifications, catalog),
    )
    if fast_path is not None:
        endpoint = FastPath(
            endpoint, server, security=security, max_body_bytes=settings.hub.max_request_body_bytes, stats=fast_path
        )
    if guard is not None:
        endpoint = guard(endpoint, public_tool_name)
    return [Route(path, endpoint)]


def health_report(pool: DownstreamPool, catalog: Catalog, readiness: Readiness) -> dict[str, Any]:
    """The body of `/healthz`: every connector's state, its calls (running, queued) and its circuit breaker;
    `starting` until each has made its first attempt, then `ok` only when every enabled one is ready (and no
    breaker is open)."""
    calls = pool.calls()
    connectors = {
        connector_id: {
            "state": state.state.value,
            "since": state.since.isoformat(),
            "era": state.era,
            "tools": state.tool_count,
            "detail": state.detail,
            "attempts": state.attempts,
            "calls": calls[connector_id],
        }
        for connector_id, state in pool.health().items()
    }
    enabled = [c for c in connectors.values() if c["state"] != Health.DISABLED]
    breakers_closed = all(report["breaker"]["state"] == "closed" for report in calls.values())
    all_ready = all(c["state"] == Health.READY for c in enabled) and breakers_closed
    status = "ok" if all_ready else "degraded"
    if readiness.phase is not HubPhase.READY:
        status = readiness.phase.value
    return {"status": status, "tools": len(catalog.tools), "connectors": connectors}


def health_routes(report: Callable[[], dict[str, Any]], readiness: Readiness) -> list[BaseRoute]:
    """`/healthz` (liveness: always 200 while the process serves) and `/readyz` (readiness: 200 only between the
    end of the start and the beginning of the shutdown, for load balancers)."""

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse(report())

    async def readyz(_request: Request) -> JSONResponse:
        phase = readiness.phase
        return JSONResponse({"status": phase.value}, status_code=200 if phase is HubPhase.READY else 503)

    return [Route(HEALTH_PATH, healthz, methods=["GET"]), Route(READY_PATH, readyz, methods=["GET"])]
