"""Live connectors (issue 11 §5): connector files added, changed, disabled, broken and removed while the hub runs.

Chosen by us (the issue mandates the outcome, not the mechanism): the hub polls `connectors/` and also reloads on
SIGHUP and on `mcp-hub connectors reload`; a changed connector's calls in flight finish on its old connection while
new calls go to the new one; a bad file is reported and the previous definition keeps serving. Real hub, real
downstreams (the fault fixture, mcp-server-time), SDK clients of both eras. Threats: T25 (one connector's change
never hurts the others), T30 (a new connector's secrets are scrubbed like the others').
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from anyio.abc import Process
from mcp import Client
from mcp.client.session import IncomingMessage

from mcp_hub.domain import ConnectorId, Health
from tests.conftest import RunningHub, fault_connector, running_hub, stop_process, time_connector, write_config
from tests.test_cli import MCP_HUB, free_port, hub_env, mcp_hub, migrate, wait_until_ready

pytestmark = pytest.mark.anyio


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def put(directory: Path, name: str, text: str) -> None:
    """Write a connector file as an editor or a deployment does: whole, by renaming over the old one."""
    staged = directory / f".{name}.staged"
    staged.write_text(text)
    staged.replace(directory / name)


async def eventually(condition: Callable[[], bool], *, within_seconds: float = 20) -> None:
    """A bounded wait on an observable condition the hub offers no event for (its reload is a background poll)."""
    with anyio.fail_after(within_seconds):
        while not condition():  # noqa: ASYNC110 - state without an event of its own (calls running, a file's reload)
            await anyio.sleep(0.02)


@dataclass
class Heard:
    """How many tools/list_changed a client of either era has heard."""

    count: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)

    def hear(self) -> None:
        self.count += 1
        self.changed.set()
        self.changed = anyio.Event()

    async def more_than(self, count: int) -> None:
        with anyio.fail_after(20):
            while self.count <= count:
                await self.changed.wait()


def tool_names(hub: RunningHub, connector: str) -> set[str]:
    return {tool.public_name for tool in hub.hub.catalog.tools.of_connector(connector)}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    config = write_config(
        tmp_path,
        {"faults": fault_connector(call_timeout_seconds=120), "time": time_connector()},
        extra="[hub]\nconnectors_poll_seconds = 0.05\n",
    )
    async with running_hub(config) as running:
        await running.wait_ready()
        yield running


async def test_connector_files_added_changed_broken_disabled_and_removed_apply_without_dropping_anything(
    live: RunningHub, tmp_path: Path
) -> None:
    """Issue 11 §5 and its proof: while a 2025-11-25 session holds a call in flight on `faults`, a file for `extra`
    is added (its tools appear; both eras told), changed (reconnected with the new definition; its own call in
    flight finishes on the old connection), broken (reported; the previous definition keeps serving), disabled and
    removed (its tools go; both eras told). The session, its call and the other connectors are untouched."""
    directory = tmp_path / "connectors"
    pool, watcher = live.hub.pool, live.hub.watcher
    faults, time = pool.get("faults"), pool.get("time")
    legacy_heard, modern_heard = Heard(), Heard()

    async def on_message(message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            legacy_heard.hear()

    async with (
        Client(live.url, mode="legacy", message_handler=on_message) as legacy,
        Client(live.url, mode="2026-07-28") as modern,
        modern.listen(tools_list_changed=True) as subscription,
        anyio.create_task_group() as tasks,
    ):

        async def hear_modern() -> None:
            async for _ in subscription:
                modern_heard.hear()

        tasks.start_soon(hear_modern)
        await legacy.list_tools()  # the legacy session is established and known to the notifier
        in_flight: dict[str, str] = {}

        async def held_call() -> None:  # in flight until the test cancels a `slow` call with the same key
            in_flight["faults"] = text_of(await legacy.call_tool("faults__wait_cancelled", {"key": "live"}))

        tasks.start_soon(held_call)
        await eventually(lambda: faults.calls_report()["running"] == 1)

        # Added: the new connector connects, its tools appear, clients of both eras are told.
        legacy_before, modern_before = legacy_heard.count, modern_heard.count
        put(directory, "extra.toml", fault_connector("extra", description="first"))
        await eventually(lambda: "extra__echo" in tool_names(live, "extra"))
        await legacy_heard.more_than(legacy_before)
        await modern_heard.more_than(modern_before)
        assert "extra__echo" in {tool.name for tool in (await legacy.list_tools()).tools}
        assert "extra__echo" in {tool.name for tool in (await modern.list_tools()).tools}
        first = pool.get("extra")
        # The catalog takes the new tools a moment before the connection calls itself ready: await that event.
        await first.wait_for(Health.READY)
        first_pid = text_of(await legacy.call_tool("extra__pid", {}))
        async with live.client() as http:
            assert (await http.get(f"{live.base_url}/healthz")).json()["connectors"]["extra"]["state"] == "ready"

        # Changed: a new connection with the new definition; the old one's call in flight finishes there.
        async def slow_on_extra() -> None:
            in_flight["extra"] = text_of(await modern.call_tool("extra__slow", {"seconds": 2}))

        tasks.start_soon(slow_on_extra)
        await eventually(lambda: first.calls_report()["running"] == 1)
        put(directory, "extra.toml", fault_connector("extra", description="second", call_timeout_seconds=7))
        await eventually(lambda: pool.connections.get(ConnectorId("extra")) not in (None, first))
        second = pool.get("extra")
        assert second.spec.description == "second"
        assert first.retired is not None
        assert first.calls_report()["running"] == 1  # the change did not cut the call
        await second.wait_for(Health.READY)
        assert text_of(await legacy.call_tool("extra__pid", {})) != first_pid
        await eventually(lambda: "extra" in in_flight)
        assert in_flight["extra"] == "done"

        # Broken: reported in /healthz, the previous definition keeps serving.
        put(directory, "extra.toml", 'id = "extra"\ntransport = "carrier-pigeon"\n')
        await eventually(lambda: "extra.toml" in watcher.last.errors)
        assert pool.get("extra") is second
        assert text_of(await legacy.call_tool("extra__echo", {"text": "still"})) == "still"
        async with live.client() as http:
            health = (await http.get(f"{live.base_url}/healthz")).json()
        assert "transport" in health["connectors"]["extra"]["file_error"]
        assert health["connectors"]["extra"]["state"] == "ready"
        assert "extra.toml" in health["connector_files"]["errors"]

        # Disabled: its tools go, clients are told, /healthz says disabled.
        legacy_before, modern_before = legacy_heard.count, modern_heard.count
        put(directory, "extra.toml", fault_connector("extra", enabled=False))
        await eventually(lambda: not tool_names(live, "extra"))
        await legacy_heard.more_than(legacy_before)
        await modern_heard.more_than(modern_before)
        assert not any(tool.name.startswith("extra__") for tool in (await legacy.list_tools()).tools)
        assert (await pool.get("extra").wait_for(Health.DISABLED)).state is Health.DISABLED

        # Removed: gone from the pool and /healthz.
        put(directory, "extra.toml", fault_connector("extra"))
        await eventually(lambda: "extra__echo" in tool_names(live, "extra"))
        legacy_before, modern_before = legacy_heard.count, modern_heard.count
        (directory / "extra.toml").unlink()
        await eventually(lambda: ConnectorId("extra") not in pool.connections and not tool_names(live, "extra"))
        await legacy_heard.more_than(legacy_before)
        await modern_heard.more_than(modern_before)
        assert not any(tool.name.startswith("extra__") for tool in (await modern.list_tools()).tools)
        async with live.client() as http:
            assert "extra" not in (await http.get(f"{live.base_url}/healthz")).json()["connectors"]

        # Through it all: the other connectors kept their connections, the session and its call are alive.
        assert (pool.get("faults"), pool.get("time")) == (faults, time)
        assert faults.connections_made == 1
        assert time.connections_made == 1
        assert "faults" not in in_flight
        with anyio.move_on_after(0.5):  # the releasing call is cancelled at once, once the downstream has it
            await modern.call_tool("faults__slow", {"seconds": 60, "key": "live"})
        await eventually(lambda: "faults" in in_flight)
        assert in_flight["faults"] == "cancelled"
        assert text_of(await legacy.call_tool("time__get_current_time", {"timezone": "UTC"}))
        tasks.cancel_scope.cancel()


async def test_a_bad_new_file_is_reported_and_changes_nothing(live: RunningHub, tmp_path: Path) -> None:
    """Issue 11 §5: a bad file for a connector never served is reported and nothing starts; the start-up checks
    apply (here: a credential written in clear instead of a ${VAR} reference)."""
    put(
        tmp_path / "connectors",
        "leaky.toml",
        fault_connector("leaky", env={"API_TOKEN": "sk-live-in-clear"}),
    )
    await eventually(lambda: "leaky.toml" in live.hub.watcher.last.errors)
    assert "leaky" not in live.hub.pool.connections
    assert "reference" in live.hub.watcher.last.errors["leaky.toml"]
    assert "sk-live-in-clear" not in json.dumps(live.hub.health_report())


# --- `mcp-hub serve`: SIGHUP, `connectors reload`, `connectors list` in every state ---------------------------


@dataclass
class Served:
    config: Path
    directory: Path
    base_url: str
    process: Process


async def healthz(base_url: str) -> dict[str, Any]:
    async with httpx2.AsyncClient(timeout=2.0) as http:
        return (await http.get(f"{base_url}/healthz")).json()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncGenerator[Served]:
    """`mcp-hub serve` with the directory poll off: only SIGHUP and `connectors reload` reload."""
    port = free_port()
    config = write_config(
        tmp_path, {"faults": fault_connector()}, extra=f"[hub]\nlisten_port = {port}\nconnectors_poll_seconds = 0\n"
    )
    await migrate(config)
    with (tmp_path / "serve.log").open("wb") as log:
        process = await anyio.open_process(
            [str(MCP_HUB), "serve", "--config", str(config), "--port", str(port)], stdout=log, stderr=log, env=hub_env()
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            with anyio.fail_after(30):
                await wait_until_ready(base_url, process, "faults")
            yield Served(config=config, directory=tmp_path / "connectors", base_url=base_url, process=process)
        finally:
            await stop_process(process)


async def list_json(config: Path) -> dict[str, Any]:
    done = await mcp_hub(config, "connectors", "list", "--json")
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


async def test_sighup_and_connectors_reload_reach_the_serving_hub_and_list_tells_the_truth(served: Served) -> None:
    """Issue 11 §5: with the directory poll off, a new file is shown as not loaded; SIGHUP applies it; `connectors
    reload` applies a change and reports it; a bad file makes `reload` exit 1 naming it while the old definition
    serves; once the hub stops, `connectors list` shows each connector's last known state with its time, and a file
    no hub has served as never seen."""
    put(served.directory, "clock.toml", time_connector("clock"))
    listed = {row["id"]: row for row in (await list_json(served.config))["connectors"]}
    assert listed["clock"]["state"] == "not-loaded"
    assert "next reload" in listed["clock"]["detail"]

    os.kill(served.process.pid, signal.SIGHUP)
    with anyio.fail_after(30):
        await wait_until_ready(served.base_url, served.process, "clock")
    assert (await healthz(served.base_url))["connector_files"]["trigger"] == "SIGHUP"

    put(served.directory, "clock.toml", time_connector("clock", description="changed"))
    done = await mcp_hub(served.config, "connectors", "reload")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().strip() == "reloaded: added none; changed clock; removed none"
    with anyio.fail_after(30):
        await wait_until_ready(served.base_url, served.process, "clock")

    put(served.directory, "faults.toml", "this is not TOML =\n")
    done = await mcp_hub(served.config, "connectors", "reload")
    assert done.returncode == 1
    assert "not applied: faults.toml" in done.stdout.decode()
    health = await healthz(served.base_url)
    assert health["connectors"]["faults"]["state"] == "ready"
    listed = {row["id"]: row for row in (await list_json(served.config))["connectors"]}
    assert listed["faults"]["state"] == "ready"
    assert "bad file" in listed["faults"]["detail"]

    served.process.terminate()
    with anyio.fail_after(15):
        await served.process.wait()
    put(served.directory, "faults.toml", fault_connector())
    put(served.directory, "ghost.toml", fault_connector("ghost"))
    offline = await list_json(served.config)
    assert offline["source"].startswith("the hub is not running: last known state")
    rows = {row["id"]: row for row in offline["connectors"]}
    assert rows["clock"]["state"] == "last-known:ready"
    assert rows["faults"]["state"] == "last-known:ready"
    assert rows["clock"]["since"] is not None
    assert rows["ghost"]["state"] == "never-seen"
    text = (await mcp_hub(served.config, "connectors", "list")).stdout.decode()
    assert "last-known:ready" in text
    assert "never-seen" in text


async def test_connectors_reload_without_a_running_hub_says_so(tmp_path: Path) -> None:
    """Issue 11 §5: `connectors reload` needs a running hub and says when there is none (exit 1)."""
    config = write_config(tmp_path, {"faults": fault_connector()}, extra=f"[hub]\nlisten_port = {free_port()}\n")
    done = await mcp_hub(config, "connectors", "reload")
    assert done.returncode == 1
    assert "no hub answers" in done.stderr.decode()
