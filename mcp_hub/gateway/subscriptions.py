"""Resource subscriptions through the hub, in both eras (issue 9 §1).

- 2025-11-25: `resources/subscribe` / `resources/unsubscribe` on a session, `notifications/resources/updated` on
  its standalone stream (https://modelcontextprotocol.io/specification/2025-11-25/server/resources#subscriptions).
- 2026-07-28: `subscriptions/listen` with `resourceSubscriptions`, updates on that stream
  (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions).

A caller may subscribe only to URIs the hub handed out and its grants allow (`resource:` over public URIs); a
listen request's other URIs are left out of the acknowledged filter, as the spec lets a server do. The hub holds
one subscription per resource on the shared downstream session, for as long as some caller wants it
(`ResourceInterest`, which the pool follows), and fans each update out under the public URI to every caller that
subscribed: sessions directly, listen streams through the notifier's bus. Sessions are remembered weakly: a
session that ends stops counting at the next change.
"""

from __future__ import annotations

import itertools
import weakref
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Final

import anyio
import mcp_types as types
import structlog
from mcp.server.connection import Connection
from mcp.server.context import ServerRequestContext
from mcp.shared.subscriptions import ResourceUpdated

from mcp_hub.authz.scopes import required_scope
from mcp_hub.catalog.catalog import Catalog, ResourceTarget
from mcp_hub.catalog.names import public_uri
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.domain import ConnectorId
from mcp_hub.errors import AccessDeniedError, InvalidInputError, ResourceNotFoundError
from mcp_hub.gateway.caller import Asking, CallerResolver
from mcp_hub.gateway.notifications import ChangeNotifier

logger = structlog.get_logger(__name__)

APPLY_SECONDS: Final = 5.0
"""How long a subscribe waits for the downstream to acknowledge before it answers anyway."""


