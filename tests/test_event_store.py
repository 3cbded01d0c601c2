"""The event store of resumable 2025-11-25 streams, tested pure: partitions, ids, bounds, whole-or-refused replays.

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports ("Resumability and Redelivery":
an id is a cursor within one stream; never replay another stream's messages). The bounds and the refusal of a
replay with a hole in it are our choices (`mcp_hub/gateway/event_store.py`). Threats: T13, T28.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.server.streamable_http import GET_STREAM_KEY, EventMessage
from mcp_types import JSONRPCMessage, JSONRPCNotification, JSONRPCResponse

from mcp_hub.domain import Resumption
from mcp_hub.gateway.event_store import (
    EventLogStats,
    InMemoryEventLog,
    SessionScopedEventStore,
    StreamLimits,
    StreamScope,
    current_scope,
)

pytestmark = pytest.mark.anyio

ROOMY = StreamLimits(
    max_events=1000, max_bytes=10**7, max_events_per_session=1000, max_events_per_stream=1000, max_age_seconds=60
)


def limits(**bounds: Any) -> StreamLimits:
    return replace(ROOMY, **bounds)


def note(text: str) -> JSONRPCNotification:
    return JSONRPCNotification(jsonrpc="2.0", method="notifications/message", params={"text": text})


def response(request_id: int, text: str = "done") -> JSONRPCResponse:
    return JSONRPCResponse(jsonrpc="2.0", id=request_id, result={"text": text})


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Received:
    events: list[EventMessage] = field(default_factory=list[EventMessage])

    async def __call__(self, event: EventMessage) -> None:
        self.events.append(event)

    def texts(self) -> list[str]:
        return [text_of(event.message) for event in self.events]


def text_of(message: JSONRPCMessage) -> str:
    if isinstance(message, JSONRPCNotification):
        return str((message.params or {})["text"])
    assert isinstance(message, JSONRPCResponse)
    return str(message.result["text"])


async def test_an_id_replays_what_followed_it_on_its_own_stream_only() -> None:
    """Spec 2025-11-25: replay the disconnected stream from the client's cursor; MUST NOT replay another stream's
    messages (another session's streams share the SDK's stream names, `"_GET_stream"` and `"1"`)."""
    log = InMemoryEventLog(ROOMY)
    first = await log.append("alice", GET_STREAM_KEY, note("a1"))
    await log.append("alice", "1", note("call progress"))
    await log.append("bob", GET_STREAM_KEY, note("b1"))
    await log.append("alice", GET_STREAM_KEY, note("a2"))
    await log.append("alice", GET_STREAM_KEY, note("a3"))
    received = Received()
    stream = await log.replay_after("alice", first, received)
    assert stream == GET_STREAM_KEY
    assert received.texts() == ["a2", "a3"]
    assert [event.event_id for event in received.events] == [
        first.rsplit(".", 1)[0] + f".{position}" for position in (1, 2)
    ]
    assert await log.resumption("bob", first) is Resumption.UNKNOWN  # T13: another session's id is unknown there
    nothing = Received()
    assert await log.replay_after("bob", first, nothing) is None
    assert nothing.events == []


async def test_event_ids_are_unique_per_session_and_carry_an_unguessable_stream_token() -> None:
    """Spec 2025-11-25: ids are unique across all streams of a session; our choice: 128 random bits per stream
    (T13), the kind (`g` notification stream, `r` a call's stream) and the position."""
    log = InMemoryEventLog(ROOMY)
    ids = [await log.append("s", stream, note("x")) for stream in (GET_STREAM_KEY, "1", "2", "1", GET_STREAM_KEY)]
    assert len(set(ids)) == len(ids)
    kinds = [event_id.split(".")[0] for event_id in ids]
    assert kinds == ["g", "r", "r", "r", "g"]
    tokens = {event_id.split(".")[1] for event_id in ids}
    assert len(tokens) == 3
    assert all(len(token) >= 22 for token in tokens)  # token_urlsafe(16): 128 bits


async def test_a_calls_stream_ends_with_its_response_and_a_reused_request_id_starts_a_new_one() -> None:
    """Spec 2025-11-25: never another stream's messages. A client may reuse a JSON-RPC id once the request was
    answered; resuming the old stream must not yield the new request's messages."""
    log = InMemoryEventLog(ROOMY)
    old_priming = await log.append("s", "1", None)
    await log.append("s", "1", response(1, "old"))
    await log.append("s", "1", None)
    await log.append("s", "1", response(1, "new"))
    received = Received()
    assert await log.replay_after("s", old_priming, received) == "1"
    assert received.texts() == ["old"]


@pytest.mark.parametrize(
    ("bound", "value"),
    [
        pytest.param("max_events", 5, id="events-in-all"),
        pytest.param("max_bytes", 5 * 300, id="bytes-in-all"),
        pytest.param("max_events_per_session", 5, id="events-per-session"),
        pytest.param("max_events_per_stream", 5, id="events-per-stream"),
    ],
)
async def test_every_bound_evicts_the_oldest_events_first(bound: str, value: int) -> None:
    """Our choice (T28, memory stays bounded): past a bound the oldest events go; what remains of a stream is
    its newest part, so the newest ids still resume whole and the oldest are refused as lost."""
    log = InMemoryEventLog(limits(**{bound: value}))
    ids = [await log.append("s", GET_STREAM_KEY, note(f"{index:060d}")) for index in range(20)]
    stats = log.stats()
    assert stats.events <= 5
    assert stats.bytes <= limits(**{bound: value}).max_bytes
    found = [await log.resumption("s", event_id) for event_id in ids]
    whole = found.index(Resumption.RESUMABLE)
    assert found[:whole] == [Resumption.LOST] * whole
    assert found[whole:] == [Resumption.RESUMABLE] * (20 - whole)
    received = Received()
    assert await log.replay_after("s", ids[whole], received) == GET_STREAM_KEY
    assert received.texts() == [f"{index:060d}" for index in range(whole + 1, 20)]


async def test_events_older_than_the_age_bound_are_evicted() -> None:
    """Our choice: events live `max_age_seconds`; a client away longer cannot resume (its notification stream is
    then told to refetch, tests/test_resumable_streams.py). An id whose own event is gone still resumes while
    everything after it is held: the replay is whole."""
    clock = Clock()
    log = InMemoryEventLog(limits(max_age_seconds=30), now=clock)
    old = await log.append("s", GET_STREAM_KEY, note("old"))
    clock.now += 20
    middle = await log.append("s", GET_STREAM_KEY, note("middle"))
    clock.now += 15  # old: 35 s, middle: 15 s
    assert (await log.resumption("s", old), log.stats().events) == (Resumption.RESUMABLE, 1)
    await log.append("s", GET_STREAM_KEY, note("new"))
    clock.now += 20  # middle: 35 s, new: 20 s
    assert await log.resumption("s", old) is Resumption.LOST
    assert await log.resumption("s", middle) is Resumption.RESUMABLE
    clock.now += 20  # nothing younger than 30 s is left: the session's partition is gone
    assert await log.resumption("s", middle) is Resumption.UNKNOWN
    assert log.stats() == EventLogStats(events=0, bytes=0, sessions=0, streams=0)


async def test_one_sessions_flood_evicts_its_own_events_before_anothers() -> None:
    """T28, our choice: the per-session bound makes a busy session pay for its own events."""
    log = InMemoryEventLog(limits(max_events=100, max_events_per_session=10, max_events_per_stream=10))
    quiet = await log.append("quiet", GET_STREAM_KEY, None)
    await log.append("quiet", GET_STREAM_KEY, note("missed"))
    for index in range(200):
        await log.append("busy", str(index), None)
        await log.append("busy", str(index), response(index))
    received = Received()
    assert await log.replay_after("quiet", quiet, received) == GET_STREAM_KEY
    assert received.texts() == ["missed"]
    assert log.stats().events == 12


async def test_a_message_larger_than_the_byte_bound_is_not_kept_and_no_replay_steps_over_it() -> None:
    """Our choice: an event too large to keep takes its stream's earlier events with it, so a replay from before
    it is refused instead of silently skipping it; after it, the stream resumes as usual."""
    log = InMemoryEventLog(limits(max_bytes=2000))
    before = await log.append("s", GET_STREAM_KEY, note("small"))
    huge = await log.append("s", GET_STREAM_KEY, note("x" * 5000))
    after = await log.append("s", GET_STREAM_KEY, note("after"))
    assert await log.resumption("s", before) is Resumption.LOST
    received = Received()
    assert await log.replay_after("s", huge, received) == GET_STREAM_KEY
    assert received.texts() == ["after"]
    assert await log.resumption("s", after) is Resumption.RESUMABLE


async def test_a_replay_that_events_are_evicted_under_is_cut_short() -> None:
    """Our choice: events evicted while a replay is sending (it awaits the client) end it without naming the
    stream, so the SDK does not continue live after a hole; the client's next try is refused as lost."""
    log = InMemoryEventLog(limits(max_events_per_stream=3))
    start = await log.append("s", GET_STREAM_KEY, note("0"))
    for index in range(1, 3):
        await log.append("s", GET_STREAM_KEY, note(str(index)))
    sent: list[str] = []

    async def slow_client(event: EventMessage) -> None:
        sent.append(text_of(event.message))
        for index in range(3):  # meanwhile the stream moves on by three
            await log.append("s", GET_STREAM_KEY, note(f"later {index}"))

    assert await log.replay_after("s", start, slow_client) is None
    assert sent == ["1"]
    assert await log.resumption("s", start) is Resumption.LOST


async def test_the_sdk_adapter_keeps_nothing_without_a_session_scope() -> None:
    """T13, fail closed: an event stored outside any session's scope gets an id that resumes nothing; within a
    scope, events go to that session's partition only."""
    log = InMemoryEventLog(ROOMY)
    store = SessionScopedEventStore(log)
    orphan = await store.store_event(GET_STREAM_KEY, note("orphan"))
    assert log.stats().events == 0
    alice, bob = StreamScope(owner=None), StreamScope(owner=None)
    token = current_scope.set(alice)
    try:
        first = await store.store_event(GET_STREAM_KEY, note("a1"))
        await store.store_event(GET_STREAM_KEY, note("a2"))
        received = Received()
        assert await store.replay_events_after(orphan, received) is None
        assert await store.replay_events_after(first, received) == GET_STREAM_KEY
    finally:
        current_scope.reset(token)
    assert received.texts() == ["a2"]
    token = current_scope.set(bob)
    try:
        assert await store.replay_events_after(first, Received()) is None
    finally:
        current_scope.reset(token)


@pytest.mark.parametrize(
    "bounds",
    [
        pytest.param({"max_events": 0}, id="no-events"),
        pytest.param({"max_bytes": -1}, id="negative-bytes"),
        pytest.param({"max_age_seconds": 0}, id="no-age"),
    ],
)
def test_limits_that_keep_nothing_are_refused(bounds: dict[str, Any]) -> None:
    """Our choice: a store that could keep no event is a configuration mistake, not a way to turn it off."""
    with pytest.raises(ValueError, match="positive"):
        limits(**bounds)


# --- properties ----------------------------------------------------------------------------------------------

STREAMS = [GET_STREAM_KEY, "1", "2"]
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            st.sampled_from(["alice", "bob"]),
            st.sampled_from(STREAMS),
            st.sampled_from(["priming", "note", "response"]),
            st.integers(min_value=0, max_value=1600),
        ),
        st.tuples(st.just("wait"), st.just(""), st.just(""), st.just(""), st.integers(min_value=1, max_value=20)),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(
    operations=operations,
    bounds=st.fixed_dictionaries(
        {
            "max_events": st.integers(min_value=6, max_value=30),
            "max_bytes": st.integers(min_value=1500, max_value=6000),
            "max_events_per_session": st.integers(min_value=3, max_value=6),
            "max_events_per_stream": st.integers(min_value=1, max_value=3),
            "max_age_seconds": st.integers(min_value=5, max_value=40),
        }
    ),
)
async def test_whatever_happens_a_replay_is_whole_or_refused_and_the_bounds_hold(
    operations: list[tuple[str, str, str, str, int]], bounds: dict[str, Any]
) -> None:
    """Our choice, against a record of everything appended: after any sequence of appends and waits, the store is
    within every bound; an id it calls resumable replays exactly the messages appended to its stream after it, in
    order, none older than the age bound; any other id replays nothing; no id resumes in another session."""
    clock = Clock()
    log = InMemoryEventLog(StreamLimits(**bounds), now=clock)
    history: dict[str, list[tuple[str, str, float]]] = {}  # stream token -> (event id, text or "", time)
    issued: list[tuple[str, str]] = []  # (partition, event id)
    counter = 0
    for kind, partition, stream, content, size in operations:
        if kind == "wait":
            clock.now += size
            continue
        counter += 1
        text = f"{counter}:" + "x" * size
        message: JSONRPCMessage | None = {
            "priming": None,
            "note": note(text),
            "response": response(counter, text),
        }[content]
        event_id = await log.append(partition, stream, message)
        history.setdefault(event_id.split(".")[1], []).append((event_id, "" if message is None else text, clock.now))
        issued.append((partition, event_id))
        stats = log.stats()
        assert stats.events <= min(bounds["max_events"], 2 * bounds["max_events_per_session"])
        assert stats.bytes <= bounds["max_bytes"]
    for partition, event_id in issued:
        other = "bob" if partition == "alice" else "alice"
        assert await log.resumption(other, event_id) is Resumption.UNKNOWN
        found = await log.resumption(partition, event_id)
        received = Received()
        stream = await log.replay_after(partition, event_id, received)
        if found is not Resumption.RESUMABLE:
            assert (stream, received.events) == (None, [])
            continue
        recorded = history[event_id.split(".")[1]]
        position = [recorded_id for recorded_id, _, _ in recorded].index(event_id)
        expected = [(recorded_id, text) for recorded_id, text, _ in recorded[position + 1 :] if text]
        assert [(event.event_id, text_of(event.message)) for event in received.events] == expected
        assert all(at >= clock.now - bounds["max_age_seconds"] for _, _, at in recorded[position + 1 :])
