"""The bus between the replicas of one hub (issue 12 §4): what one replica (or the `mcp-hub` command) changes,
the others hear at once instead of at their next poll.

Each component acts on its own process's changes directly; the bus carries them to the *other* processes only (a
message never comes back to the bus that sent it). Every message is a small JSON object on one `Topic`. Delivery
is at most once: a subscriber that misses a message (Redis restarting, a replica reconnecting) still converges
through its own slow re-check (held approval calls re-read the action, decisions expire from their cache, the
catalog is re-listed), so the bus only makes convergence fast, never correct.

- `LocalBus`: one process, no other service (the embedded SQLite default): publishing reaches nobody.
- `RedisBus`: Redis pub/sub (https://redis.io/docs/latest/develop/interact/pubsub/) on the Redis the limits
  already share (`[limits] redis_url`), one channel per topic under the key prefix. Chosen over PostgreSQL
  LISTEN/NOTIFY: the Redis that replicas need for shared limits is already there, a message is one `PUBLISH`
  round trip (well under a millisecond on a LAN), and it works whatever the database is; docs/replicas.md.
"""

from __future__ import annotations

import json
import secrets
from collections import defaultdict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from enum import StrEnum
from typing import Any, Final, Protocol, cast

import anyio
import structlog
from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectSendStream
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)


class Topic(StrEnum):
    """What replicas tell each other."""

    APPROVALS = "approvals"
    """`{"id", "status"}`: an action changed (decided, executing, done...): held calls and live pages look again."""
    GRANTS = "grants"
    """`{}`: agents, users, grants or revocations changed: cached decisions are dropped."""
    CATALOG = "catalog"
    """`{"connector"}`: this replica saw a connector's listing change: the others re-list that connector."""


Handler = Callable[[Mapping[str, Any]], Awaitable[None]]

_ANNOUNCE_QUEUE: Final = 1000
_RECONNECT_SECONDS: Final = (0.1, 5.0)
_READY_SECONDS: Final = 2.0


class Bus(Protocol):
    """Publish to and hear from the other replicas."""

    @property
    def shared(self) -> bool:
        """True when other processes hear this one (then slow re-checks are only a safety net)."""
        ...

    def subscribe(self, topic: Topic, handler: Handler) -> None:
        """Call `handler` with every message other processes publish on `topic` (register before `running`)."""
        ...

    async def publish(self, topic: Topic, message: Mapping[str, Any]) -> None:
        """Send now (a failure is logged: the others converge by their re-checks)."""
        ...

    def announce(self, topic: Topic, message: Mapping[str, Any]) -> None:
        """Send from synchronous code: queued, sent in order by the bus's task (flushed when it stops)."""
        ...

    def running(self) -> Any:
        """An async context manager: the bus works inside it."""
        ...

    def health(self) -> dict[str, Any]: ...


class LocalBus:
    """A hub alone: no other process hears it, and it hears nobody."""

    @property
    def shared(self) -> bool:
        return False

    def subscribe(self, topic: Topic, handler: Handler) -> None:
        del topic, handler

    async def publish(self, topic: Topic, message: Mapping[str, Any]) -> None:
        del topic, message

    def announce(self, topic: Topic, message: Mapping[str, Any]) -> None:
        del topic, message

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[LocalBus]:
        yield self

    def health(self) -> dict[str, Any]:
        return {"backend": "local"}


