"""Telling connected clients of both eras that the catalog changed.

- 2025-11-25 clients get `notifications/tools/list_changed` on their session's standalone stream
  (https://modelcontextprotocol.io/specification/2025-11-25/server/tools#list-changed-notification);
  the hub remembers every live legacy connection (weakly: a closed session is forgotten by itself).
- 2026-07-28 clients hold a `subscriptions/listen` stream
  (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions), served by
  the SDK's `ListenHandler` over a subscription bus (in-process here; a shared bus for several replicas).

Catalog changes arrive synchronously from the catalog; a background task coalesces a burst of them
into one notification per client, since list-changed is a level, not an edge.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, SubscriptionBus
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.catalog.catalog import CatalogChange


class ChangeNotifier:
    """Fans catalog changes out to legacy sessions and modern listen streams."""

    def __init__(self, bus: SubscriptionBus | None = None) -> None:
        self.bus: SubscriptionBus = bus if bus is not None else InMemorySubscriptionBus()
        self.listen_handler = ListenHandler(self.bus)
        self._legacy_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._tools_changed = anyio.Event()
        self.notifications_sent = 0

    def on_catalog_change(self, change: CatalogChange) -> None:
        """Catalog listener: schedule one notification round."""
        if not change.is_empty:
            self._tools_changed.set()

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

    async def _deliver_forever(self) -> None:
        while True:
            await self._tools_changed.wait()
            self._tools_changed = anyio.Event()
            await self.bus.publish(ToolsListChanged())
            for connection in list(self._legacy_connections):
                if connection.initialized.is_set():
                    await connection.send_tool_list_changed()
            self.notifications_sent += 1
