"""One long-lived connection to one downstream MCP server, owned by one task.

The SDK `Client` cannot be re-entered and must be exited by the task that entered it, so each
connector has exactly one owner task (`DownstreamConnection.run`) that connects, lists the tools,
serves calls until the connection is lost, and reconnects with exponential backoff. Calls borrow the
live session; nothing on the call path opens a connection or performs a handshake.

Change detection follows the era: a 2025-11-25 server pushes `notifications/tools/list_changed` on its
session, a 2026-07-28 server delivers it on a `subscriptions/listen` stream
(https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions), which the
owner keeps open whenever the server advertises `tools.listChanged`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio
import mcp_types as types
import structlog
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged
from mcp_types.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT

import mcp_hub
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import TimeoutsSection
from mcp_hub.domain import ConnectorId, Health
from mcp_hub.downstream._raw import send_raw_request
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.transport import build_transport
from mcp_hub.errors import (
    ConnectorUnavailableError,
    DownstreamError,
    DownstreamProtocolError,
    DownstreamTimeoutError,
)

logger = structlog.get_logger(__name__)

MAX_TOOL_PAGES = 1_000
"""A downstream that keeps returning cursors is cut off here rather than listed forever."""

ToolsCallback = Callable[[ConnectorId, list[dict[str, Any]]], Awaitable[None]]
"""A connector listed these tool definitions (its whole list)."""
HealthCallback = Callable[[ConnectorId, HealthState], Awaitable[None]]
"""A connector's health changed."""

