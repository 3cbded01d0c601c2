"""Resumable streams end to end: a client whose stream is cut off reconnects and loses nothing.

2025-11-25 (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports, "Resumability and
Redelivery"): the standalone GET stream and a call's SSE response are resumed by `GET` + `Last-Event-ID`.
2026-07-28 has no resumption; a `subscriptions/listen` stream is opened again and acknowledged afresh.
Raw HTTP (httpx2) throughout, because the point is cutting a connection at an exact event, which no client
library lets a caller do. Threats: T13 (another session's event ids), T28 (one session's flood).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from httpx2 import ServerSentEvent
from mcp import Client
from mcp.client.session import IncomingMessage

from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
RETRY_MS = 250
LIST_CHANGED = "notifications/tools/list_changed"
MODERN_ENVELOPE: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": MODERN,
    "io.modelcontextprotocol/clientCapabilities": {},
}

Message = dict[str, Any]
Events = AsyncIterator[ServerSentEvent]


@asynccontextmanager
async def sse_events(response: httpx2.Response) -> AsyncGenerator[Events]:
    """The SSE events of `response`, closed with the block."""

    async def events() -> AsyncGenerator[ServerSentEvent]:
        async for sse in httpx2.EventSource(response):
            yield sse

    async with aclosing(events()) as stream:
        yield stream


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    config = write_config(
        tmp_path_factory.mktemp("streams"),
        # Every progress step is relayed (no coalescing): the test follows each step across a cut stream.
        {"faults": fault_connector(progress_interval_ms=0)},
        f"[streams]\nretry_ms = {RETRY_MS}\n",
    )
    async with running_hub(config) as running:
        await running.wait_ready()
        yield running


@pytest.fixture(scope="module")
async def small_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub whose event store keeps two events per stream and ten per session (and more in all than the sessions
    of this module's tests hold at once: the global bound is the pure tests' business, tests/test_event_store.py)."""
    bounds = (
        "[streams]\nmax_events = 100\nmax_events_per_session = 10\nmax_events_per_stream = 2\n"
        "max_bytes = 1000000\nmax_age_seconds = 60\n"
    )
    config = write_config(tmp_path_factory.mktemp("small-streams"), {"faults": fault_connector()}, bounds)
    async with running_hub(config) as running:
        await running.wait_ready()
        yield running


def event_ids_parts(event_id: str) -> tuple[str, str, int]:
    """(kind, stream token, position) of one of the hub's event ids."""
    kind, token, position = event_id.split(".")
    return kind, token, int(position)


@dataclass
class RawSession:
    """A 2025-11-25 session spoken over raw HTTP, so that its streams can be cut at an exact event."""

    http: httpx2.AsyncClient
    url: str
    id: str
    _request_ids: Iterator[int] = field(default_factory=lambda: itertools.count(2))

    def headers(self, last_event_id: str | None = None) -> dict[str, str]:
        headers = {
            "Accept": ACCEPT,
            "Content-Type": "application/json",
            "Mcp-Session-Id": self.id,
            "MCP-Protocol-Version": LEGACY,
        }
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        return headers

    def request(self, method: str, params: dict[str, Any]) -> Message:
        return {"jsonrpc": "2.0", "id": next(self._request_ids), "method": method, "params": params}

    @asynccontextmanager
    async def post(self, body: Message) -> AsyncGenerator[Events]:
        """The SSE response to `body`; leaving the block closes the connection (the cut)."""
        async with self.http.stream("POST", self.url, json=body, headers=self.headers()) as response:
            assert response.status_code == 200, await response.aread()
            async with sse_events(response) as events:
                yield events

    @asynccontextmanager
    async def get(self, last_event_id: str | None = None) -> AsyncGenerator[Events]:
        """The session's GET stream (resuming after `last_event_id`); leaving the block cuts it."""
        async with self.http.stream("GET", self.url, headers=self.headers(last_event_id)) as response:
            assert response.status_code == 200, await response.aread()
            async with sse_events(response) as events:
                yield events

    async def call(self, tool: str, arguments: dict[str, Any]) -> Message:
        """Call `tool` and read its stream to the response."""
        body = self.request("tools/call", {"name": tool, "arguments": arguments})
        async with self.post(body) as events:
            async for sse in events:
                if sse.data and (message := json.loads(sse.data)).get("id") == body["id"]:
                    return message
        raise AssertionError(f"the stream of {tool} ended without a response")

    async def resume(self, last_event_id: str, until: Callable[[Message], bool]) -> list[tuple[str, Message]]:
        """Resume after `last_event_id` as a client does (again after each id received, should the hub end the
        stream early) until a message satisfies `until`: every (event id, message) received on the way."""
        received: list[tuple[str, Message]] = []
        while True:
            async with self.get(last_event_id) as events:
                async for sse in events:
                    if not sse.data:
                        continue  # a priming event
                    message = json.loads(sse.data)
                    received.append((sse.id, message))
                    last_event_id = sse.id
                    if until(message):
                        return received


