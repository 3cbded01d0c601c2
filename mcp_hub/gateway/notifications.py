"""Telling connected clients of both eras that the catalog changed: tools, prompts, resources.

- 2025-11-25 clients get `notifications/{tools,prompts,resources}/list_changed` on their session's standalone
  stream (https://modelcontextprotocol.io/specification/2025-11-25/server/tools#list-changed-notification and the
  prompts and resources pages); the hub remembers every live legacy connection (weakly: a closed session is
  forgotten by itself).
- 2026-07-28 clients hold a `subscriptions/listen` stream
  (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions), served by
  the SDK's `ListenHandler` over its in-process subscription bus. With several replicas each tells its own
  streams: every replica has its own downstream connections and catalog, and learns of a change itself (from
  the downstream, or from another replica through `mcp_hub.fanout`'s `catalog` topic, which makes it re-list
  the connector), so nothing of a listen stream needs to be shared (docs/replicas.md).

Catalog changes arrive synchronously from the catalog; a background task coalesces a burst of them
into one notification per client, since list-changed is a level, not an edge.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, SubscriptionBus
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ServerEvent, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.catalog.catalog import CatalogChange
from mcp_hub.domain import CatalogKind, ConnectorId

_LIST_OF: Final = {
    CatalogKind.TOOL: "tools",
    CatalogKind.PROMPT: "prompts",
    CatalogKind.RESOURCE: "resources",
    CatalogKind.RESOURCE_TEMPLATE: "resources",
}
_EVENTS: Final[dict[str, ServerEvent]] = {
    "tools": ToolsListChanged(),
    "prompts": PromptsListChanged(),
    "resources": ResourcesListChanged(),
}


class ChangeNotifier:
    """Fans catalog changes out to legacy sessions and modern listen streams."""

    def __init__(
        self,
        bus: SubscriptionBus | None = None,
        *,
        connector: ConnectorId | None = None,
        interested: Callable[[CatalogChange], bool] | None = None,
    ) -> None:
        """`connector`: a connector's profile notifier hears only of that connector's changes; `interested`: a
        virtual server's hears only of changes to what it shows (issue 11 §6)."""
        self._connector = connector
        self._interested = interested
        self.bus: SubscriptionBus = bus if bus is not None else InMemorySubscriptionBus()
        self.listen_handler = ListenHandler(self.bus)
        self._legacy_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._changed = anyio.Event()
        self._lists_changed: set[str] = set()
        self.notifications_sent = 0

    def on_catalog_change(self, change: CatalogChange) -> None:
        """Catalog listener: schedule one notification round."""
        if (
            not change.is_empty
            and self._connector in (None, change.connector_id)
            and (self._interested is None or self._interested(change))
        ):
            self._lists_changed.add(_LIST_OF[change.kind])
            self._changed.set()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: remember every legacy connection that talks to the hub."""
        if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
            self._legacy_connections.add(ctx.session._connection)  # pyright: ignore[reportPrivateUsage]
        return await call_next(ctx)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[ChangeNotifier]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._deliver_forever)
            try:
                yield self
            finally:
                self.listen_handler.close()
                tasks.cancel_scope.cancel()

    async def publish(self, event: ServerEvent) -> None:
        """Hand an event (e.g. a resource update) to every 2026-07-28 listen stream that asked for it."""
        await self.bus.publish(event)

    async def _deliver_forever(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            changed, self._lists_changed = sorted(self._lists_changed), set()
            for name in changed:
                await self.bus.publish(_EVENTS[name])
                for connection in list(self._legacy_connections):
                    if connection.initialized.is_set():
                        await connection.notify(f"notifications/{name}/list_changed", None)
            self.notifications_sent += 1
