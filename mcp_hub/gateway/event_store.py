"""The events of 2025-11-25 sessions' SSE streams, kept so that a client that reconnects loses nothing.

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#resumability-and-redelivery.
An event id is unique across a session's streams and is a cursor within one stream; a client resumes with
`GET` + `Last-Event-ID`, and the server replays what followed on that stream and MUST NOT replay another
stream's messages. 2026-07-28 has no resumption ("Resumable SSE streams via `Last-Event-ID` are not supported",
https://modelcontextprotocol.io/specification/2026-07-28/basic/transports/streamable-http): there a dropped
request stream is a cancelled request, and a dropped `subscriptions/listen` stream is opened again, its
acknowledgement telling the client to refetch
(https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/subscriptions).

Whose stream? The SDK's transport calls one `EventStore` for all sessions and names streams by what every session
shares: `"_GET_stream"`, or the JSON-RPC id of the request a POST stream answers (`"1"`, `"2"`, ...). So the
store learns the session from `current_scope`, a context variable the front door (`gateway/resumption.py`) sets
for each request; the session's own task inherits it from the request that opened the session. Each session's
events are a partition of their own, and an event id is looked up only in the partition of the session asking:
another session's id, a forged id and an id whose successors were evicted all replay nothing (threat T13; fail
closed). A call with no scope stores nothing and answers an id that resumes nothing.

Event ids are `<kind>.<stream token>.<sequence>`: kind `g` for a session's standalone GET stream, `r` for a
request's response stream; a random 128-bit token per stream; the event's position in its stream. A stream
ends with its response: a later request reusing the JSON-RPC id gets a new stream.

Bounds (`[streams]` in config.toml): events in total, bytes in total (the JSON-RPC message as serialised), events
per session, events per stream, and an age. Beyond any bound the oldest events go first (the oldest of the
process, of the session, or of the stream), so what remains of a stream is always its newest part: a replay is
either whole (every event after the client's id is held: `Resumption.RESUMABLE`) or refused (`LOST`), never
a replay with a hole in it. A message larger than `max_bytes` is not kept: an empty event takes its place and
the stream's earlier events go, so only a replay from that event on can be whole.

Scale-out (a later issue): this store lives in one process. The SDK keeps 2025-11-25 sessions in process too, so
a session's requests reaching another replica get 404 whatever the store holds: replicas need session affinity
(route by `Mcp-Session-Id`), and with it this per-replica store is all resumption needs. A shared store
(`EventLog` over Redis: one list per partition and stream, ids as here) matters only once sessions can move
between replicas. Such a store's calls suspend, so it must hold one lock per stream across an append and across
a replay's last read until it returns; otherwise an event appended while a replay ends reaches neither the
replay nor the resumed live stream.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog
from mcp.server.streamable_http import GET_STREAM_KEY, EventCallback, EventMessage, EventStore
from mcp_types import JSONRPCError, JSONRPCMessage, JSONRPCResponse, jsonrpc_message_adapter

from mcp_hub.config.settings import StreamsSection
from mcp_hub.domain import Resumption

logger = structlog.get_logger(__name__)

EventId = str
StreamId = str
"""The SDK's name of a stream within a session: `"_GET_stream"` or a request's JSON-RPC id."""

STANDALONE_KIND: Final = "g"
REQUEST_KIND: Final = "r"
_POSITION = re.compile(r"0|[1-9][0-9]{0,17}")
_EVENT_OVERHEAD_BYTES: Final = 200
"""What an event costs besides its message (id, bookkeeping): a priming event is not free."""


class StreamScope:
    """One 2025-11-25 session, as the store knows it: the partition its events live in, and who opened it.

    Held by the session's tasks (through `current_scope`) for as long as the session runs; nothing else keeps it.
    """

    __slots__ = ("__weakref__", "owner", "partition", "standalone_streams")

    def __init__(self, owner: object) -> None:
        self.partition = secrets.token_urlsafe(16)
        self.owner = owner
        """The credential that opened the session (compared like the SDK compares it), or None without auth."""
        self.standalone_streams = 0
        """The session's GET streams being served (the front door serves one at a time)."""


current_scope: ContextVar[StreamScope | None] = ContextVar("mcp_hub_stream_scope", default=None)
"""The session whose stream the SDK is storing or replaying events of (set by `gateway/resumption.py`)."""


