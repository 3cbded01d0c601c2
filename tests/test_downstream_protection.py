"""Downstream protection (issue 10 §2): hostile or broken downstreams hurt neither the hub nor other connectors.

Every fault test runs against real processes (the fault fixture over stdio and Streamable HTTP, through a real hub)
and measures two things while the fault happens: calls to another connector stay fast, as a ratio to a baseline
taken in the same test, and the hub's resident memory (this process: the hub runs in-process) stays bounded.
Threats T25 (hangs, floods, size) and T32 (framing abuse, colliding error codes). Our choices, not a spec's.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_hub.domain import Health
from mcp_hub.downstream.progress import BURST
from tests.conftest import RunningHub, connector_toml, fault_connector, running_hub, write_config
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

_PAGE = os.sysconf("SC_PAGE_SIZE")
MEMORY_BOUND = 80 * 1024 * 1024
"""Generous: a 100 MB answer buffered whole (as before) costs several times that; a capped read costs ~4 MiB."""
SLOWDOWN_BOUND = 8.0
"""Generous, for a loaded 2-core machine: before the fix, another connector's calls slowed from ~30 ms to seconds."""


def rss() -> int:
    """This process's resident set size in bytes."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory, port: int) -> AsyncGenerator[RunningHub]:
    config = write_config(
        tmp_path_factory.mktemp("protection"),
        {
            "faults": fault_connector(call_timeout_seconds=15),
            "other": fault_connector("other"),
            "breaker": fault_connector(
                "breaker", call_timeout_seconds=0.3, breaker_failures=3, breaker_cooldown_seconds=1
            ),
            "narrow": fault_connector("narrow", max_concurrent_calls=1, max_queued_calls=1),
            "web": connector_toml(
                id="web",
                transport="http",
                url=f"http://127.0.0.1:{port}/mcp",
                protocol="legacy",
                # The server builds its whole 100 MB body before the first byte: seconds when the machine is busy.
                call_timeout_seconds=30,
            ),
        },
    )
    with http_fault_server(port):
        async with running_hub(config) as running:
            await running.wait_ready()
            yield running


async def median_latency(client: Client, calls: int = 8) -> float:
    """The median time of a call to the well-behaved connector."""
    times: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        result = await client.call_tool("other__echo", {"text": "ping"})
        times.append(time.perf_counter() - started)
        assert text_of(result) == "ping"
    return statistics.median(times)


async def under_fault(
    hub: RunningHub, fault: Callable[[Client], Awaitable[types.CallToolResult]]
) -> types.CallToolResult:
    """Run `fault` while measuring the other connector; assert it stayed fast and the hub's memory bounded."""
    async with Client(hub.url, mode="legacy") as client:
        baseline = max(await median_latency(client), 0.005)
        memory_before = rss()
        outcome: list[types.CallToolResult] = []
        during = 0.0
        async with anyio.create_task_group() as tasks:

            async def run_fault() -> None:
                outcome.append(await fault(client))

            tasks.start_soon(run_fault)
            during = await median_latency(client)
        memory_growth = rss() - memory_before
    assert during / baseline < SLOWDOWN_BOUND, (baseline, during)
    assert memory_growth < MEMORY_BOUND, memory_growth
    return outcome[0]


async def reconnects(hub: RunningHub, connector_id: str, before: int) -> None:
    with anyio.fail_after(20):
        await hub.hub.pool.get(connector_id).wait_connections(before + 1)


async def test_a_100_mb_stdio_line_is_cut_at_the_cap_and_the_connector_reconnects(hub: RunningHub) -> None:
    """T25/T32: the line is not buffered past `max_message_bytes`; the call fails naming the connector."""
    before = hub.hub.pool.get("faults").connections_made
    result = await under_fault(hub, lambda client: client.call_tool("faults__big", {"megabytes": 100}))
    assert result.is_error
    assert "'faults'" in text_of(result)
    assert "longer than 4194304 bytes" in text_of(result)
    await reconnects(hub, "faults", before)


async def test_a_line_that_never_ends_is_cut_and_its_writer_is_replaced(hub: RunningHub) -> None:
    """T32: an endless line cannot be resynchronised: the child is killed and the connector reconnects."""
    before = hub.hub.pool.get("faults").connections_made
    result = await under_fault(hub, lambda client: client.call_tool("faults__endless", {}))
    assert result.is_error
    assert "longer than" in text_of(result)
    await reconnects(hub, "faults", before)


@pytest.mark.parametrize(("tool", "reason"), [("bad_utf8", "invalid UTF-8"), ("not_json", "not JSON")])
async def test_broken_stdio_framing_marks_the_connector_lost_and_later_calls_work(
    hub: RunningHub, tool: str, reason: str
) -> None:
    """T32: before, one invalid UTF-8 line made every later call time out while /healthz said ready."""
    connection = hub.hub.pool.get("faults")
    before = connection.connections_made
    result = await under_fault(hub, lambda client: client.call_tool(f"faults__{tool}", {}))
    assert result.is_error
    assert reason in text_of(result)
    await reconnects(hub, "faults", before)
    async with Client(hub.url, mode="legacy") as client:
        with anyio.fail_after(3):
            assert text_of(await client.call_tool("faults__echo", {"text": "again"})) == "again"


async def test_a_100_mb_http_answer_fails_that_call_only(hub: RunningHub) -> None:
    """T25/T32: the HTTP reader stops at the cap; the call fails, the connection (and its other calls) go on."""
    connection = hub.hub.pool.get("web")
    before = connection.connections_made
    result = await under_fault(hub, lambda client: client.call_tool("web__big", {"megabytes": 100}))
    assert result.is_error
    assert "'web'" in text_of(result)
    assert "larger than 4194304 bytes" in text_of(result)
    async with Client(hub.url, mode="legacy") as client:
        assert text_of(await client.call_tool("web__echo", {"text": "still"})) == "still"
    assert connection.connections_made == before