class ResourceSubscriptions:
    """Who wants updates of which resources, and the updates' way back (a `ResourceInterest` for the pool)."""

    def __init__(
        self, catalog: Catalog, notifier: ChangeNotifier, profiles: Mapping[ConnectorId, ChangeNotifier] | None = None
    ) -> None:
        """`profiles`: each connector's profile notifier, whose listeners name resources as the downstream does."""
        self._catalog = catalog
        self._notifier = notifier
        self._profiles = dict(profiles or {})
        # Per session: the public URIs it subscribed to, each with the URI as the session named it.
        self._sessions: weakref.WeakKeyDictionary[Connection, dict[str, str]] = weakref.WeakKeyDictionary()
        self._streams: dict[int, frozenset[str]] = {}
        self._stream_numbers = itertools.count(1)
        self._wanted: dict[ConnectorId, frozenset[str]] = {}
        self._changed = anyio.Event()
        self._applied: dict[ConnectorId, frozenset[str]] = {}
        self._applied_changed = anyio.Event()

    # --- the pool's side ---------------------------------------------------------------------------------------

    def wanted(self, connector_id: ConnectorId) -> frozenset[str]:
        return self._wanted.get(connector_id, frozenset())

    def interest_changes(self) -> anyio.Event:
        return self._changed

    def applied(self, connector_id: ConnectorId, downstream_uris: frozenset[str]) -> None:
        self._applied[connector_id] = downstream_uris
        changed, self._applied_changed = self._applied_changed, anyio.Event()
        changed.set()

    async def wait_applied(self, target: ResourceTarget, *, within_seconds: float) -> bool:
        """Wait until the connector is subscribed to `target` downstream; False if not within the time."""
        with anyio.move_on_after(within_seconds):
            while target.downstream_uri not in self._applied.get(target.connector_id, frozenset()):
                await self._applied_changed.wait()
            return True
        return False

    async def updated(self, connector_id: ConnectorId, downstream_uri: str) -> None:
        uri = public_uri(connector_id, downstream_uri)
        for connection, uris in list(self._sessions.items()):
            if uri in uris:
                await connection.send_resource_updated(uris[uri])
        await self._notifier.publish(ResourceUpdated(uri=uri))
        profile = self._profiles.get(connector_id)
        if profile is not None:
            await profile.publish(ResourceUpdated(uri=downstream_uri))

    # --- the callers' side -------------------------------------------------------------------------------------

    def target(self, reader: CatalogReader, asking: Asking, uri: str) -> ResourceTarget:
        """The resource (named as `reader` names it) a caller may subscribe to; `ResourceNotFoundError`,
        `AccessDeniedError` or `InvalidInputError` (its connector does not offer subscriptions) otherwise."""
        target = reader.resolve_resource(uri)
        public = target.public_uri
        if not asking.allows(public, "resource"):
            raise AccessDeniedError(public, required_scope("resource", public), "resource")
        if not self._catalog.offer(target.connector_id).subscribe:
            raise InvalidInputError(f"connector {target.connector_id!r} does not offer resource subscriptions")
        return target

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], reader: CatalogReader, asking: Asking, uri: str
    ) -> None:
        """Subscribe a session; returns once the downstream has the subscription (or after `APPLY_SECONDS`, when it
        is not connected: it gets the subscription when it connects)."""
        target = self.target(reader, asking, uri)
        self._sessions.setdefault(_connection_of(ctx), {})[target.public_uri] = uri
        self._recompute()
        if not await self.wait_applied(target, within_seconds=APPLY_SECONDS):
            logger.info("resource subscription not yet applied downstream", connector=target.connector_id)

    def unsubscribe(self, ctx: ServerRequestContext[Any, Any], uri: str) -> None:
        subscribed = self._sessions.get(_connection_of(ctx), {})
        for public, named in list(subscribed.items()):
            if named == uri:
                del subscribed[public]
        self._recompute()

    def open_stream(
        self, reader: CatalogReader, asking: Asking, uris: Iterable[str]
    ) -> tuple[int, list[tuple[str, ResourceTarget]]]:
        """A listen stream's subscriptions: its handle (`close_stream` it), and the ones it may have, each as the
        stream named it and where it leads (the rest is left out)."""
        honored: list[tuple[str, ResourceTarget]] = []
        for uri in uris:
            try:
                honored.append((uri, self.target(reader, asking, uri)))
            except (ResourceNotFoundError, AccessDeniedError, InvalidInputError):
                continue
        handle = next(self._stream_numbers)
        self._streams[handle] = frozenset(target.public_uri for _, target in honored)
        self._recompute()
        return handle, honored

    def close_stream(self, handle: int) -> None:
        self._streams.pop(handle, None)
        self._recompute()

    def _recompute(self) -> None:
        wanted: defaultdict[ConnectorId, set[str]] = defaultdict(set)
        for uris in [*(set(subscribed) for subscribed in self._sessions.values()), *self._streams.values()]:
            for uri in uris:
                try:
                    target = self._catalog.resolve_resource(uri)
                except ResourceNotFoundError:
                    continue  # the resource went away; its subscription lapses with it
                wanted[target.connector_id].add(target.downstream_uri)
        frozen = {connector: frozenset(uris) for connector, uris in wanted.items()}
        if frozen != self._wanted:
            self._wanted = frozen
            changed, self._changed = self._changed, anyio.Event()
            changed.set()


def _connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    return ctx.session._connection  # pyright: ignore[reportPrivateUsage]


class SubscriptionRequests:
    """The subscription methods of the hub's MCP server."""

    def __init__(
        self,
        reader: CatalogReader,
        subscriptions: ResourceSubscriptions,
        notifier: ChangeNotifier,
        resolve: CallerResolver,
    ) -> None:
        self._reader = reader
        self._subscriptions = subscriptions
        self._notifier = notifier
        self._resolve = resolve

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> dict[str, Any]:
        await self._subscriptions.subscribe(ctx, self._reader, await self._resolve(ctx), str(params.uri))
        return {}

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> dict[str, Any]:
        self._subscriptions.unsubscribe(ctx, str(params.uri))
        return {}

    async def listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        asking = await self._resolve(ctx)
        requested = params.notifications.resource_subscriptions or []
        handle, honored = self._subscriptions.open_stream(self._reader, asking, requested)
        uris = [named for named, _ in honored]
        notifications = params.notifications.model_copy(update={"resource_subscriptions": uris or None})
        try:
            for _, target in honored:  # the acknowledgement means updates flow, as for `resources/subscribe`
                await self._subscriptions.wait_applied(target, within_seconds=APPLY_SECONDS)
            return await self._notifier.listen_handler(ctx, params.model_copy(update={"notifications": notifications}))
        finally:
            self._subscriptions.close_stream(handle)
