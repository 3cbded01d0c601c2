"""The downstream pool: one `DownstreamConnection` (and owner task) per configured connector.

Connectors start concurrently and independently: the pool is usable the moment it starts, a slow or
broken connector only delays its own tools, and one connector's crash never touches another's task.

The set of connectors can change while the pool runs (`apply`, driven by `mcp_hub.downstream.reloading`): an added
connector gets its own owner task; a changed one gets a new connection at once (new calls go there) while the old
one retires: it takes no new call, lets its calls in flight finish (each bounded by its call timeout), then closes;
a removed or disabled one retires the same way and its catalog entries go (`on_removed`). Only the current
connection of an id may write the catalog or the health record, so a retiring one can never overwrite its successor.
Other connectors are never touched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import TimeoutsSection
from mcp_hub.domain import ConnectorId, ConnectorListing
from mcp_hub.downstream.connection import DownstreamConnection, HealthCallback, ListingCallback
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.relay import LogSink, ResourceInterest
from mcp_hub.errors import ConnectorUnavailableError

logger = structlog.get_logger(__name__)

ConfiguredCallback = Callable[[Sequence[ConnectorSpec]], Awaitable[None]]
"""The pool is about to serve this set of connectors (registered before any of them reports)."""
RemovedCallback = Callable[[ConnectorId], Awaitable[None]]
"""A connector was removed or disabled: its catalog entries go."""


async def _nothing(*_: object) -> None:
    return None


@dataclass(frozen=True, slots=True)
class PoolChanges:
    """What one `apply` did, by connector id (each list sorted)."""

    added: list[ConnectorId]
    changed: list[ConnectorId]
    removed: list[ConnectorId]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


class DownstreamPool:
    """Owns every connector's connection for the lifetime of `running()`."""

    def __init__(
        self,
        specs: Sequence[ConnectorSpec],
        timeouts: TimeoutsSection,
        *,
        on_listing: ListingCallback,
        on_health: HealthCallback,
        on_configured: ConfiguredCallback = _nothing,
        on_removed: RemovedCallback = _nothing,
        logs: LogSink | None = None,
        resources: ResourceInterest | None = None,
    ) -> None:
        self._timeouts = timeouts
        self._on_listing = on_listing
        self._on_health = on_health
        self._on_configured = on_configured
        self._on_removed = on_removed
        self._logs = logs
        self._resources = resources
        self.connections: dict[ConnectorId, DownstreamConnection] = {spec.id: self._connection(spec) for spec in specs}
        self._tasks: TaskGroup | None = None
        self._owners: dict[DownstreamConnection, anyio.CancelScope] = {}
        self._applying = anyio.Lock()

    def _connection(self, spec: ConnectorSpec) -> DownstreamConnection:
        """A connection whose reports count only while it is the current one of its id."""
        current: list[DownstreamConnection] = []

        async def listed(connector_id: ConnectorId, listing: ConnectorListing) -> None:
            if self.connections.get(connector_id) is current[0]:
                await self._on_listing(connector_id, listing)

        async def health(connector_id: ConnectorId, state: HealthState) -> None:
            if self.connections.get(connector_id) is current[0]:
                await self._on_health(connector_id, state)

        connection = DownstreamConnection(
            spec,
            self._timeouts,
            on_listing=listed,
            on_health=health,
            logs=self._logs,
            resources=self._resources,
        )
        current.append(connection)
        return connection

    @property
    def specs(self) -> list[ConnectorSpec]:
        """The definitions being served, sorted by id."""
        return [connection.spec for _, connection in sorted(self.connections.items())]

    def get(self, connector_id: str) -> DownstreamConnection:
        """The connection of `connector_id`; `ConnectorUnavailableError` for a connector not configured."""
        connection = self.connections.get(ConnectorId(connector_id))
        if connection is None:
            raise ConnectorUnavailableError(connector_id, f"connector {connector_id!r} is not configured")
        return connection

    async def first_attempts_over(self) -> None:
        """Return once every connector has listed or failed its first attempt (disabled ones count as done)."""
        for connection in list(self.connections.values()):
            await connection.first_attempt_over.wait()

    def health(self) -> dict[str, HealthState]:
        return {connector_id: connection.health for connector_id, connection in sorted(self.connections.items())}

    def calls(self) -> dict[str, dict[str, Any]]:
        """Per connector, its calls running and queued and its circuit breaker (`DownstreamConnection.calls_report`)."""
        return {
            connector_id: connection.calls_report() for connector_id, connection in sorted(self.connections.items())
        }

    async def apply(self, specs: Sequence[ConnectorSpec]) -> PoolChanges:
        """Serve exactly `specs` from now on: start the added, replace the changed (by `fingerprint`), retire the
        removed; the others are left alone. Needs `running()`."""
        if self._tasks is None:
            raise RuntimeError("the pool is not running")
        async with self._applying:
            wanted = {spec.id: spec for spec in specs}
            removed = sorted(set(self.connections) - set(wanted))
            serving = {connector_id: connection.spec for connector_id, connection in self.connections.items()}
            changed = sorted(
                connector_id
                for connector_id, spec in wanted.items()
                if connector_id in serving and serving[connector_id].fingerprint != spec.fingerprint
            )
            added = sorted(set(wanted) - set(self.connections))
            changes = PoolChanges(added=added, changed=changed, removed=removed)
            if changes.is_empty:
                return changes
            await self._on_configured([wanted[connector_id] for connector_id in sorted(wanted)])
            # The dictionary changes in one step (no await): a caller sees the old connection or the new one.
            retiring = {connector_id: self.connections.pop(connector_id) for connector_id in (*removed, *changed)}
            starting = {connector_id: self._connection(wanted[connector_id]) for connector_id in (*changed, *added)}
            self.connections.update(starting)
            for connector_id, old in retiring.items():
                why = "was removed" if connector_id in removed else "was reconfigured: call it again"
                self._tasks.start_soon(self._retire, old, why, name=f"retire:{connector_id}")
            for connector_id in sorted(set(removed) | {c for c, new in starting.items() if not new.spec.enabled}):
                await self._on_removed(connector_id)
            for connector_id, connection in starting.items():
                self._owners[connection] = anyio.CancelScope()
                self._tasks.start_soon(self._own, connection, name=f"downstream:{connector_id}")
            logger.info("connectors applied", added=added, changed=changed, removed=removed)
            return changes

    async def _own(self, connection: DownstreamConnection) -> None:
        """A connection's owner task, in a cancel scope of its own (so one connector can be stopped alone)."""
        with self._owners[connection]:
            try:
                await connection.run()
            finally:
                self._owners.pop(connection, None)

    async def _retire(self, connection: DownstreamConnection, why: str) -> None:
        """Refuse new calls, let those in flight finish (bounded by the call timeout), then close the connection."""
        connection.retire(why)
        with anyio.move_on_after(connection.call_timeout + 1):
            await connection.wait_idle()
        scope = self._owners.get(connection)
        if scope is not None:
            scope.cancel()
        logger.info("downstream connection retired", connector=connection.spec.id, why=why)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[DownstreamPool]:
        """Start every connector's owner task; on exit, close every connection (stdio children end)."""
        async with anyio.create_task_group() as tasks:
            for connection in self.connections.values():
                self._owners[connection] = anyio.CancelScope()
                tasks.start_soon(self._own, connection, name=f"downstream:{connection.spec.id}")
            self._tasks = tasks
            try:
                yield self
            finally:
                self._tasks = None
                tasks.cancel_scope.cancel()