@pytest.mark.parametrize(("code", "message"), [(-32000, "Connection closed"), (-32001, "Request timed out")])
async def test_a_remote_error_with_the_sdks_own_code_fails_only_that_call(
    hub: RunningHub, code: int, message: str
) -> None:
    """T32: a downstream's -32000/-32001 (even with the SDK's own message) is that call's error: the connection
    and the other call in flight on it are untouched."""
    connection = hub.hub.pool.get("faults")
    await connection.wait_for(Health.READY)
    before = connection.connections_made
    slow: list[types.CallToolResult] = []
    relayed: MCPError | None = None
    async with Client(hub.url, mode="legacy") as client, anyio.create_task_group() as tasks:

        async def slow_call() -> None:
            slow.append(await client.call_tool("faults__slow", {"seconds": 0.5}))

        tasks.start_soon(slow_call)
        try:
            failed = await client.call_tool("faults__rpc_error", {"code": code, "message": message})
            assert failed.is_error  # -32001 with the SDK's timeout message: that call timed out, nothing more
        except MCPError as exc:
            relayed = exc
    if relayed is not None:
        assert relayed.error.code == code  # relayed as the downstream's own error
    assert text_of(slow[0]) == "done"
    assert connection.connections_made == before
    assert connection.health.state is Health.READY


async def test_a_progress_flood_is_coalesced_and_the_last_progress_arrives(hub: RunningHub) -> None:
    """Issue 10 §2: of 5,000 progress notifications a burst of 10 is relayed, then at most one per 50 ms, the last
    one included."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    started = time.perf_counter()
    result = await under_fault(
        hub,
        lambda client: client.call_tool("faults__progress_flood", {"count": 5_000}, progress_callback=on_progress),
    )
    elapsed = time.perf_counter() - started
    assert text_of(result) == "sent 5000"
    assert seen[-1] == 5_000
    assert len(seen) <= BURST + elapsed / 0.05 + 2, (len(seen), elapsed)


async def health_of(hub: RunningHub, connector_id: str) -> dict[str, object]:
    async with httpx2.AsyncClient() as http:
        return (await http.get(f"{hub.base_url}/healthz")).json()["connectors"][connector_id]["calls"]


async def test_the_circuit_breaker_opens_fails_fast_half_opens_and_closes(hub: RunningHub) -> None:
    """T25: 3 consecutive timeouts open it; calls then fail at once; after the cooldown one probe closes it."""
    breaker = hub.hub.pool.get("breaker").breaker
    async with Client(hub.url, mode="legacy") as client:
        for _ in range(3):
            timed_out = await client.call_tool("breaker__hang", {})
            assert "did not answer" in text_of(timed_out)
        assert breaker.state == "open"
        assert (await health_of(hub, "breaker"))["breaker"] == {
            "state": "open",
            "consecutive_failures": 3,
            "opened": 1,
            "retry_in_seconds": pytest.approx(1.0, abs=0.6),  # pyright: ignore[reportUnknownMemberType]
        }
        started = time.perf_counter()
        refused = await client.call_tool("breaker__echo", {"text": "x"})
        assert time.perf_counter() - started < 0.25  # at once: not the 0.3 s timeout
        assert refused.is_error
        assert "'breaker'" in text_of(refused)
        assert "circuit breaker open" in text_of(refused)
        await anyio.sleep(1.0)  # the cooldown is a time, not an event
        assert breaker.state == "half_open"
        probe = await client.call_tool("breaker__echo", {"text": "probe"})
        assert text_of(probe) == "probe"
        assert breaker.state == "closed"
    assert (await health_of(hub, "breaker"))["breaker"]["state"] == "closed"  # pyright: ignore[reportIndexIssue]


async def test_a_failed_probe_opens_the_breaker_again(hub: RunningHub) -> None:
    """T25: half-open lets one call through; its failure opens the breaker for another cooldown."""
    breaker = hub.hub.pool.get("breaker").breaker
    async with Client(hub.url, mode="legacy") as client:
        for _ in range(3):
            await client.call_tool("breaker__hang", {})
        await anyio.sleep(1.0)
        assert breaker.state == "half_open"
        await client.call_tool("breaker__hang", {})
        assert breaker.state == "open"
        await anyio.sleep(1.0)
        assert text_of(await client.call_tool("breaker__echo", {"text": "ok"})) == "ok"
    assert breaker.state == "closed"


async def test_beyond_the_queue_a_call_is_refused_at_once(hub: RunningHub) -> None:
    """T25: 1 running + 1 queued (max_concurrent_calls = 1, max_queued_calls = 1): the next call gets a tool error
    naming the connector at once, instead of waiting."""
    connection = hub.hub.pool.get("narrow")
    async with Client(hub.url, mode="legacy") as client, anyio.create_task_group() as tasks:
        for _ in range(2):
            tasks.start_soon(client.call_tool, "narrow__slow", {"seconds": 3})
        with anyio.fail_after(5):
            while connection.calls_report()["queued"] < 1:  # noqa: ASYNC110 - a limiter has no event for a waiter
                await anyio.sleep(0.01)
        assert connection.calls_report()["running"] == 1
        started = time.perf_counter()
        refused = await client.call_tool("narrow__echo", {"text": "x"})
        assert time.perf_counter() - started < 0.5
        assert refused.is_error
        assert "connector 'narrow' is busy" in text_of(refused)
        assert "max_queued_calls = 1" in text_of(refused)
        tasks.cancel_scope.cancel()
