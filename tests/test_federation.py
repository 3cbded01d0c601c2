"""End to end: real clients of both eras, through a real hub, to real downstream servers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import IncomingMessage
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

from mcp_hub.domain import Health
from tests.conftest import RunningHub, fault_connector, running_hub, time_connector, write_config

pytestmark = pytest.mark.anyio

Era = Literal["legacy", "2026-07-28"]
ERAS: list[Era] = ["legacy", "2026-07-28"]


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """One hub for the module: its tests leave it as they found it (a crash is followed by a reconnect)."""
    config = write_config(
        tmp_path_factory.mktemp("hub"),
        {
            "faults": fault_connector(call_timeout_seconds=2),
            "modern": fault_connector("modern", protocol="2026-07-28"),
            "time": time_connector(),
        },
    )
    async with running_hub(config) as running:
        await running.wait_ready()
        yield running


@pytest.mark.parametrize("era", ERAS)
async def test_a_client_of_either_era_sees_every_downstream_tool_under_its_public_name(
    hub: RunningHub, era: Era
) -> None:
    """Issue 2 §5, our choice: `<connector-id>__<tool>`, sorted, from one endpoint."""
    async with Client(hub.url, mode=era) as client:
        names = [tool.name for tool in (await client.list_tools()).tools]
    assert names == sorted(names)
    assert {"faults__echo", "modern__echo", "time__get_current_time", "time__convert_time"} <= set(names)


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_reaches_the_right_downstream_under_its_original_name(hub: RunningHub, era: Era) -> None:
    """Issue 2 §7: forwarding to stdio downstreams of both eras (our fixture and mcp-server-time)."""
    async with Client(hub.url, mode=era) as client:
        echoed = await client.call_tool("faults__echo", {"text": "hello"})
        modern = await client.call_tool("modern__echo", {"text": "hi modern"})
        now = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
    assert (text_of(echoed), echoed.is_error) == ("hello", False)
    assert text_of(modern) == "hi modern"
    assert json.loads(text_of(now))["timezone"] == "UTC"


async def test_modern_lists_carry_cache_hints(hub: RunningHub) -> None:
    """Spec 2026-07-28 (caching): list results carry ttlMs and cacheScope."""
    async with Client(hub.url, mode="2026-07-28") as client:
        listing = await client.list_tools()
    assert listing.ttl_ms == hub.hub.settings.catalog.list_ttl_ms
    assert listing.cache_scope == "public"


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_tool_is_an_invalid_params_error(hub: RunningHub, era: Era) -> None:
    """Spec: unknown tool is JSON-RPC -32602, in both eras."""
    async with Client(hub.url, mode=era) as client:
        with pytest.raises(MCPError) as caught:
            await client.call_tool("nope__missing", {})
    assert caught.value.code == types.INVALID_PARAMS
    assert "nope__missing" in caught.value.message


async def test_every_call_reuses_one_long_lived_downstream_connection(hub: RunningHub) -> None:
    """Issue 2 §4, our choice: never a handshake per call — 30 calls, one process, one connection."""
    connection = hub.hub.pool.get("faults")
    connections_before = connection.connections_made
    async with Client(hub.url, mode="2026-07-28") as client:
        pids = {text_of(await client.call_tool("faults__pid", {})) for _ in range(30)}
    assert len(pids) == 1
    assert connection.connections_made == connections_before


async def test_a_downstream_tool_error_stays_a_tool_error(hub: RunningHub) -> None:
    """Spec: tool execution errors are results with isError, not protocol errors."""
    async with Client(hub.url, mode="legacy") as client:
        result = await client.call_tool("faults__fail", {})
    assert result.is_error
    assert text_of(result) == "it failed"


@pytest.mark.parametrize("era", ERAS)
async def test_progress_notifications_flow_back_to_the_caller(hub: RunningHub, era: Era) -> None:
    """Issue 2 §7; spec: progress is delivered against the caller's own progress token."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(hub.url, mode=era) as client:
        result = await client.call_tool("faults__slow", {"seconds": 0.05}, progress_callback=on_progress)
    assert text_of(result) == "done"
    assert seen
    assert seen == sorted(seen)