async def open_raw_session(http: httpx2.AsyncClient, url: str) -> RawSession:
    """`initialize` + `notifications/initialized` over raw HTTP."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    response = await http.post(url, headers=headers, json=initialize)
    assert response.status_code == 200, response.text
    session = RawSession(http, url, response.headers["mcp-session-id"])
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    acknowledged = await http.post(url, headers=session.headers(), json=initialized)
    assert acknowledged.status_code == 202, acknowledged.text
    return session


@asynccontextmanager
async def witness(hub: RunningHub) -> AsyncGenerator[Callable[[str], Awaitable[None]]]:
    """A legacy SDK client listening on its own session: `change(name)` adds a tool downstream and returns once
    this client was told. The hub tells every session in one pass, in no fixed order, so by then it has long
    handed the notification to every other session too (to its open stream, or to the store alone)."""
    told, telling = anyio.create_memory_object_stream[None](16)

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            await told.send(None)

    async with told, telling, Client(hub.url, mode="legacy", message_handler=on_message) as client:
        await client.list_tools()

        async def change(name: str) -> None:
            await client.call_tool("faults__add_tool", {"name": name})
            with anyio.fail_after(10):
                await telling.receive()

        yield change


def is_list_changed(message: Message) -> bool:
    return message.get("method") == LIST_CHANGED


# --- 2025-11-25: the standalone GET stream -----------------------------------------------------------------


async def test_a_list_change_while_the_get_stream_was_cut_is_replayed_on_reconnect(hub: RunningHub) -> None:
    """Spec 2025-11-25, Resumability and Redelivery (a server MAY replay after `Last-Event-ID`, on that stream
    only). Our choice beyond the SDK: the GET stream starts with a priming event (id and `retry`), so a client
    cut off before its first notification can resume too; after the replay the stream continues live."""
    async with httpx2.AsyncClient(timeout=10) as http, witness(hub) as change:
        session = await open_raw_session(http, hub.url)
        async with session.get() as events:
            with anyio.fail_after(10):
                priming = await anext(events)
        # Cut. A notification while nobody listens on this session's stream:
        await change(unique("missed"))
        with anyio.fail_after(10):
            async with session.get(priming.id) as events:
                replayed = await anext(events)
                await change(unique("live"))
                live = await anext(events)
    assert (priming.data, priming.retry) == ("", RETRY_MS)
    kind, token, position = event_ids_parts(priming.id)
    assert kind == "g"
    assert is_list_changed(json.loads(replayed.data))
    assert event_ids_parts(replayed.id) == ("g", token, position + 1)
    assert is_list_changed(json.loads(live.data))
    assert event_ids_parts(live.id) == ("g", token, position + 2)


async def test_a_client_that_missed_nothing_resumes_without_a_replay(hub: RunningHub) -> None:
    """Spec 2025-11-25: replay only what followed the client's last event; here nothing did, and the resumed
    stream carries what comes next (our choice: no priming event on a resumed stream, see
    `gateway/resumption.py`)."""
    async with httpx2.AsyncClient(timeout=10) as http, witness(hub) as change:
        session = await open_raw_session(http, hub.url)
        async with session.get() as events:
            with anyio.fail_after(10):
                priming = await anext(events)
        with anyio.fail_after(10):
            async with session.get(priming.id) as events:
                await change(unique("after-resume"))
                first = await anext(events)
    assert is_list_changed(json.loads(first.data))
    assert event_ids_parts(first.id)[2] == event_ids_parts(priming.id)[2] + 1


async def test_a_second_get_stream_while_one_is_open_is_refused_and_the_first_goes_on(hub: RunningHub) -> None:
    """Spec 2025-11-25 (Multiple Connections: a message goes on one stream only, never broadcast). The SDK allows
    one standalone stream per session and answers a second GET 409; the hub keeps that rule for the GET streams it
    hands the SDK as resumptions (our choice). The open stream goes on receiving."""
    async with httpx2.AsyncClient(timeout=10) as http, witness(hub) as change:
        session = await open_raw_session(http, hub.url)
        with anyio.fail_after(10):
            async with session.get() as events:
                await anext(events)  # priming
                second = await http.get(hub.url, headers=session.headers())
                await change(unique("one-stream"))
                notified = await anext(events)
    assert second.status_code == 409
    assert second.json()["error"]["code"] == types.INVALID_REQUEST
    assert is_list_changed(json.loads(notified.data))


# --- 2025-11-25: a call's SSE response ---------------------------------------------------------------------


async def test_a_cut_tool_call_stream_resumes_with_the_remaining_progress_and_the_result(hub: RunningHub) -> None:
    """Spec 2025-11-25: a POST's SSE stream is primed with an event id and `retry` (SHOULD), a disconnection is
    not a cancellation (SHOULD NOT), and resumption is a GET with `Last-Event-ID`. Every progress step arrives
    exactly once across the two connections, in order, then the result: the call went on while nobody listened,
    and replay and live continuation meet without a gap (our choice: `gateway/resumption.py`, 3)."""
    steps = 50
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_raw_session(http, hub.url)
        call = session.request(
            "tools/call",
            {"name": "faults__slow", "arguments": {"seconds": steps * 0.01}, "_meta": {"progressToken": "cut"}},
        )
        before: list[Message] = []
        with anyio.fail_after(10):
            async with session.post(call) as events:
                priming = await anext(events)
                last_event_id = priming.id
                while len(before) < 3:
                    step = await anext(events)
                    before.append(json.loads(step.data))
                    last_event_id = step.id
            # Cut after the third step; resume at once, while the call is still running.
            after = await session.resume(last_event_id, until=lambda message: message.get("id") == call["id"])
    assert (priming.data, priming.retry) == ("", RETRY_MS)
    assert event_ids_parts(priming.id)[0] == "r"
    received = before + [message for _, message in after]
    progress = [message["params"]["progress"] for message in received if "method" in message]
    assert progress == [float(step) for step in range(1, steps + 1)]
    assert received[-1]["result"]["content"][0]["text"] == "done"
    tokens = {event_ids_parts(event_id)[1] for event_id, _ in after}
    assert tokens == {event_ids_parts(priming.id)[1]}  # one stream throughout


# --- ids that cannot be resumed ----------------------------------------------------------------------------


async def test_another_sessions_event_ids_replay_nothing(hub: RunningHub) -> None:
    """T13; spec 2025-11-25: a server MUST NOT replay messages of another stream, and event ids are a cursor
    within one session's streams. Another session's call stream id is refused (400, our choice: the spec leaves
    unresumable ids open, modelcontextprotocol#1939); its notification stream id opens this session's own stream,
    starting over with a list-changed notification (our choice: list changes are levels, so a client told to
    refetch has lost nothing). Not one of the other session's events arrives."""
    async with httpx2.AsyncClient(timeout=10) as http, witness(hub) as change:
        alice = await open_raw_session(http, hub.url)
        mallory = await open_raw_session(http, hub.url)
        body = alice.request("tools/call", {"name": "faults__echo", "arguments": {"text": "alice's secret"}})
        async with alice.post(body) as events:
            call_stream_id = (await anext(events)).id
        async with alice.get() as events:
            with anyio.fail_after(10):
                notification_stream_id = (await anext(events)).id
        await change(unique("for-alice"))  # alice's notification stream now holds an event after that id

        refused = await http.get(hub.url, headers=mallory.headers(call_stream_id))
        with anyio.fail_after(10):
            async with mallory.get(notification_stream_id) as events:
                fresh = await anext(events)
                refetch = await anext(events)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == types.INVALID_REQUEST
    assert "alice" not in refused.text
    alice_token = event_ids_parts(notification_stream_id)[1]
    assert event_ids_parts(fresh.id)[1] != alice_token
    assert fresh.data == ""
    assert is_list_changed(json.loads(refetch.data))
    assert event_ids_parts(refetch.id)[1] == event_ids_parts(fresh.id)[1]


@pytest.mark.parametrize(
    ("forged", "standalone"),
    [
        pytest.param("not-an-event-id", False, id="garbage"),
        pytest.param("r.{token}.1", False, id="call-stream-with-a-foreign-token"),
        pytest.param("r.{call}.99", False, id="own-call-stream-future-position"),
        pytest.param("r.{call}.1.0", False, id="extra-part"),
        pytest.param("r.{call}.01", False, id="own-call-stream-non-canonical-position"),
        pytest.param("g.{token}.0", True, id="notification-stream-with-a-foreign-token"),
        pytest.param("g.{own}.99", True, id="own-notification-stream-future-position"),
        pytest.param("g.{own}.-1", True, id="own-notification-stream-negative-position"),
    ],
)
async def test_a_forged_event_id_replays_nothing(hub: RunningHub, forged: str, standalone: bool) -> None:
    """T13, fail closed (our choice, as above): a forged id for a call stream is refused with 400; for the
    notification stream it opens a fresh stream of the session's own that starts with a refetch."""
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_raw_session(http, hub.url)
        body = session.request("tools/call", {"name": "faults__echo", "arguments": {"text": "x"}})
        async with session.post(body) as events:
            call_token = event_ids_parts((await anext(events)).id)[1]
        async with session.get() as events:
            with anyio.fail_after(10):
                own_token = event_ids_parts((await anext(events)).id)[1]
        last_event_id = forged.format(token="A" * 22, call=call_token, own=own_token)
        if not standalone:
            refused = await http.get(hub.url, headers=session.headers(last_event_id))
            assert refused.status_code == 400
            return
        with anyio.fail_after(10):
            async with session.get(last_event_id) as events:
                fresh = await anext(events)
                refetch = await anext(events)
    assert fresh.data == ""
    assert fresh.id != last_event_id
    assert event_ids_parts(fresh.id)[1] == own_token
    assert is_list_changed(json.loads(refetch.data))


async def test_an_id_whose_successors_were_evicted_replays_nothing(small_hub: RunningHub) -> None:
    """Our choice (a bounded store): a replay is whole or refused, never one with a hole. Two events per stream
    are kept: a call stream resumed from its first progress step after five arrived is refused (400); a
    notification stream resumed after three notifications went by starts over with a refetch instead of
    replaying the two it still holds."""
    async with httpx2.AsyncClient(timeout=10) as http, witness(small_hub) as change:
        session = await open_raw_session(http, small_hub.url)
        call = session.request(
            "tools/call", {"name": "faults__slow", "arguments": {"seconds": 0.2}, "_meta": {"progressToken": "e"}}
        )
        with anyio.fail_after(10):
            async with session.post(call) as events:
                await anext(events)  # priming
                first_step = await anext(events)
                for _ in range(4):
                    await anext(events)
        refused = await http.get(small_hub.url, headers=session.headers(first_step.id))

        async with session.get() as events:
            with anyio.fail_after(10):
                priming = await anext(events)
        for _ in range(3):
            await change(unique("evicting"))
        with anyio.fail_after(10):
            async with session.get(priming.id) as events:
                fresh = await anext(events)
                refetch = await anext(events)
    assert refused.status_code == 400
    _, token, position = event_ids_parts(priming.id)
    assert event_ids_parts(fresh.id) == ("g", token, position + 4)  # after the three it missed
    assert fresh.data == ""
    assert is_list_changed(json.loads(refetch.data))
    assert event_ids_parts(refetch.id) == ("g", token, position + 5)


async def test_a_flood_of_calls_keeps_the_store_within_its_bounds(small_hub: RunningHub) -> None:
    """T28, our choice: however many events sessions produce, the store holds at most its bounds, and one
    session's calls evict its own oldest events first: another session's notification stream stays resumable."""
    store = small_hub.hub.stream_events
    async with httpx2.AsyncClient(timeout=10) as http, witness(small_hub) as change:
        quiet = await open_raw_session(http, small_hub.url)
        async with quiet.get() as events:
            with anyio.fail_after(10):
                priming = await anext(events)
        await change(unique("before-the-flood"))
        async with Client(small_hub.url, mode="legacy") as flooder:
            for index in range(30):
                await flooder.call_tool("faults__echo", {"text": str(index)})
                stats = store.stats()
                assert stats.events <= store.limits.max_events
                assert stats.bytes <= store.limits.max_bytes
        with anyio.fail_after(10):
            replayed = await quiet.resume(priming.id, until=is_list_changed)
    assert [event_ids_parts(event_id)[2] for event_id, _ in replayed] == [event_ids_parts(priming.id)[2] + 1]


# --- 2026-07-28 ----------------------------------------------------------------------------------------------


async def test_a_modern_listen_stream_is_not_resumable_so_a_client_listens_again_and_refetches(
    hub: RunningHub,
) -> None:
    """Spec 2026-07-28, streamable HTTP ("Resumable SSE streams via Last-Event-ID are not supported") and
    subscriptions (the acknowledgement comes first; the client re-sends `subscriptions/listen`). The listen
    stream's frames carry no event id and no `retry`, so a client has nothing to resume from; a `Last-Event-ID`
    on the new listen is ignored, the new stream is acknowledged afresh, and the list then fetched has the change
    made while the client was away: it refetches after the acknowledgement, as the SDK's client docs say."""
    listen: Message = {
        "jsonrpc": "2.0",
        "id": "listen-1",
        "method": "subscriptions/listen",
        "params": {"notifications": {"toolsListChanged": True}, "_meta": MODERN_ENVELOPE},
    }
    headers = {
        "Accept": ACCEPT,
        "Content-Type": "application/json",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "subscriptions/listen",
    }
    added = unique("while-away")
    async with httpx2.AsyncClient(timeout=10) as http:
        with anyio.fail_after(10):
            async with (
                http.stream("POST", hub.url, json=listen, headers=headers) as response,
                sse_events(response) as events,
            ):
                first = await anext(events)
            # Cut. A change while away, seen by another modern client:
            async with Client(hub.url, mode=MODERN) as other, other.listen(tools_list_changed=True) as changes:
                await other.call_tool("faults__add_tool", {"name": added})
                await anext(changes)
                again = {**headers, "Last-Event-ID": first.id or "0"}
                async with (
                    http.stream("POST", hub.url, json=listen, headers=again) as response,
                    sse_events(response) as events,
                ):
                    acknowledged = await anext(events)
                listing = await other.list_tools()
    assert json.loads(first.data)["method"] == "notifications/subscriptions/acknowledged"
    assert (first.id, first.retry) == ("", None)
    assert json.loads(acknowledged.data)["method"] == "notifications/subscriptions/acknowledged"
    assert f"faults__{added}" in [tool.name for tool in listing.tools]
