"""Streamable HTTP downstreams of both eras: forwarding, and surviving the server going away (T25)."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncGenerator, Generator
from contextlib import contextmanager

import anyio
import mcp_types as types
import pytest
from mcp import Client

from mcp_hub.domain import Health
from tests.conftest import FAULT_SERVER, RunningHub, connector_toml, running_hub, write_config

pytestmark = pytest.mark.anyio


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def http_fault_server(port: int) -> Generator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, str(FAULT_SERVER), "--http", str(port)])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory, port: int) -> AsyncGenerator[RunningHub]:
    url = f"http://127.0.0.1:{port}/mcp"
    config = write_config(
        tmp_path_factory.mktemp("http"),
        {
            "web": connector_toml(id="web", transport="http", url=url, protocol="auto", call_timeout_seconds=5),
            "web-legacy": connector_toml(id="web-legacy", transport="http", url=url, protocol="legacy"),
        },
    )
    async with running_hub(config) as running:
        yield running


async def test_an_http_downstream_is_reached_in_the_era_it_negotiates(hub: RunningHub, port: int) -> None:
    """Issue 2 §4/§7: `auto` settles on 2026-07-28 with a dual-era server; `legacy` pins 2025-11-25."""
    with http_fault_server(port):
        await hub.wait_ready(within_seconds=30)
        health = hub.hub.pool.health()
        assert health["web"].era == "2026-07-28"
        assert health["web-legacy"].era == "2025-11-25"
        for era in ("legacy", "2026-07-28"):
            async with Client(hub.url, mode=era) as client:
                modern = await client.call_tool("web__echo", {"text": f"{era} via modern"})
                legacy = await client.call_tool("web-legacy__echo", {"text": f"{era} via legacy"})
            assert text_of(modern) == f"{era} via modern"
            assert text_of(legacy) == f"{era} via legacy"


async def test_a_vanished_http_downstream_gives_a_prompt_error_and_is_reconnected_when_it_returns(
    hub: RunningHub, port: int
) -> None:
    """T25, issue 2 §4: calls fail fast with the connector named; the hub reconnects when the server is back."""
    connection = hub.hub.pool.get("web")
    with http_fault_server(port):
        await hub.wait_ready(within_seconds=30)
    # The server process is gone now.
    async with Client(hub.url, mode="2026-07-28") as client:
        with anyio.fail_after(4):  # inside the connector's 5 s call timeout: a refused connection is not a hang
            failed = await client.call_tool("web__echo", {"text": "anyone?"})
        assert failed.is_error
        assert "'web'" in text_of(failed)
        with anyio.fail_after(20):
            await connection.wait_for(Health.DOWN, Health.CONNECTING, Health.DEGRADED)
        connections_before = connection.connections_made
        with http_fault_server(port):
            with anyio.fail_after(30):
                await connection.wait_connections(connections_before + 1)
            answered = await client.call_tool("web__echo", {"text": "back"})
    assert text_of(answered) == "back"