@pytest.mark.parametrize("era", ERAS)
async def test_cancelling_a_call_cancels_it_downstream(hub: RunningHub, era: Era) -> None:
    """Issue 2 §7: cancellation reaches the downstream (legacy: notifications/cancelled; modern: stream close)."""
    key = f"cancel-{era}"
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(hub.url, mode=era) as client:
        async with anyio.create_task_group() as tasks:

            async def slow_call() -> None:
                await client.call_tool("faults__slow", {"seconds": 60, "key": key}, progress_callback=on_progress)

            tasks.start_soon(slow_call)
            with anyio.fail_after(10):
                await started.wait()
            tasks.cancel_scope.cancel()
        with anyio.fail_after(10):
            confirmation = await client.call_tool("faults__wait_cancelled", {"key": key})
    assert text_of(confirmation) == "cancelled"


async def test_a_hung_downstream_times_out_with_an_error_naming_it_and_others_still_answer(hub: RunningHub) -> None:
    """T25, issue 2 §4/§7: a per-connector timeout; one slow connector never blocks another."""
    hung: list[types.CallToolResult] = []
    async with Client(hub.url, mode="2026-07-28") as client, anyio.create_task_group() as tasks:

        async def hang() -> None:
            hung.append(await client.call_tool("faults__hang", {}))

        tasks.start_soon(hang)
        with anyio.fail_after(1.5):  # well inside the hung call's 2 s timeout
            other = await client.call_tool("time__get_current_time", {"timezone": "UTC"})
        assert not other.is_error
    assert hung[0].is_error
    assert "'faults'" in text_of(hung[0])
    assert "did not answer within 2 s" in text_of(hung[0])


async def test_a_crashed_stdio_downstream_is_reported_then_reconnected(hub: RunningHub) -> None:
    """T25, issue 2 §4: a crash becomes a tool error naming the connector; the pool reconnects by itself."""
    connection = hub.hub.pool.get("faults")
    connections_before = connection.connections_made
    async with Client(hub.url, mode="legacy") as client:
        first_pid = text_of(await client.call_tool("faults__pid", {}))
        crashed = await client.call_tool("faults__crash", {})
        assert crashed.is_error
        assert "'faults'" in text_of(crashed)
        with anyio.fail_after(20):
            await connection.wait_connections(connections_before + 1)
        second_pid = text_of(await client.call_tool("faults__pid", {}))
        still_fine = await client.call_tool("modern__echo", {"text": "unaffected"})
    assert second_pid != first_pid
    assert text_of(still_fine) == "unaffected"


async def test_a_downstream_that_returns_with_a_different_list_is_refreshed_and_announced(hub: RunningHub) -> None:
    """Issue 2 §5: a reconnect with a different tool list updates the catalog and notifies clients."""
    connection = hub.hub.pool.get("faults")
    connections_before = connection.connections_made
    announcements, announced = anyio.create_memory_object_stream[str](16)

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            await announcements.send("tools changed")

    async with Client(hub.url, mode="legacy", message_handler=on_message) as legacy, announced:
        await legacy.call_tool("faults__add_tool", {"name": "ephemeral"})
        with anyio.fail_after(10):
            await announced.receive()
        assert "faults__ephemeral" in [tool.name for tool in (await legacy.list_tools()).tools]
        await legacy.call_tool("faults__crash", {})  # the restarted server no longer has the added tool
        with anyio.fail_after(20):
            await announced.receive()
        # What the hub announces is callable at once: no window in which the new list names a dead session.
        echoed = await legacy.call_tool("faults__echo", {"text": "back"})
        names = [tool.name for tool in (await legacy.list_tools()).tools]
    announcements.close()
    assert connection.connections_made == connections_before + 1
    assert text_of(echoed) == "back"
    assert "faults__ephemeral" not in names
    assert "faults__echo" in names


async def test_the_callers_meta_and_identity_are_not_forwarded_downstream(hub: RunningHub) -> None:
    """T01 groundwork, our choice: the downstream sees the hub's envelope, never the agent's `_meta`."""
    async with Client(
        hub.url, mode="2026-07-28", client_info=types.Implementation(name="agent-x", version="9")
    ) as client:
        result = await client.call_tool("modern__meta", {}, meta={"agent-secret": "canary-7f3a"})
    seen_meta: dict[str, Any] = json.loads(text_of(result))
    assert "canary-7f3a" not in text_of(result)
    assert "agent-x" not in text_of(result)
    assert seen_meta["io.modelcontextprotocol/clientInfo"]["name"] == "mcp-hub"


