"""The downstream pool: one `DownstreamConnection` (and owner task) per configured connector.

Connectors start concurrently and independently: the pool is usable the moment it starts, a slow or
broken connector only delays its own tools, and one connector's crash never touches another's task.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TextIO

import anyio

from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import TimeoutsSection
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.connection import DownstreamConnection, HealthCallback, ListingCallback
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.relay import LogSink, ResourceInterest
from mcp_hub.errors import ConnectorUnavailableError


class DownstreamPool:
    """Owns every connector's connection for the lifetime of `running()`."""

    def __init__(
        self,
        specs: Sequence[ConnectorSpec],
        timeouts: TimeoutsSection,
        *,
        on_listing: ListingCallback,
        on_health: HealthCallback,
        logs: LogSink | None = None,
        resources: ResourceInterest | None = None,
        errlog: TextIO | None = None,
    ) -> None:
        self.connections: dict[ConnectorId, DownstreamConnection] = {
            spec.id: DownstreamConnection(
                spec,
                timeouts,
                on_listing=on_listing,
                on_health=on_health,
                logs=logs,
                resources=resources,
                errlog=errlog,
            )
            for spec in specs
        }

    def get(self, connector_id: str) -> DownstreamConnection:
        """The connection of `connector_id`; `ConnectorUnavailableError` for a connector not configured."""
        connection = self.connections.get(ConnectorId(connector_id))
        if connection is None:
            raise ConnectorUnavailableError(connector_id, f"connector {connector_id!r} is not configured")
        return connection

    async def first_attempts_over(self) -> None:
        """Return once every connector has listed or failed its first attempt (disabled ones count as done)."""
        for connection in self.connections.values():
            await connection.first_attempt_over.wait()

    def health(self) -> dict[str, HealthState]:
        return {connector_id: connection.health for connector_id, connection in sorted(self.connections.items())}

    def calls(self) -> dict[str, dict[str, Any]]:
        """Per connector, its calls running and queued and its circuit breaker (`DownstreamConnection.calls_report`)."""
        return {
            connector_id: connection.calls_report() for connector_id, connection in sorted(self.connections.items())
        }

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[DownstreamPool]:
        """Start every connector's owner task; on exit, close every connection (stdio children end)."""
        async with anyio.create_task_group() as tasks:
            for connection in self.connections.values():
                tasks.start_soon(connection.run, name=f"downstream:{connection.spec.id}")
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()