_ERA_MODES: dict[str, str] = {"auto": "auto", "legacy": "legacy", "2026-07-28": "2026-07-28"}


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner: list[BaseException] = list(exc.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        return "; ".join(_describe(item) for item in inner)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if str(exc) else text


class DownstreamConnection:
    """The owner of one connector's client, its health, and its call concurrency."""

    def __init__(
        self,
        spec: ConnectorSpec,
        timeouts: TimeoutsSection,
        *,
        on_tools: ToolsCallback,
        on_health: HealthCallback,
        errlog: TextIO | None = None,
    ) -> None:
        self.spec = spec
        self._timeouts = timeouts
        self._on_tools = on_tools
        self._on_health = on_health
        self._errlog = errlog
        self._client: Client | None = None
        self._limiter = anyio.CapacityLimiter(spec.max_concurrent_calls)
        self._lost = anyio.Event()
        self._lost_reason: str | None = None
        self._refresh_requested = anyio.Event()
        self._ready = anyio.Event()
        self._health_changed = anyio.Event()
        self.connections_made = 0
        self.health = HealthState(state=Health.CONNECTING if spec.enabled else Health.DISABLED, since=datetime.now(UTC))

    @property
    def call_timeout(self) -> float:
        return self.spec.call_timeout_seconds or self._timeouts.call_seconds

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
            client = Client(
                build_transport(
                    self.spec,
                    connect_timeout=self._timeouts.connect_seconds,
                    on_end=self._mark_lost,
                    **({"errlog": self._errlog} if self._errlog is not None else {}),
                ),
                mode=_ERA_MODES[self.spec.protocol],  # pyright: ignore[reportArgumentType]
                read_timeout_seconds=self._timeouts.connect_seconds,
                message_handler=self._on_message,
                client_info=types.Implementation(name="mcp-hub", version=mcp_hub.__version__),
                cache=None,
            )
            await stack.enter_async_context(client)
            tools = await self._list_tools(client)
            # Callable before the catalog announces the tools: a client may call as soon as it hears of them.
            self._client = client
            self.connections_made += 1
            await self._on_tools(self.spec.id, tools)
            logger.info("downstream ready", connector=self.spec.id, era=client.protocol_version, tools=len(tools))
            await self._set_health(Health.READY, None, era=client.protocol_version, tool_count=len(tools))
            self._ready.set()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._refresh_on_request, client)
                capabilities = (await self._server_capabilities(client)).tools
                if client.protocol_version == "2026-07-28" and capabilities and capabilities.list_changed:
                    tasks.start_soon(self._listen_for_changes, client)
                await self._lost.wait()
                tasks.cancel_scope.cancel()
            return True

    async def _server_capabilities(self, client: Client) -> types.ServerCapabilities:
        if self.spec.protocol != "2026-07-28":
            return client.server_capabilities
        # A pinned modern era skips the handshake, so the client only holds placeholder capabilities.
        raw = await client.session.send_discover("2026-07-28")
        return types.DiscoverResult.model_validate(raw).capabilities

    async def _list_tools(self, client: Client) -> list[dict[str, Any]]:
        definitions: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await client.list_tools(cursor=cursor)
            definitions.extend(tool.model_dump(by_alias=True, mode="json", exclude_none=True) for tool in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                return definitions
        logger.warning("tool listing cut off", connector=self.spec.id, pages=MAX_TOOL_PAGES)
        return definitions

    async def _refresh_on_request(self, client: Client) -> None:
        while True:
            await self._refresh_requested.wait()
            self._refresh_requested = anyio.Event()
            try:
                tools = await self._list_tools(client)
            except Exception as exc:  # noqa: BLE001 - any failure to list means the session is unusable
                self._mark_lost(f"tools/list failed: {_describe(exc)}")
                return
            await self._on_tools(self.spec.id, tools)
            await self._set_health(Health.READY, None, era=client.protocol_version, tool_count=len(tools))

    async def _listen_for_changes(self, client: Client) -> None:
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        self._refresh_requested.set()
            self._mark_lost("the downstream ended its subscriptions/listen stream")
        except Exception as exc:  # noqa: BLE001 - a lost stream means missed changes: reconnect and re-list
            self._mark_lost(f"subscriptions/listen failed: {_describe(exc)}")

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, Exception):
            logger.warning("downstream transport error", connector=self.spec.id, error=_describe(message))
            await self._set_health(Health.DEGRADED, _describe(message))
            self._refresh_requested.set()  # the refresh doubles as a probe: failure marks the connection lost
        elif isinstance(message, types.ToolListChangedNotification):
            self._refresh_requested.set()

    def _mark_lost(self, reason: str) -> None:
        if not self._lost.is_set():
            self._lost_reason = reason
            self._lost.set()

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
        if self.health != previous:
            changed, self._health_changed = self._health_changed, anyio.Event()
            changed.set()
            await self._on_health(self.spec.id, self.health)

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        on_progress: ProgressFnT | None = None,
    ) -> dict[str, Any]:
        """Send one request on the live session; raises a `DownstreamError` subclass on failure."""
        client = self._client
        if client is None:
            raise ConnectorUnavailableError(
                self.spec.id, f"connector {self.spec.id!r} is not connected ({self.health.state})"
            )
        try:
            with anyio.fail_after(self.call_timeout):
                async with self._limiter:
                    return await send_raw_request(client.session, method, params, on_progress=on_progress)
        except TimeoutError:
            raise DownstreamTimeoutError(
                self.spec.id, f"connector {self.spec.id!r} did not answer within {self.call_timeout:g} s"
            ) from None
        except MCPError as exc:
            code = exc.error.code
            if code == CONNECTION_CLOSED:
                self._mark_lost("the connection closed during a call")
                raise ConnectorUnavailableError(
                    self.spec.id, f"connector {self.spec.id!r} closed the connection during the call"
                ) from None
            if code == REQUEST_TIMEOUT:
                raise DownstreamTimeoutError(self.spec.id, f"connector {self.spec.id!r} timed out") from None
            raise DownstreamProtocolError(
                self.spec.id, f"connector {self.spec.id!r} returned error {code}: {exc.error.message}", code
            ) from None
        except DownstreamError:
            raise
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            self._mark_lost(_describe(exc))
            raise ConnectorUnavailableError(self.spec.id, f"connector {self.spec.id!r} is unreachable") from None
