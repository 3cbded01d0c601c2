"""One long-lived connection to one downstream MCP server, owned by one task.

The SDK `Client` cannot be re-entered and must be exited by the task that entered it, so each
connector has exactly one owner task (`DownstreamConnection.run`) that connects, lists what the server
offers (tools; prompts, resources and resource templates when it declares them), serves requests until the
connection is lost, and reconnects with exponential backoff. Requests borrow the live session; nothing on
the request path opens a connection or performs a handshake.

Change detection follows the era: a 2025-11-25 server pushes `notifications/*/list_changed` on its
session, a 2026-07-28 server delivers them on a `subscriptions/listen` stream
(https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions), which the
owner keeps open whenever the server advertises `listChanged` for something it lists.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import anyio
import mcp_types as types
import structlog
from mcp import Client
from mcp.client.session import ClientRequestContext, ClientSession, IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ToolsListChanged
from mcp_types.jsonrpc import CONNECTION_CLOSED, INTERNAL_ERROR, INVALID_REQUEST, REQUEST_TIMEOUT
from pydantic import BaseModel, ValidationError

import mcp_hub
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import TimeoutsSection
from mcp_hub.domain import ConnectorId, ConnectorListing, Health
from mcp_hub.downstream._raw import send_raw_request
from mcp_hub.downstream.breaker import CircuitBreaker
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.lean import LeanForwarder
from mcp_hub.downstream.lean_http import LeanHttpClient, StreamHandlers
from mcp_hub.downstream.lean_stdio import RawLane
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.downstream.progress import CoalescedProgress
from mcp_hub.downstream.relay import RELATED_REQUEST_META_KEY, LogSink, Relay, ResourceInterest
from mcp_hub.downstream.slots import CallSlots
from mcp_hub.downstream.transport import build_transport, downstream_auth
from mcp_hub.errors import (
    ConnectorUnavailableError,
    DownstreamError,
    DownstreamProtocolError,
    DownstreamRejectedError,
    DownstreamTimeoutError,
    QuestionRefusedError,
)

logger = structlog.get_logger(__name__)

MAX_LIST_PAGES = 1_000
"""A downstream that keeps returning cursors is cut off here rather than listed forever."""
MAX_LIST_ENTRIES = 10_000
"""At most this many tools (and as many prompts, resources, templates) per connector; the rest is logged."""

ListingCallback = Callable[[ConnectorId, ConnectorListing], Awaitable[None]]
"""A connector listed everything it offers."""

_NOT_ATTRIBUTABLE: Final = "mcp-hub cannot tell which of its callers this request is for"

_LIST_CHANGED: Final = (
    types.ToolListChangedNotification,
    types.PromptListChangedNotification,
    types.ResourceListChangedNotification,
)
_CHANGE_EVENTS: Final = (ToolsListChanged, PromptsListChanged, ResourcesListChanged)
_LIST_CHANGED_METHODS: Final = frozenset(
    {"notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"}
)
HealthCallback = Callable[[ConnectorId, HealthState], Awaitable[None]]
"""A connector's health changed."""

