"""Fair shares of shared things (issue 10 §5) and slow clients (§6), against a real hub over HTTP.

- T28 (one principal exhausts a shared pool), our choice of shares: a principal's 2025-11-25 sessions are
  capped (`max_legacy_sessions_per_principal`) below the total, and a disabled agent's sessions are closed, so
  its slots go back to everyone; pending approvals are counted per (agent, user), so one user of a shared public
  client cannot block the others (T21's cap stays atomic per caller); one web session holds a bounded number of
  approval event streams, and all streams share one read of the database per interval or transition.
- T26 (parser abuse), our choice: a client that sends its headers or its body too slowly is cut off (uvicorn
  has no such deadline of its own).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.domain import ActionStatus, Role
from mcp_hub.runtime import Stores
from tests.approvals.holding import approval_config, approvals_toml
from tests.approvals.test_hold import call, text_of
from tests.authz.conftest import auth_service, client_credentials_token, make_agent
from tests.authz.flow import PASSWORD, App, make_app, tokens_for
from tests.authz.test_sessions_and_caching import LIST_TOOLS, legacy_headers, open_legacy_session
from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

RM = {"text": "rm -rf /tmp/x"}


# --- legacy sessions ----------------------------------------------------------------------------------------


@pytest.fixture
async def session_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    extra = (
        "[hub]\nmax_legacy_sessions = 5\nmax_legacy_sessions_per_principal = 3\n[auth]\ndecision_cache_seconds = 0\n"
    )
    config = write_config(tmp_path, {"faults": fault_connector()}, extra, auth=True)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


async def try_open(http: httpx2.AsyncClient, url: str, token: str) -> httpx2.Response:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    return await http.post(url, headers=legacy_headers(token), json=initialize)


async def test_one_agent_cannot_take_every_legacy_session_and_disabling_it_frees_its_share(
    session_hub: RunningHub,
) -> None:
    """T28, our choice: 3 sessions per principal of 5 in all; the 4th of one agent is refused with 429 while
    another agent still opens its own; once the first agent is disabled its sessions end (404 when it is enabled
    again) and their slots serve the other agent, without waiting for the idle timeout."""
    hub = session_hub
    greedy = await make_agent(hub, unique("greedy"), "tool:faults__*")
    polite = await make_agent(hub, unique("polite"), "tool:faults__*")
    greedy_token = await client_credentials_token(hub, greedy)
    polite_token = await client_credentials_token(hub, polite)
    async with httpx2.AsyncClient(timeout=30) as http:
        greedy_sessions = [await open_legacy_session(http, hub.url, greedy_token) for _ in range(3)]
        refused = await try_open(http, hub.url, greedy_token)
        polite_sessions = [await open_legacy_session(http, hub.url, polite_token) for _ in range(2)]
        full = await try_open(http, hub.url, polite_token)  # 5 of 5 open: the total cap still holds

        await auth_service(hub).admin.set_agent_enabled(greedy.name, False)
        with anyio.fail_after(10):
            while hub.hub.legacy_sessions.count() > len(polite_sessions):
                await hub.hub.legacy_sessions.wait_for_change()
        while_disabled = await try_open(http, hub.url, greedy_token)
        freed = await open_legacy_session(http, hub.url, polite_token)
        still = await http.post(hub.url, headers=legacy_headers(polite_token, polite_sessions[0]), json=LIST_TOOLS)
        await auth_service(hub).admin.set_agent_enabled(greedy.name, True)
        after = [
            await http.post(hub.url, headers=legacy_headers(greedy_token, session), json=LIST_TOOLS)
            for session in greedy_sessions
        ]

    assert refused.status_code == 429, refused.text
    assert "open sessions" in refused.json()["error"]["message"]
    assert full.status_code == 503, full.text
    assert while_disabled.status_code == 401  # a disabled agent's token is refused outright
    assert freed
    assert still.status_code == 200, still.text
    # Enabled again, it finds its old sessions gone: they were closed, not merely refused.
    assert [response.status_code for response in after] == [404, 404, 404]


async def test_a_deleted_legacy_session_gives_its_slot_back(session_hub: RunningHub) -> None:
    """T28: the share counts open sessions only: DELETE ends one and the principal may open another."""
    hub = session_hub
    agent = await make_agent(hub, unique("deleter"), "tool:faults__*")
    token = await client_credentials_token(hub, agent)
    async with httpx2.AsyncClient(timeout=30) as http:
        sessions = [await open_legacy_session(http, hub.url, token) for _ in range(3)]
        refused = await try_open(http, hub.url, token)
        deleted = await http.delete(hub.url, headers=legacy_headers(token, sessions[0]))
        again = await try_open(http, hub.url, token)

    assert refused.status_code == 429
    assert deleted.status_code == 200, deleted.text
    assert again.status_code == 200, again.text


# --- pending approvals per (agent, user) --------------------------------------------------------------------


async def test_users_of_one_public_client_each_have_their_own_pending_cap(tmp_path: Path) -> None:
    """T28 and T21, our choice: `max_pending_per_caller` counts per (agent, user): alice at her cap is refused,
    while bob, signed in to the same public client, still gets his call held for approval."""
    config = write_config(
        tmp_path, {"faults": fault_connector()}, approvals_toml(hold_seconds=0, max_pending=1), auth=True
    )
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        alice_app = await make_app(hub, user="alice")
        bob = unique("bob")
        await auth_service(hub).admin.create_user(bob, Role.APPROVER, PASSWORD)
        await auth_service(hub).admin.add_grant(f"user:{bob}", "tool:faults__echo")
        bob_app = App(client_id=alice_app.client_id, redirect_uri=alice_app.redirect_uri, user=bob, password=PASSWORD)
        alice_token = (await tokens_for(hub, alice_app))["access_token"]
        bob_token = (await tokens_for(hub, bob_app))["access_token"]

        alice_first = await call(hub, alice_token, "2026-07-28", {"text": "rm /tmp/a1"})
        alice_second = await call(hub, alice_token, "2026-07-28", {"text": "rm /tmp/a2"})
        bob_first = await call(hub, bob_token, "2026-07-28", {"text": "rm /tmp/b1"})
        pending = await hub.hub.approvals.list_actions([ActionStatus.PENDING])

    assert "already has 1 actions waiting" in text_of(alice_second)
    assert "is pending" in text_of(alice_first)
    assert "is pending" in text_of(bob_first)
    assert sorted(action.arguments["text"] for action in pending) == ["rm /tmp/a1", "rm /tmp/b1"]


# --- approval event streams ---------------------------------------------------------------------------------


class CountingStore(ApprovalStore):
    """The hub's own approval store, counting how often the actions are listed (the event streams' reads)."""

    listings = 0

    async def list_actions(self, statuses: Sequence[ActionStatus], limit: int = 100) -> list[ActionRecord]:
        CountingStore.listings += 1
        return await super().list_actions(statuses, limit)


@asynccontextmanager
async def event_stream(http: httpx2.AsyncClient, url: str) -> AsyncGenerator[tuple[int, Any]]:
    async with http.stream("GET", url) as response:
        yield response.status_code, response.aiter_lines()


async def next_action_event(lines: Any) -> dict[str, Any]:
    event = None
    async for line in lines:
        if line.startswith("event:"):
            event = line.removeprefix("event:").strip()
        elif line.startswith("data:") and event == "action":
            found: dict[str, Any] = json.loads(line.removeprefix("data:").strip())
            return found
    raise AssertionError("the stream ended without an action event")


async def approver_client(hub: RunningHub, stack: AsyncExitStack) -> httpx2.AsyncClient:
    name = unique("watcher")
    await auth_service(hub).admin.create_user(name, Role.APPROVER, PASSWORD)
    http = await stack.enter_async_context(httpx2.AsyncClient(timeout=30))
    signed_in = await sign_in(http, hub.base_url, name, PASSWORD, "/approvals")
    assert signed_in.status_code == 303, signed_in.text
    return http


async def test_event_streams_are_capped_per_web_session_and_share_one_database_read(tmp_path: Path) -> None:
    """T28, our choice: 4 streams per web session (the 5th gets 429, another session still gets its own), and 12
    open streams told of a new action cost one listing of the actions, not one per stream."""
    config = approval_config(tmp_path, hold_seconds=0)
    config.write_text(config.read_text().replace("[approvals]\n", "[approvals]\nmax_event_streams_per_session = 4\n"))

    def stores(engine: AsyncEngine) -> Stores:
        return replace(Stores.over(engine), approvals=CountingStore(engine))

    async with running_hub(config, stores=stores) as hub, AsyncExitStack() as stack:
        await hub.wait_ready("faults")
        url = f"{hub.base_url}/approvals/events"
        streams: list[Any] = []
        clients = [await approver_client(hub, stack) for _ in range(3)]
        for http in clients:
            for _ in range(4):
                status, lines = await stack.enter_async_context(event_stream(http, url))
                assert status == 200
                streams.append(lines)
        async with event_stream(clients[-1], url) as (refused, _lines):
            pass
        token = await client_credentials_token(hub, await make_agent(hub, unique("asker"), "tool:faults__*"))
        before = CountingStore.listings
        held = await call(hub, token, "2026-07-28", RM)
        with anyio.fail_after(20):
            announced = [await next_action_event(lines) for lines in streams]
        reads = CountingStore.listings - before

    assert refused == 429
    assert "is pending" in text_of(held)
    assert {event["status"] for event in announced} == {"pending"}
    assert len({event["id"] for event in announced}) == 1
    assert reads <= 2, f"{reads} listings for {len(streams)} streams"


# --- slow clients -------------------------------------------------------------------------------------------


@pytest.fixture
async def impatient_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    extra = "[hub]\nheader_timeout_seconds = 0.5\nbody_timeout_seconds = 0.5\n"
    config = write_config(tmp_path, {}, extra)
    async with running_hub(config) as hub:
        yield hub


async def raw_connection(hub: RunningHub) -> anyio.abc.SocketStream:
    port = int(hub.base_url.rsplit(":", 1)[1])
    return await anyio.connect_tcp("127.0.0.1", port)


async def read_until_closed(stream: anyio.abc.SocketStream) -> bytes:
    received = b""
    try:
        while True:
            received += await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
        return received


async def test_a_client_that_never_finishes_its_headers_is_disconnected(impatient_hub: RunningHub) -> None:
    """T26, our choice: request headers must be complete within `header_timeout_seconds`; a connection that
    sends half a request and stalls is closed (with uvicorn alone it stays open forever)."""
    async with await raw_connection(impatient_hub) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        with anyio.fail_after(10):
            received = await read_until_closed(stream)
    assert received == b""


async def test_a_silent_connection_is_disconnected(impatient_hub: RunningHub) -> None:
    """T26, our choice: a connection that sends nothing at all is closed after the header deadline too."""
    async with await raw_connection(impatient_hub) as stream:
        with anyio.fail_after(10):
            received = await read_until_closed(stream)
    assert received == b""


async def test_a_body_that_arrives_too_slowly_is_answered_408_and_the_connection_closed(
    impatient_hub: RunningHub,
) -> None:
    """T26, our choice: the whole body must arrive within `body_timeout_seconds` of the request."""
    head = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{"
    )
    async with await raw_connection(impatient_hub) as stream:
        await stream.send(head)
        with anyio.fail_after(10):
            received = await read_until_closed(stream)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]


async def test_a_prompt_client_is_not_affected_by_the_deadlines(impatient_hub: RunningHub) -> None:
    """The deadlines bound slow clients only: a normal request on a kept-alive connection is answered."""
    async with httpx2.AsyncClient(timeout=10) as http:
        first = await http.get(f"{impatient_hub.base_url}/healthz")
        second = await http.get(f"{impatient_hub.base_url}/healthz")
    assert (first.status_code, second.status_code) == (200, 200)


# --- oversized request heads ----------------------------------------------------------------------------------


@pytest.fixture
async def small_head_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    config = write_config(tmp_path, {}, "[hub]\nmax_header_bytes = 8192\n")
    async with running_hub(config) as hub:
        yield hub


async def test_a_request_head_over_the_bound_is_answered_431_and_the_connection_closed(
    small_head_hub: RunningHub,
) -> None:
    """T25, T26: a request's line and headers are bounded (`max_header_bytes`; uvicorn's httptools protocol bounds
    none: a 1 MiB field was taken whole and handed to the app)."""
    async with await raw_connection(small_head_hub) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 1024 * 1024 + b"\r\n\r\n")
        with anyio.fail_after(10):
            received = await read_until_closed(stream)
    assert received.startswith(b"HTTP/1.1 431"), received[:200]
    assert received.count(b"HTTP/1.1 ") == 1, received[:400]


async def test_a_head_that_keeps_growing_is_cut_without_waiting_for_the_header_deadline(
    small_head_hub: RunningHub,
) -> None:
    """T26: a head still incomplete after the bound is answered 431 at once (the deadline is 10 s here)."""
    async with await raw_connection(small_head_hub) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for _ in range(8):  # the hub reads on (and drops) what comes after its answer: no reset loses the answer
            await stream.send(b"X-More: " + b"b" * 4096 + b"\r\n")
        with anyio.fail_after(5):
            received = await read_until_closed(stream)
    assert received.startswith(b"HTTP/1.1 431"), received[:200]


async def test_a_large_body_behind_a_small_head_is_not_taken_for_a_large_head(small_head_hub: RunningHub) -> None:
    """The bound is on the head alone: a 1 MiB body sent with its head in one write, then a second request on the
    same connection, are both answered as usual."""
    body = b"[" + b"1," * (512 * 1024) + b"1]"
    request = (
        b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Accept: application/json, text/event-stream\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    health = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    async with await raw_connection(small_head_hub) as stream:
        await stream.send(request + health)
        with anyio.fail_after(10):
            received = await read_until_closed(stream)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", received)
    assert len(statuses) == 2, received[:300]
    assert b"431" not in statuses, statuses  # the first is the SDK's refusal of the body (400): it was read
    assert statuses[1] == b"200"