def is_standalone_id(event_id: str) -> bool:
    """True when `event_id` has the shape of an id on a session's standalone GET stream (its kind, not its truth)."""
    return event_id.startswith(f"{STANDALONE_KIND}.")


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """The bounds of an event store (`[streams]` in config.toml)."""

    max_events: int
    max_bytes: int
    max_events_per_session: int
    max_events_per_stream: int
    max_age_seconds: float

    @classmethod
    def of(cls, section: StreamsSection) -> StreamLimits:
        return cls(
            max_events=section.max_events,
            max_bytes=section.max_bytes,
            max_events_per_session=section.max_events_per_session,
            max_events_per_stream=section.max_events_per_stream,
            max_age_seconds=section.max_age_seconds,
        )

    def __post_init__(self) -> None:
        if min(self.max_events, self.max_bytes, self.max_events_per_session, self.max_events_per_stream) <= 0:
            raise ValueError("every bound of an event store must be positive")
        if self.max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")


@dataclass(frozen=True, slots=True)
class EventLogStats:
    """What an event store holds right now."""

    events: int
    bytes: int
    sessions: int
    streams: int


class EventLog(Protocol):
    """The events of every session's streams, by partition (`StreamScope.partition`). The seam for another
    backend (e.g. Redis, for replicas that share sessions): the SDK adapter and the front door use only this."""

    async def append(self, partition: str, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        """Keep `message` (None: a priming event, a position without a message) as the next event of the stream;
        its id."""
        ...

    async def resumption(self, partition: str, event_id: EventId) -> Resumption:
        """Whether a replay after `event_id` would be whole, for the session of `partition`."""
        ...

    async def replay_after(self, partition: str, event_id: EventId, send: EventCallback) -> StreamId | None:
        """Send every message that followed `event_id` on its stream, oldest first, and name the stream; None (and
        nothing sent, or a replay cut short) when the replay cannot be whole."""
        ...


@dataclass(eq=False, slots=True)
class _Event:
    stream: _Stream
    seq: int
    message: bytes | None
    size: int
    at: float


@dataclass(eq=False, slots=True)
class _Stream:
    partition: _Partition
    stream_id: StreamId
    kind: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    events: deque[_Event] = field(default_factory=deque[_Event])
    next_seq: int = 0
    floor: int = -1
    """The newest position evicted: a replay after `seq` is whole iff `seq >= floor`."""
    complete: bool = False

    def event_id(self, seq: int) -> EventId:
        return f"{self.kind}.{self.token}.{seq}"


@dataclass(eq=False, slots=True)
class _Partition:
    key: str
    current: dict[StreamId, _Stream] = field(default_factory=dict[StreamId, _Stream])
    """The stream each SDK name stands for now (a completed request's name is free for a new stream)."""
    by_token: dict[str, _Stream] = field(default_factory=dict[str, _Stream])
    order: OrderedDict[_Event, None] = field(default_factory=OrderedDict[_Event, None])
    """This session's events, oldest first."""


class InMemoryEventLog:
    """A bounded `EventLog` in this process (see the module docstring for the bounds and the id format).

    No method suspends: an append and a replay's last look at a stream cannot interleave, which is what lets a
    resumed stream continue live without a gap (`gateway/resumption.py`).
    """

    def __init__(self, limits: StreamLimits, *, now: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._now = now
        self._partitions: dict[str, _Partition] = {}
        self._order: OrderedDict[_Event, None] = OrderedDict()
        """Every held event, oldest first."""
        self._bytes = 0

    @property
    def limits(self) -> StreamLimits:
        return self._limits

    def stats(self) -> EventLogStats:
        return EventLogStats(
            events=len(self._order),
            bytes=self._bytes,
            sessions=len(self._partitions),
            streams=sum(len(partition.by_token) for partition in self._partitions.values()),
        )

    async def append(self, partition: str, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        self._expire()
        owner = self._partitions.get(partition)
        if owner is None:
            owner = self._partitions[partition] = _Partition(partition)
        stream = owner.current.get(stream_id)
        if stream is None or stream.complete:
            kind = STANDALONE_KIND if stream_id == GET_STREAM_KEY else REQUEST_KIND
            stream = owner.current[stream_id] = _Stream(owner, stream_id, kind)
            owner.by_token[stream.token] = stream
        seq = stream.next_seq
        stream.next_seq += 1
        if isinstance(message, JSONRPCResponse | JSONRPCError) and stream.kind == REQUEST_KIND:
            stream.complete = True
        data = None
        if message is not None:
            data = jsonrpc_message_adapter.dump_json(message, by_alias=True, exclude_unset=True)
        size = _EVENT_OVERHEAD_BYTES + (len(data) if data is not None else 0)
        too_large = size > self._limits.max_bytes
        if too_large:
            logger.warning("stream event too large to keep", bytes=size, max_bytes=self._limits.max_bytes)
            data, size = None, _EVENT_OVERHEAD_BYTES
        event = _Event(stream, seq, data, size, self._now())
        stream.events.append(event)
        owner.order[event] = None
        self._order[event] = None
        self._bytes += size
        if too_large:
            # What came before goes too, and only a replay from here on is whole: none steps over the message.
            while stream.events[0] is not event:
                self._evict(stream.events[0])
            stream.floor = seq
        self._enforce(stream)
        return stream.event_id(seq)

    async def resumption(self, partition: str, event_id: EventId) -> Resumption:
        self._expire()
        found = self._find(partition, event_id)
        return found[1] if found is not None else Resumption.UNKNOWN

    async def replay_after(self, partition: str, event_id: EventId, send: EventCallback) -> StreamId | None:
        self._expire()
        found = self._find(partition, event_id)
        if found is None or found[1] is not Resumption.RESUMABLE:
            return None
        stream, _, cursor = found
        while True:
            # Looked up afresh after every send: events keep arriving (and old ones leaving) meanwhile.
            if stream.floor > cursor:
                logger.info("replay cut short: events it still had to send were evicted")
                return None
            if not stream.events or stream.events[-1].seq <= cursor:
                return stream.stream_id
            event = stream.events[cursor + 1 - stream.events[0].seq]
            cursor = event.seq
            if event.message is not None:
                message = jsonrpc_message_adapter.validate_json(event.message, by_name=False)
                await send(EventMessage(message, stream.event_id(event.seq)))

    def _find(self, partition: str, event_id: EventId) -> tuple[_Stream, Resumption, int] | None:
        """The stream `event_id` names in `partition`, whether a replay after it is whole, and its position."""
        kind, _, rest = event_id.partition(".")
        token, _, position = rest.partition(".")
        owner = self._partitions.get(partition)
        stream = owner.by_token.get(token) if owner is not None else None
        if stream is None or stream.kind != kind or not _POSITION.fullmatch(position):
            return None
        seq = int(position)
        if seq >= stream.next_seq:
            return None  # a position this stream never had: forged
        return stream, Resumption.RESUMABLE if seq >= stream.floor else Resumption.LOST, seq

    def _enforce(self, stream: _Stream) -> None:
        limits = self._limits
        while len(stream.events) > limits.max_events_per_stream:
            self._evict(stream.events[0])
        owner = stream.partition
        while len(owner.order) > limits.max_events_per_session:
            self._evict(next(iter(owner.order)))
        while len(self._order) > limits.max_events or self._bytes > limits.max_bytes:
            self._evict(next(iter(self._order)))

    def _expire(self) -> None:
        oldest_kept = self._now() - self._limits.max_age_seconds
        while self._order:
            event = next(iter(self._order))
            if event.at >= oldest_kept:
                break
            self._evict(event)

    def _evict(self, event: _Event) -> None:
        """Forget `event`, always the oldest its stream holds (every bound evicts oldest first)."""
        stream = event.stream
        if stream.events[0] is not event:
            raise ValueError("an event store evicts the oldest event of a stream first")
        stream.events.popleft()
        stream.floor = event.seq
        del stream.partition.order[event]
        del self._order[event]
        self._bytes -= event.size
        self._drop_if_empty(stream)

    def _drop_if_empty(self, stream: _Stream) -> None:
        """A request stream with nothing left is forgotten (resuming it is refused as unknown); a standalone
        stream is kept while its session has any event, so an idle client that missed nothing can still resume."""
        owner = stream.partition
        if not stream.events and stream.kind == REQUEST_KIND:
            owner.by_token.pop(stream.token, None)
            if owner.current.get(stream.stream_id) is stream:
                del owner.current[stream.stream_id]
        if not owner.order:
            self._partitions.pop(owner.key, None)


class SessionScopedEventStore(EventStore):
    """The SDK's `EventStore` over an `EventLog`, partitioned by the session in `current_scope`."""

    def __init__(self, log: EventLog) -> None:
        self._log = log

    async def store_event(self, stream_id: StreamId, message: JSONRPCMessage | None) -> EventId:
        scope = current_scope.get()
        if scope is None:
            # No session to keep it for: an id that resumes nothing (fail closed).
            return f"{REQUEST_KIND}.{secrets.token_urlsafe(16)}.0"
        return await self._log.append(scope.partition, stream_id, message)

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        scope = current_scope.get()
        if scope is None:
            return None
        return await self._log.replay_after(scope.partition, last_event_id, send_callback)