@pytest.mark.parametrize("downstream", ["faults", "modern"])
async def test_a_downstream_tool_list_change_refreshes_the_catalog_and_notifies_both_eras(
    hub: RunningHub, downstream: str
) -> None:
    """Issue 2 §5: list_changed from a legacy session or a modern listen stream reaches clients of both eras."""
    legacy_notified = anyio.Event()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            legacy_notified.set()

    async with (
        Client(hub.url, mode="legacy", message_handler=on_message) as legacy,
        Client(hub.url, mode="2026-07-28") as modern,
        modern.listen(tools_list_changed=True) as subscription,
    ):
        await legacy.list_tools()
        await modern.call_tool(f"{downstream}__add_tool", {"name": f"added_to_{downstream}"})
        with anyio.fail_after(10):
            event = await subscription.__anext__()
            await legacy_notified.wait()
        assert isinstance(event, ToolsListChanged)
        names = [tool.name for tool in (await legacy.list_tools()).tools]
    assert f"{downstream}__added_to_{downstream}" in names


async def test_every_call_is_written_to_the_audit_table(hub: RunningHub) -> None:
    """Issue 2 §7: one audit row per call, with its outcome."""
    async with Client(hub.url, mode="2026-07-28") as client:
        await client.call_tool("faults__echo", {"text": "a"})
        await client.call_tool("faults__fail", {})
        with pytest.raises(MCPError):
            await client.call_tool("faults__nope", {})
    await hub.hub.audit.flush()
    rows = await hub.hub.stores.audit.recent_audit(limit=3)
    assert [(row.public_name, row.outcome) for row in reversed(rows)] == [
        ("faults__echo", "ok"),
        ("faults__fail", "tool_error"),
        ("faults__nope", "unknown_tool"),
    ]
    assert rows[-1].connector_id == "faults"
    assert rows[-1].downstream_name == "echo"
    assert rows[-1].latency_ms > 0


async def test_healthz_shows_every_connector_with_its_state_and_era(hub: RunningHub) -> None:
    """Issue 2 §4: per-connector health on /healthz."""
    async with httpx2.AsyncClient() as http:
        body = (await http.get(f"{hub.base_url}/healthz")).json()
    assert body["status"] == "ok"
    assert body["connectors"]["faults"]["state"] == "ready"
    assert body["connectors"]["faults"]["era"] == "2025-11-25"
    assert body["connectors"]["modern"]["era"] == "2026-07-28"


async def test_a_foreign_origin_is_refused(hub: RunningHub) -> None:
    """T12, spec: servers MUST validate Origin (DNS rebinding)."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            hub.url,
            headers={"Origin": "http://evil.example", "Content-Type": "application/json"},
            content=b"{}",
        )
    assert response.status_code == 403


async def test_broken_and_silent_connectors_block_neither_start_up_nor_the_others(tmp_path: Path) -> None:
    """Issue 2 §4: a missing binary is 'down' with a reason; a silent server stays 'connecting'; others serve.
    Issue 9 §8: until the silent one's first attempt ends, the hub says it is starting."""
    silent = ["-c", "import time; time.sleep(600)"]
    config = write_config(
        tmp_path,
        {
            "broken": fault_connector("broken", command="/nonexistent/mcp-server"),
            "silent": fault_connector("silent", args=silent),
            "faults": fault_connector(),
        },
    )
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        async with Client(running.url, mode="2026-07-28") as client:
            assert text_of(await client.call_tool("faults__echo", {"text": "ok"})) == "ok"
        with anyio.fail_after(10):
            down = await running.hub.pool.get("broken").wait_for(Health.DOWN)
        assert down.detail
        report = running.hub.health_report()
    assert report["status"] == "starting"
    assert report["connectors"]["silent"]["state"] == "connecting"


async def test_stdio_children_are_ended_when_the_hub_stops(tmp_path: Path) -> None:
    """Issue 2 §4: no orphaned downstream processes after shutdown."""
    config = write_config(tmp_path, {"faults": fault_connector()})
    async with running_hub(config) as running:
        await running.wait_ready()
        async with Client(running.url, mode="2026-07-28") as client:
            pid = int(text_of(await client.call_tool("faults__pid", {})))
        os.kill(pid, 0)  # alive while the hub runs
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
