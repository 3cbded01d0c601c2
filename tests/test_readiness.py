"""Ready means ready (issue 9 §8): a list is never answered from a half-built catalog as if it were whole.

A "gated" connector runs the fault fixture server only once a gate file exists: until the test opens the gate,
the connector's first attempt is not over, and the hub is starting.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from mcp_hub.config.settings import load_settings
from mcp_hub.db.engine import upgrade
from tests.conftest import FAULT_SERVER, PYTHON, RunningHub, connector_toml, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

GATED = """
import os, runpy, sys, time
gate, marker, server = sys.argv[1:4]
open(marker, "w").close()
while not os.path.exists(gate):
    time.sleep(0.02)
sys.argv = [server]
runpy.run_path(server, run_name="__main__")
"""


def gated_connector(directory: Path) -> tuple[str, Path, Path]:
    """A stdio connector that starts the fault server once `gate` exists; it creates `marker` when it waits."""
    gate, marker, script = directory / "gate", directory / "waiting", directory / "gated.py"
    script.write_text(GATED)
    toml = connector_toml(
        id="slow",
        transport="stdio",
        protocol="legacy",
        command=PYTHON,
        args=[str(script), str(gate), str(marker), str(FAULT_SERVER)],
    )
    return toml, gate, marker


@asynccontextmanager
async def starting_hub(directory: Path, *, connect_seconds: float = 20) -> AsyncGenerator[tuple[RunningHub, Path]]:
    toml, gate, _ = gated_connector(directory)
    config = write_config(directory, {"slow": toml, "faults": fault_connector()})
    config.write_text(config.read_text().replace("connect_seconds = 20", f"connect_seconds = {connect_seconds}"))
    async with running_hub(config) as hub:
        yield hub, gate


async def modern_tools_list(url: str) -> dict[str, Any]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/list",
    }
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    async with httpx2.AsyncClient(timeout=30) as http:
        result: dict[str, Any] = (await http.post(url, headers=headers, json=body)).json()["result"]
    return result


async def test_while_a_connector_makes_its_first_attempt_lists_wait_and_the_hub_is_not_ready(tmp_path: Path) -> None:
    """Issue 9 §8: `/healthz` says `starting`, `/readyz` is 503; a first `tools/list` of either era waits for the
    slow connector and then carries its tools and the usual `ttlMs`; afterwards the hub is ready."""
    async with starting_hub(tmp_path) as (hub, gate), httpx2.AsyncClient() as http:
        health = (await http.get(f"{hub.base_url}/healthz")).json()
        not_ready = await http.get(f"{hub.base_url}/readyz")
        lists: dict[str, Any] = {}
        answered_before_the_gate: dict[str, Any] = {}

        async def legacy_list() -> None:
            async with Client(hub.url, mode="legacy") as client:
                lists["legacy"] = await client.list_tools()

        async def modern_list() -> None:
            lists["modern"] = await modern_tools_list(hub.url)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(legacy_list)
            tasks.start_soon(modern_list)
            with anyio.fail_after(30):
                await hub.hub.readiness.until_waiting(2)  # both requests are in and waiting; nothing answered them

            answered_before_the_gate.update(lists)
            gate.touch()
        ready = await http.get(f"{hub.base_url}/readyz")
        health_after = (await http.get(f"{hub.base_url}/healthz")).json()

    assert health["status"] == "starting"
    assert not_ready.status_code == 503
    assert not_ready.json() == {"status": "starting"}
    assert answered_before_the_gate == {}
    legacy: types.ListToolsResult = lists["legacy"]
    assert "slow__echo" in {tool.name for tool in legacy.tools}
    assert "slow__echo" in {tool["name"] for tool in lists["modern"]["tools"]}
    assert lists["modern"]["ttlMs"] == 60_000
    assert ready.status_code == 200
    assert health_after["status"] == "ok"


async def test_past_the_start_bound_a_partial_list_is_not_cacheable(tmp_path: Path) -> None:
    """Issue 9 §8: lists wait at most `timeouts.connect_seconds`; then they answer with what there is and
    `ttlMs: 0`, so no client keeps the partial list."""
    async with starting_hub(tmp_path, connect_seconds=2) as (hub, _gate):
        listed = await modern_tools_list(hub.url)

    names = {tool["name"] for tool in listed["tools"]}
    assert "slow__echo" not in names
    assert listed["ttlMs"] == 0


async def test_the_stdio_front_door_waits_for_the_first_attempts_too(tmp_path: Path) -> None:
    """Issue 9 §8 for `mcp-hub stdio`: the first `tools/list` either waits for the slow connector or is not
    cacheable; with the gate opened as the list goes out, it waits."""
    toml, gate, marker = gated_connector(tmp_path)
    config = write_config(tmp_path, {"slow": toml, "faults": fault_connector()})
    await upgrade(load_settings(config).database.url)
    command = StdioServerParameters(command=sys.executable, args=["-m", "mcp_hub", "stdio", "--config", str(config)])
    result: list[types.ListToolsResult] = []
    async with Client(command, mode="2026-07-28") as client:
        with anyio.fail_after(30):
            while not marker.exists():  # noqa: ASYNC110 - another process; nothing to await
                await anyio.sleep(0.02)
        async with anyio.create_task_group() as tasks:

            async def list_tools() -> None:
                result.append(await client.list_tools())

            tasks.start_soon(list_tools)
            gate.touch()

    (listed,) = result
    names = {tool.name for tool in listed.tools}
    assert "slow__echo" in names
    assert listed.ttl_ms == 60_000