class RedisBus:
    """The bus over Redis pub/sub: one channel per topic, `<prefix>bus:<topic>`."""

    @property
    def shared(self) -> bool:
        return True

    def __init__(self, url: str, *, prefix: str, timeout_seconds: float = 0.5) -> None:
        self._url = url
        self._prefix = prefix
        self.origin = secrets.token_hex(8)
        """This process's mark on what it sends, so that it skips its own messages."""
        self._publisher: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._handlers: defaultdict[str, list[Handler]] = defaultdict(list)
        self._queue_in: MemoryObjectSendStream[tuple[Topic, str]] | None = None
        self._listening = anyio.Event()
        self._drained = anyio.Event()
        self._ok = True
        self._last_error: str | None = None
        self.received = 0

    def channel(self, topic: Topic) -> str:
        return f"{self._prefix}bus:{topic}"

    def subscribe(self, topic: Topic, handler: Handler) -> None:
        self._handlers[self.channel(topic)].append(handler)

    async def publish(self, topic: Topic, message: Mapping[str, Any]) -> None:
        await self._send(topic, self._encode(message))

    def announce(self, topic: Topic, message: Mapping[str, Any]) -> None:
        if self._queue_in is None:
            logger.warning("bus announcement dropped: the bus is not running", topic=topic)
            return
        try:
            self._queue_in.send_nowait((topic, self._encode(message)))
        except (anyio.WouldBlock, anyio.ClosedResourceError):
            logger.warning("bus announcement dropped: queue full or closed", topic=topic)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[RedisBus]:
        self._queue_in, queue_out = anyio.create_memory_object_stream[tuple[Topic, str]](_ANNOUNCE_QUEUE)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._listen_forever)
                tasks.start_soon(self._send_announcements, queue_out)
                # Hear the others before serving (a replica that starts must not miss a decision made meanwhile);
                # Redis being down does not stop the hub: the re-checks carry it.
                with anyio.move_on_after(_READY_SECONDS):
                    await self._listening.wait()
                try:
                    yield self
                finally:
                    self._queue_in.close()  # the sender drains what was announced, then ends
                    self._queue_in = None
                    with anyio.move_on_after(_READY_SECONDS):
                        await self._drained.wait()
                    tasks.cancel_scope.cancel()
        finally:
            if self._queue_in is not None:
                self._queue_in.close()
                self._queue_in = None
            queue_out.close()
            with anyio.CancelScope(shield=True):
                await self._publisher.aclose()

    def health(self) -> dict[str, Any]:
        state: dict[str, Any] = {"backend": "redis", "ok": self._ok, "listening": self._listening.is_set()}
        if self._last_error is not None:
            state["last_error"] = self._last_error
        return state

    # --- internals -----------------------------------------------------------------------------------------

    def _encode(self, message: Mapping[str, Any]) -> str:
        return json.dumps({"o": self.origin, "m": dict(message)}, separators=(",", ":"))

    async def _send(self, topic: Topic, data: str) -> None:
        try:
            await self._publisher.publish(self.channel(topic), data)  # pyright: ignore[reportUnknownMemberType]
            self._ok = True
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def _send_announcements(self, queue: ObjectReceiveStream[tuple[Topic, str]]) -> None:
        async with queue:
            async for topic, data in queue:
                await self._send(topic, data)
        self._drained.set()

    async def _listen_forever(self) -> None:
        if not self._handlers:  # a process that only publishes (the `mcp-hub` command)
            self._listening.set()
            return
        delay = _RECONNECT_SECONDS[0]
        while True:
            listener: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
                self._url, socket_connect_timeout=_RECONNECT_SECONDS[1]
            )
            try:
                async with listener.pubsub(ignore_subscribe_messages=True) as pubsub:  # pyright: ignore[reportUnknownMemberType]
                    await pubsub.subscribe(*self._handlers)  # pyright: ignore[reportUnknownMemberType]
                    self._listening.set()
                    self._ok, delay = True, _RECONNECT_SECONDS[0]
                    messages = cast("AsyncIterator[dict[str, Any]]", pubsub.listen())  # pyright: ignore[reportUnknownMemberType]
                    async for raw in messages:
                        await self._dispatch(raw)
            except (RedisError, OSError) as exc:
                self._failed(exc)
            finally:
                with anyio.CancelScope(shield=True):
                    await listener.aclose()
            await anyio.sleep(delay)
            delay = min(delay * 2, _RECONNECT_SECONDS[1])

    async def _dispatch(self, raw: dict[str, Any]) -> None:
        if raw.get("type") != "message":
            return
        channel = raw["channel"].decode() if isinstance(raw["channel"], bytes) else str(raw["channel"])
        try:
            envelope = json.loads(raw["data"])
            if envelope["o"] == self.origin:
                return
            message = cast("dict[str, Any]", envelope["m"])
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable bus message ignored", channel=channel)
            return
        self.received += 1
        for handler in self._handlers.get(channel, ()):
            try:
                await handler(message)
            except Exception:
                logger.exception("bus handler failed", channel=channel)

    def _failed(self, exc: BaseException) -> None:
        if self._ok:
            logger.warning("redis bus unreachable; replicas converge by their re-checks", error=type(exc).__name__)
        self._ok, self._last_error = False, f"{type(exc).__name__}: redis unreachable"


def bus_for(redis_url: str, *, prefix: str) -> Bus:
    """Redis pub/sub when replicas share a Redis (`[limits] redis_url`), else this process alone."""
    return RedisBus(redis_url, prefix=prefix) if redis_url else LocalBus()