_ERA_MODES: dict[str, str] = {"auto": "auto", "legacy": "legacy", "2026-07-28": "2026-07-28"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner: list[BaseException] = list(exc.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        return "; ".join(_describe(item) for item in inner)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


_SDK_MESSAGES: Final = ("Connection closed", "SSE stream", "Request ")


def _made_by_the_sdk(error: types.ErrorData) -> bool:
    """Did the SDK's client make this error (a closed connection, an abandoned stream, its own timeout), rather
    than the downstream? The codes collide with what a downstream may send (threat T32); the SDK's own errors
    carry no data and one of its fixed messages."""
    return error.data is None and error.message.startswith(_SDK_MESSAGES)


def _changes(capability: types.ToolsCapability | types.PromptsCapability | types.ResourcesCapability | None) -> bool:
    return capability is not None and capability.list_changed is True


def _announces_changes(capabilities: types.ServerCapabilities) -> bool:
    return _changes(capabilities.tools) or _changes(capabilities.prompts) or _changes(capabilities.resources)


@dataclass(slots=True)
class _InFlight:
    """A forwarded request: its caller's relay, and its timeout (stretched while the caller answers a question)."""

    relay: Relay
    deadline: anyio.CancelScope


class DownstreamConnection:
    """The owner of one connector's client, its health, and its call concurrency."""

    def __init__(
        self,
        spec: ConnectorSpec,
        timeouts: TimeoutsSection,
        *,
        on_listing: ListingCallback,
        on_health: HealthCallback,
        logs: LogSink | None = None,
        resources: ResourceInterest | None = None,
    ) -> None:
        """`logs` sets a 2025-11-25 downstream's log level and receives the entries of no forwarded request;
        `resources` says which resources to subscribe to and hears their updates."""
        self.spec = spec
        self._timeouts = timeouts
        self._on_listing = on_listing
        self._on_health = on_health
        self._logs = logs
        self._resources = resources
        self._client: Client | None = None
        self._lean: LeanForwarder | None = None
        """The forwarding path of a 2026-07-28 connection (`mcp_hub.downstream.lean`); None: the SDK session's."""
        self._slots = CallSlots(spec.max_concurrent_calls)
        self.breaker = CircuitBreaker(spec.breaker_failures, spec.breaker_cooldown_seconds)
        self._calls: set[str] = set()
        """Ids of the requests in flight on the connection."""
        self._idle: anyio.Event | None = None
        """Made by `wait_idle` while calls are in flight; set (and dropped) when the last one ends."""
        self.retired: str | None = None
        """Why the connection takes no more calls (its connector file changed or went): set by `retire`."""
        self._oversized: set[str] = set()
        """Requests in flight whose answer was over `max_message_bytes` and abandoned."""
        self._lost = anyio.Event()
        self._lost_reason: str | None = None
        self._refresh_requested = anyio.Event()
        self._ready = anyio.Event()
        self.first_attempt_over = anyio.Event()
        """Set once the connector has listed, or failed its first attempt (or is disabled)."""
        self._health_changed = anyio.Event()
        self.connections_made = 0
        self._in_flight: dict[str, _InFlight] = {}
        self._request_numbers = itertools.count(1)
        self._param_headers: dict[str, dict[tuple[str, ...], str]] = {}
        """Per tool of the last listing, the arguments a 2026-07-28 call mirrors into `Mcp-Param-*` headers."""
        # Only Streamable HTTP tells which request a message came with (`mcp_hub.downstream.tagging`).
        self._messages_are_tagged = spec.transport == "http"
        self.health = HealthState(state=Health.CONNECTING if spec.enabled else Health.DISABLED, since=datetime.now(UTC))

    @property
    def forwards_lean(self) -> bool:
        """Does the live connection forward requests on the lean path (`mcp_hub.downstream.lean`)?"""
        return self._lean is not None

    @property
    def call_timeout(self) -> float:
        return self.spec.call_timeout_seconds or self._timeouts.call_seconds

    def refresh(self) -> None:
        """List everything again (now if connected, else right after connecting): the periodic re-list that
        catches a definition changed without an announcement (issue 11 §2)."""
        self._refresh_requested.set()

    async def wait_ready(self) -> None:
        """Return once the connector has been ready at least once since it started."""
        await self._ready.wait()

    async def wait_for(self, *states: Health) -> HealthState:
        """Return the health state as soon as it is one of `states`."""
        while self.health.state not in states:
            await self._health_changed.wait()
        return self.health

    async def wait_connections(self, count: int) -> None:
        """Return once the connector has become ready `count` times (reconnects included)."""
        while self.connections_made < count:
            await self._health_changed.wait()

    def retire(self, reason: str) -> None:
        """Take no more calls (they are refused with `reason`); those in flight carry on (`wait_idle`)."""
        self.retired = reason

    async def wait_idle(self) -> None:
        """Return once no request is in flight or queued on this connection."""
        while self._calls:
            if self._idle is None:
                self._idle = anyio.Event()
            await self._idle.wait()

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff; returns only when cancelled or disabled."""
        if not self.spec.enabled:
            await self._set_health(Health.DISABLED, "enabled = false in the connector file")
            return
        backoff = self._timeouts.reconnect_initial_seconds
        attempts = 0
        while True:
            self._lost = anyio.Event()
            self._lost_reason = None
            await self._set_health(Health.CONNECTING, self.health.detail, attempts=attempts)
            try:
                connected = await self._serve_one_connection()
            except Exception as exc:  # noqa: BLE001 - a connector's failure, whatever it is, must not end its owner task
                connected = False
                self._lost_reason = _describe(exc)
            finally:
                self._client = None
                self._lean = None
            if connected:
                attempts, backoff = 0, self._timeouts.reconnect_initial_seconds
            attempts += 1
            if attempts == 1 or self._lost_reason != self.health.detail:
                logger.warning("downstream connection lost", connector=self.spec.id, reason=self._lost_reason)
            await self._set_health(Health.DOWN, self._lost_reason, attempts=attempts)
            # Equal jitter (half fixed, half random) keeps replicas and connectors from reconnecting in lockstep.
            await anyio.sleep(random.uniform(backoff / 2, backoff))  # noqa: S311 - jitter, not security
            backoff = min(backoff * 2, self._timeouts.reconnect_max_seconds)

    async def _serve_one_connection(self) -> bool:
        """Serve one connection until it is lost; True if it got as far as ready."""
        async with AsyncExitStack() as stack:
            auth = await stack.enter_async_context(downstream_auth(self.spec, self._timeouts.connect_seconds))
            lane = RawLane() if self.spec.transport == "stdio" else None
            client = Client(
                build_transport(
                    self.spec,
                    connect_timeout=self._timeouts.connect_seconds,
                    on_end=self._mark_lost,
                    on_oversized=self._on_oversized,
                    auth=auth,
                    lane=lane,
                ),
                mode=_ERA_MODES[self.spec.protocol],  # pyright: ignore[reportArgumentType]
                read_timeout_seconds=self._timeouts.connect_seconds,
                message_handler=self._on_message,
                # Declared so that downstreams may ask; each question goes to the caller it belongs to, or is
                # refused (`Relay.ask`): the caller's own capabilities decide, not the hub's.
                elicitation_callback=self._on_elicitation,
                sampling_callback=self._on_sampling,
                # The SDK declares `roots` with `listChanged: true` for a callback; the hub sends no
                # `notifications/roots/list_changed` (roots are per caller: `mcp_hub.gateway.relaying`).
                list_roots_callback=self._on_list_roots,
                sampling_capabilities=types.SamplingCapability(
                    context=types.SamplingContextCapability(), tools=types.SamplingToolsCapability()
                ),
                client_info=types.Implementation(name="mcp-hub", version=mcp_hub.__version__),
                cache=None,
            )
            await stack.enter_async_context(client)
            # Exits run last in, first out: the connection is marked lost before the client fails what is pending.
            stack.callback(self._mark_lost, "the hub closed the connection")
            capabilities = await self._server_capabilities(client)
            listing = await self._list_everything(client, capabilities)
            self._lean = await self._lean_forwarder(stack, client, auth, lane)
            # Callable before the catalog announces the tools: a client may call as soon as it hears of them.
            self._client = client
            self.connections_made += 1
            await self._on_listing(self.spec.id, listing)
            logger.info(
                "downstream ready",
                connector=self.spec.id,
                era=client.protocol_version,
                tools=len(listing.tools),
                prompts=len(listing.prompts),
                resources=len(listing.resources),
                resource_templates=len(listing.resource_templates),
            )
            await self._set_health(Health.READY, None, era=client.protocol_version, tool_count=len(listing.tools))
            self._ready.set()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._refresh_on_request, client, capabilities)
                subscribes = bool(capabilities.resources and capabilities.resources.subscribe) and (
                    self._resources is not None
                )
                if client.protocol_version == "2026-07-28":
                    if _announces_changes(capabilities) or subscribes:
                        tasks.start_soon(self._listen_for_changes, client, capabilities, subscribes)
                else:
                    if capabilities.logging and self._logs is not None:
                        tasks.start_soon(self._follow_log_level, client, self._logs)
                    if subscribes and self._resources is not None:
                        tasks.start_soon(self._follow_subscriptions, client, self._resources)
                await self._lost.wait()
                tasks.cancel_scope.cancel()
            return True

    async def _lean_forwarder(
        self, stack: AsyncExitStack, client: Client, auth: ClientCredentialsAuth | None, lane: RawLane | None
    ) -> LeanForwarder | None:
        """The lean path for forwarded requests of a 2026-07-28 Streamable HTTP or stdio connection (issue 12 §1)."""
        if client.protocol_version != "2026-07-28" or not self.spec.lean_forwarding:
            return None
        if lane is not None:
            return LeanForwarder(self.spec.id, client.session, lane=lane)
        if self.spec.transport != "http" or self.spec.url is None:
            return None
        http = LeanHttpClient(
            self.spec.id,
            self.spec.url,
            headers=self.spec.resolved_headers(),
            auth=auth,
            max_message_bytes=self.spec.max_message_bytes,
            connect_timeout=self._timeouts.connect_seconds,
            on_lost=self._mark_lost,
        )
        await stack.enter_async_context(http)
        return LeanForwarder(self.spec.id, client.session, http=http)

    async def _server_capabilities(self, client: Client) -> types.ServerCapabilities:
        if self.spec.protocol != "2026-07-28":
            return client.server_capabilities
        # A pinned modern era skips the handshake, so the client only holds placeholder capabilities.
        raw = await client.session.send_discover("2026-07-28")
        return types.DiscoverResult.model_validate(raw).capabilities

    async def _list_everything(self, client: Client, capabilities: types.ServerCapabilities) -> ConnectorListing:
        """Every list the server declares (tools always), each walked to its end (bounded)."""
        session = client.session
        tools = await self._list_all("tools/list", "tools", types.Tool, session)
        self._param_headers = _param_header_maps(tools)
        prompts = await self._list_all("prompts/list", "prompts", types.Prompt, session) if capabilities.prompts else ()
        resources: tuple[dict[str, Any], ...] = ()
        templates: tuple[dict[str, Any], ...] = ()
        if capabilities.resources:
            resources = await self._list_all("resources/list", "resources", types.Resource, session)
            templates = await self._list_all(
                "resources/templates/list", "resourceTemplates", types.ResourceTemplate, session
            )
        return ConnectorListing(
            tools=tools,
            prompts=prompts,
            resources=resources,
            resource_templates=templates,
            capabilities=capabilities.model_dump(by_alias=True, mode="json", exclude_none=True),
        )

    async def _list_all(
        self, method: str, key: str, model: type[BaseModel], session: ClientSession
    ) -> tuple[dict[str, Any], ...]:
        """All pages of one list; an entry that is not a valid definition is dropped (and logged), not relayed."""
        definitions: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            params: dict[str, Any] = {} if cursor is None else {"cursor": cursor}
            with anyio.fail_after(self._timeouts.connect_seconds):
                page = await send_raw_request(session, method, params)
            items = page.get(key)
            if not isinstance(items, list):
                raise DownstreamProtocolError(self.spec.id, f"{method} answered without a {key!r} list")
            for item in cast("list[Any]", items):
                try:
                    valid = model.model_validate(item, by_name=False)
                except ValidationError as exc:
                    logger.warning(
                        "invalid list entry dropped", connector=self.spec.id, method=method, error=str(exc)[:300]
                    )
                    continue
                definitions.append(valid.model_dump(by_alias=True, mode="json", exclude_none=True))
            if len(definitions) >= MAX_LIST_ENTRIES:
                logger.warning("listing cut off", connector=self.spec.id, method=method, entries=MAX_LIST_ENTRIES)
                return tuple(definitions[:MAX_LIST_ENTRIES])
            next_cursor = page.get("nextCursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return tuple(definitions)
            cursor = next_cursor
        logger.warning("listing cut off", connector=self.spec.id, method=method, pages=MAX_LIST_PAGES)
        return tuple(definitions)

    async def _refresh_on_request(self, client: Client, capabilities: types.ServerCapabilities) -> None:
        while True:
            await self._refresh_requested.wait()
            self._refresh_requested = anyio.Event()
            try:
                listing = await self._list_everything(client, capabilities)
            except Exception as exc:  # noqa: BLE001 - any failure to list means the session is unusable
                self._mark_lost(f"listing failed: {_describe(exc)}")
                return
            await self._on_listing(self.spec.id, listing)
            await self._set_health(Health.READY, None, era=client.protocol_version, tool_count=len(listing.tools))

    async def _follow_log_level(self, client: Client, logs: LogSink) -> None:
        """Keep a shared 2025-11-25 session at the level the hub's callers want (they are filtered one by one)."""
        applied: str | None = None
        while True:
            changed = logs.level_changes()
            wanted = logs.wanted_level()
            if wanted is not None and wanted != applied:
                try:
                    with anyio.fail_after(self.call_timeout):
                        await send_raw_request(client.session, "logging/setLevel", {"level": wanted})
                    applied = wanted
                except (MCPError, TimeoutError) as exc:
                    logger.warning("downstream refused a log level", connector=self.spec.id, error=_describe(exc))
            await changed.wait()

    async def _follow_subscriptions(self, client: Client, resources: ResourceInterest) -> None:
        """Keep a 2025-11-25 session subscribed to exactly the resources some caller wants updates of."""
        subscribed: set[str] = set()
        while True:
            changed = resources.interest_changes()
            wanted = resources.wanted(self.spec.id)
            for method, uris in (
                ("resources/subscribe", wanted - subscribed),
                ("resources/unsubscribe", subscribed - wanted),
            ):
                for uri in sorted(uris):
                    try:
                        with anyio.fail_after(self.call_timeout):
                            await send_raw_request(client.session, method, {"uri": uri})
                    except (MCPError, TimeoutError) as exc:
                        logger.warning(
                            "downstream refused", connector=self.spec.id, method=method, error=_describe(exc)
                        )
                        continue
                    if method == "resources/subscribe":
                        subscribed.add(uri)
                    else:
                        subscribed.discard(uri)
            resources.applied(self.spec.id, frozenset(subscribed))
            await changed.wait()

    async def _listen_for_changes(
        self, client: Client, capabilities: types.ServerCapabilities, subscribes: bool
    ) -> None:
        """Keep a 2026-07-28 `subscriptions/listen` stream open for list changes and the wanted resources;
        listen again whenever the wanted resources change."""
        resources = self._resources if subscribes else None
        try:
            while True:
                changed = resources.interest_changes() if resources is not None else anyio.Event()
                uris = sorted(resources.wanted(self.spec.id)) if resources is not None else []
                if not _announces_changes(capabilities) and not uris:
                    await changed.wait()
                    continue
                if not await self._listen_until(client, capabilities, uris, changed):
                    self._mark_lost("the downstream ended its subscriptions/listen stream")
                    return
        except Exception as exc:  # noqa: BLE001 - a lost stream means missed changes: reconnect and re-list
            self._mark_lost(f"subscriptions/listen failed: {_describe(exc)}")

    async def _listen_until(
        self, client: Client, capabilities: types.ServerCapabilities, uris: list[str], changed: anyio.Event
    ) -> bool:
        """One listen stream; True when it was ended because `changed` fired, False when the downstream ended it."""
        restart = False
        async with (
            client.listen(
                tools_list_changed=_changes(capabilities.tools),
                prompts_list_changed=_changes(capabilities.prompts),
                resources_list_changed=_changes(capabilities.resources),
                resource_subscriptions=uris,
            ) as subscription,
            anyio.create_task_group() as watchers,
        ):

            async def restart_on_change() -> None:
                nonlocal restart
                await changed.wait()
                restart = True
                watchers.cancel_scope.cancel()

            watchers.start_soon(restart_on_change)
            if self._resources is not None:
                self._resources.applied(self.spec.id, frozenset(subscription.honored.resource_subscriptions or ()))
            async for event in subscription:
                if isinstance(event, _CHANGE_EVENTS):
                    self._refresh_requested.set()
                else:
                    await self._resources_updated(event.uri)
            watchers.cancel_scope.cancel()
        return restart

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            logger.warning("downstream transport error", connector=self.spec.id, error=_describe(message))
            await self._set_health(Health.DEGRADED, _describe(message))
            self._refresh_requested.set()  # the refresh doubles as a probe: failure marks the connection lost
        elif isinstance(message, _LIST_CHANGED):
            self._refresh_requested.set()
        elif isinstance(message, types.LoggingMessageNotification):
            await self._relay_log(message.params)
        elif isinstance(message, types.ResourceUpdatedNotification) and self._hears_updates_here():
            await self._resources_updated(str(message.params.uri))

    def _hears_updates_here(self) -> bool:
        """A 2026-07-28 update arrives on the listen stream, which handles it (the SDK tees it to the handler)."""
        return self._client is not None and self._client.protocol_version != "2026-07-28"

    async def _resources_updated(self, downstream_uri: str) -> None:
        if self._resources is not None:
            await self._resources.updated(self.spec.id, downstream_uri)

    def _relay_for(self, meta: Mapping[str, Any] | None) -> _InFlight | None:
        """The forwarded request a downstream's message belongs to, if that can be known (see `relay`)."""
        if self._messages_are_tagged:
            related = (meta or {}).get(RELATED_REQUEST_META_KEY)
            return self._in_flight.get(related) if isinstance(related, str) else None
        if len(self._in_flight) == 1:
            return next(iter(self._in_flight.values()))
        return None

    async def _relay_log(self, params: types.LoggingMessageNotificationParams) -> None:
        await self._relay_log_wire(params.model_dump(by_alias=True, mode="json", exclude_none=True))

    async def _relay_log_wire(self, wire: dict[str, Any]) -> None:
        """Relay a `notifications/message`'s params (wire form) to the caller of its request, if known."""
        raw_meta = wire.pop("_meta", None)
        meta: dict[str, Any] = dict(cast("dict[str, Any]", raw_meta)) if isinstance(raw_meta, dict) else {}
        in_flight = self._relay_for(meta)
        meta.pop(RELATED_REQUEST_META_KEY, None)
        if meta:
            wire["_meta"] = meta
        if in_flight is not None:
            await in_flight.relay.log(self.spec.id, wire)
        elif self._logs is not None:
            await self._logs.unsolicited(self.spec.id, wire)

    async def _ask(self, meta: Mapping[str, Any] | None, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        in_flight = self._relay_for(meta)
        if in_flight is None:
            raise QuestionRefusedError(INVALID_REQUEST, _NOT_ATTRIBUTABLE)
        wire = {key: value for key, value in params.items() if key != "_meta"}
        started = anyio.current_time()
        try:
            return await in_flight.relay.ask(self.spec.id, method, wire)
        finally:
            # The caller's time to answer does not count against the call timeout.
            in_flight.deadline.deadline += anyio.current_time() - started

    async def _on_elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            answer = await self._ask(context.meta, "elicitation/create", wire)
            return types.ElicitResult.model_validate(answer, by_name=False)
        except QuestionRefusedError as exc:
            return types.ErrorData(code=exc.code, message=str(exc))
        except ValidationError:
            return types.ErrorData(code=INTERNAL_ERROR, message="the caller's answer is not an elicitation result")

    async def _on_sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        try:
            answer = await self._ask(context.meta, "sampling/createMessage", wire)
            if params.tools:
                return types.CreateMessageResultWithTools.model_validate(answer, by_name=False)
            return types.CreateMessageResult.model_validate(answer, by_name=False)
        except QuestionRefusedError as exc:
            return types.ErrorData(code=exc.code, message=str(exc))
        except ValidationError:
            return types.ErrorData(code=INTERNAL_ERROR, message="the caller's answer is not a sampling result")

    async def _on_list_roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        try:
            answer = await self._ask(context.meta, "roots/list", {})
            return types.ListRootsResult.model_validate(answer, by_name=False)
        except QuestionRefusedError as exc:
            return types.ErrorData(code=exc.code, message=str(exc))
        except ValidationError:
            return types.ErrorData(code=INTERNAL_ERROR, message="the caller's answer is not a roots list")

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

    def _mcp_param_headers(self, method: str, params: Mapping[str, Any]) -> dict[str, str]:
        """The `Mcp-Param-*` headers a 2026-07-28 `tools/call` carries: the SDK's client would mirror the arguments
        the tool's schema marks `x-mcp-header`, but only for tools its own `list_tools` saw, and the hub lists raw
        (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports#custom-headers)."""
        name = params.get("name")
        arguments = params.get("arguments")
        if method != "tools/call" or not isinstance(name, str) or name not in self._param_headers:
            return {}
        given: Mapping[str, Any] = cast("Mapping[str, Any]", arguments) if isinstance(arguments, Mapping) else {}
        return mcp_param_headers(self._param_headers[name], given)

    async def _set_health(
        self,
        state: Health,
        detail: str | None,
        *,
        era: str | None = None,
        tool_count: int | None = None,
        attempts: int | None = None,
    ) -> None:
        previous = self.health
        self.health = HealthState(
            state=state,
            since=previous.since if previous.state == state else datetime.now(UTC),
            detail=detail,
            era=era if era is not None else previous.era,
            tool_count=tool_count if tool_count is not None else previous.tool_count,
            attempts=attempts if attempts is not None else previous.attempts,
        )
        if state in (Health.READY, Health.DOWN, Health.DISABLED):
            self.first_attempt_over.set()
        if self.health != previous:
            changed, self._health_changed = self._health_changed, anyio.Event()
            changed.set()
            await self._on_health(self.spec.id, self.health)

    def calls_report(self) -> dict[str, Any]:
        """Calls running and waiting, and the circuit breaker, as `/healthz` shows them."""
        return {
            "running": self._slots.running,
            "queued": self._slots.waiting,
            "max_concurrent": self.spec.max_concurrent_calls,
            "max_queued": self.spec.max_queued_calls,
            "breaker": self.breaker.report(),
        }

    def _on_oversized(self, related: object) -> None:
        """An HTTP response was over `max_message_bytes` and abandoned (`mcp_hub.downstream.tagging`)."""
        if isinstance(related, str) and related in self._calls:
            self._oversized.add(related)  # that call fails with the reason; the connection carries on
        elif self.spec.transport == "sse" and related is None:
            # The legacy transport's one stream carries every answer: it cannot be read past the cut.
            self._mark_lost(f"the downstream sent a message larger than {self.spec.max_message_bytes} bytes")

    def _admit(self) -> None:
        """Refuse a call at once when the queue is full or the circuit breaker is open (threat T25)."""
        slots = self._slots
        if slots.full and slots.waiting >= self.spec.max_queued_calls:
            raise ConnectorUnavailableError(
                self.spec.id,
                f"connector {self.spec.id!r} is busy: {slots.running} calls running and "
                f"{slots.waiting} waiting (max_concurrent_calls = {self.spec.max_concurrent_calls}, "
                f"max_queued_calls = {self.spec.max_queued_calls}); try again later",
            )
        refusal = self.breaker.admit()
        if refusal is not None:
            raise ConnectorUnavailableError(self.spec.id, f"connector {self.spec.id!r}: {refusal.reason}")

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        on_progress: ProgressFnT | None = None,
        relay: Relay | None = None,
        trace: Mapping[str, str] | None = None,
        timing: CallTiming | None = None,
    ) -> dict[str, Any]:
        """Send one request on the live session; raises a `DownstreamError` subclass on failure.

        With a `relay`, what the downstream sends while serving it (log entries, questions) reaches that caller,
        and a 2026-07-28 downstream sees the caller's capabilities and log level, not the hub's. Its progress
        reaches `on_progress` at most once per `progress_interval_ms` (the newest, and the last before the result).
        `trace`: W3C trace context (`traceparent`, `tracestate`) sent in `_meta` and, over HTTP, as headers.
        `timing`: where the time spent waiting on the downstream is noted (from the moment the concurrency limit
        admits the request until its answer or failure; queueing for the limit is not the downstream's).
        """
        client = self._client
        try:
            session = client.session if client is not None else None
        except RuntimeError:  # the SDK client is being closed: the connection was lost a moment ago
            session = None
        if client is None or session is None:
            raise ConnectorUnavailableError(
                self.spec.id, f"connector {self.spec.id!r} is not connected ({self.health.state})"
            )
        if self.retired is not None:
            raise ConnectorUnavailableError(self.spec.id, f"connector {self.spec.id!r} {self.retired}")
        self._admit()
        request_id = f"hub-{next(self._request_numbers)}"
        meta: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if client.protocol_version == "2026-07-28":
            if relay is not None:
                meta[types.CLIENT_CAPABILITIES_META_KEY] = dict(relay.client_capabilities)
                if relay.log_level is not None:
                    meta[types.LOG_LEVEL_META_KEY] = relay.log_level
            headers = self._mcp_param_headers(method, params)
        if trace:
            meta.update(trace)
            headers = {**headers, **trace}
        progress = (
            CoalescedProgress(on_progress, self.spec.progress_interval_ms / 1000)
            if on_progress is not None and self.spec.progress_interval_ms > 0
            else None
        )
        sent = False
        verdict: bool | None = None  # did the downstream work? None: no telling (never sent, or cancelled)
        try:
            with anyio.fail_after(self.call_timeout) as deadline:
                if relay is not None:
                    self._in_flight[request_id] = _InFlight(relay, deadline)
                self._calls.add(request_id)
                try:
                    async with self._slots:
                        sent = True
                        sent_at = time.perf_counter()
                        try:
                            lean = self._lean
                            if lean is not None:
                                result = await self._lean_request(
                                    lean, request_id, method, params, meta, headers, progress or on_progress
                                )
                            else:
                                result = await send_raw_request(
                                    session,
                                    method,
                                    params,
                                    on_progress=progress or on_progress,
                                    request_id=request_id,
                                    meta=meta,
                                    headers=headers,
                                )
                        finally:
                            if timing is not None:
                                timing.seconds = time.perf_counter() - sent_at
                        verdict = True
                    if progress is not None:
                        await progress.flush()
                    return result
                finally:
                    self._in_flight.pop(request_id, None)
                    self._calls.discard(request_id)
                    if not self._calls and self._idle is not None:
                        self._idle.set()
                        self._idle = None
        except TimeoutError:
            verdict = False if sent else None
            raise DownstreamTimeoutError(
                self.spec.id, f"connector {self.spec.id!r} did not answer within {self.call_timeout:g} s"
            ) from None
        except MCPError as exc:
            error = self._call_error(request_id, exc.error)
            verdict = isinstance(error, DownstreamRejectedError)  # the downstream answered: it works
            raise error from None
        except DownstreamRejectedError:
            verdict = True  # the lean path's: the downstream answered with its own error
            raise
        except DownstreamError:
            verdict = False
            raise
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            verdict = False
            self._mark_lost(_describe(exc))
            raise ConnectorUnavailableError(self.spec.id, f"connector {self.spec.id!r} is unreachable") from None
        finally:
            self._oversized.discard(request_id)
            if verdict is None:
                self.breaker.abandoned()
            elif verdict:
                self.breaker.succeeded()
            else:
                self.breaker.failed()

    async def _lean_request(
        self,
        lean: LeanForwarder,
        request_id: str,
        method: str,
        params: Mapping[str, Any],
        meta: Mapping[str, Any],
        headers: Mapping[str, str],
        on_progress: ProgressFnT | None,
    ) -> dict[str, Any]:
        """One request on the lean path; what the downstream sends on its stream is handled as the SDK path's."""

        async def on_notification(message: dict[str, Any]) -> None:
            method = message.get("method")
            notice = message.get("params")
            if method == "notifications/message" and isinstance(notice, dict):
                wire = dict(cast("dict[str, Any]", notice))
                if isinstance(wire.get("level"), str):
                    wire["_meta"] = self._tagged(wire.get("_meta"), request_id)
                    await self._relay_log_wire(wire)
            elif method in _LIST_CHANGED_METHODS:
                self._refresh_requested.set()

        async def on_question(message: dict[str, Any]) -> dict[str, Any]:
            question = message.get("params")
            wire = dict(cast("dict[str, Any]", question)) if isinstance(question, dict) else {}
            reply: dict[str, Any] = {"jsonrpc": "2.0", "id": message.get("id")}
            try:
                reply["result"] = await self._ask(self._tagged(None, request_id), str(message.get("method")), wire)
            except QuestionRefusedError as exc:
                reply["error"] = {"code": exc.code, "message": str(exc)}
            return reply

        result = await lean.request(
            request_id,
            method,
            params,
            meta=meta,
            param_headers=headers,
            on_progress=on_progress,
            handlers=StreamHandlers(on_progress, on_notification, on_question),
        )
        if result is None:  # a stdio child's output ended before the answer, as the SDK's CONNECTION_CLOSED
            why = f": {self._lost_reason}" if self._lost.is_set() and self._lost_reason else ""
            self._mark_lost("the connection closed during a call")
            raise ConnectorUnavailableError(
                self.spec.id, f"connector {self.spec.id!r} closed the connection during the call{why}"
            )
        return result

    @staticmethod
    def _tagged(meta: object, request_id: str) -> dict[str, Any]:
        """`meta` marked as sent with the hub's request `request_id` (whatever the downstream put there)."""
        tagged = dict(cast("dict[str, Any]", meta)) if isinstance(meta, dict) else {}
        tagged[RELATED_REQUEST_META_KEY] = request_id
        return tagged

    def _closed_by_the_sdk(self, error: types.ErrorData) -> bool:
        """A CONNECTION_CLOSED made by the SDK, not sent by the downstream (threat T32): "Connection closed" only
        once the transport has really ended (the hub marked the connection lost first), an abandoned SSE stream
        only on Streamable HTTP."""
        if not _made_by_the_sdk(error):
            return False
        if error.message.startswith("SSE stream"):
            return self.spec.transport == "http"
        return self._lost.is_set()

    def _call_error(self, request_id: str, error: types.ErrorData) -> DownstreamError:
        """The hub's error for a call that ended in a JSON-RPC error: the SDK's own (the connection, its timeout, an
        answer abandoned over the cap) or the downstream's."""
        if request_id in self._oversized:
            return DownstreamProtocolError(
                self.spec.id,
                f"connector {self.spec.id!r} answered with a message larger than {self.spec.max_message_bytes} bytes "
                "(max_message_bytes); it was not read",
            )
        if error.code == CONNECTION_CLOSED and self._closed_by_the_sdk(error):
            why = f": {self._lost_reason}" if self._lost.is_set() and self._lost_reason else ""
            self._mark_lost("the connection closed during a call")
            return ConnectorUnavailableError(
                self.spec.id, f"connector {self.spec.id!r} closed the connection during the call{why}"
            )
        if error.code == REQUEST_TIMEOUT and _made_by_the_sdk(error):
            return DownstreamTimeoutError(self.spec.id, f"connector {self.spec.id!r} timed out")
        # The downstream's own error, whatever its code (a remote -32000 is not our connection closing, T32).
        return DownstreamRejectedError(self.spec.id, error.code, error.message, error.data)


class CallTiming:
    """How long one request waited on its downstream (`DownstreamConnection.request`); None: it was never sent."""

    __slots__ = ("seconds",)

    def __init__(self) -> None:
        self.seconds: float | None = None


def _param_header_maps(tools: tuple[dict[str, Any], ...]) -> dict[str, dict[tuple[str, ...], str]]:
    """Per tool, its arguments marked `x-mcp-header` (a tool whose marks are invalid gets none)."""
    maps: dict[str, dict[tuple[str, ...], str]] = {}
    for tool in tools:
        schema = tool.get("inputSchema")
        if find_invalid_x_mcp_header(schema) is None and (found := x_mcp_header_map(schema)):
            maps[str(tool["name"])] = found
    return maps
