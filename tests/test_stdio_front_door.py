"""`mcp-hub stdio`: the same federated catalog for a local client that launches the hub as a subprocess.

Spec (2026-07-28 and 2025-11-25, basic/transports#stdio): the server's stdout carries only MCP messages,
one JSON-RPC message per line; it may log to stderr. Each test runs the real console script.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, TextIO

import anyio
import mcp_types as types
import pytest
from anyio.streams.text import TextReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from mcp_hub.config.settings import load_settings
from mcp_hub.db.engine import upgrade
from tests.conftest import fault_connector, write_config

pytestmark = pytest.mark.anyio

Era = Literal["legacy", "2026-07-28"]
ERAS: list[Era] = ["legacy", "2026-07-28"]
MCP_HUB = Path(sys.executable).parent / "mcp-hub"
INVALID_PARAMS = -32602


@pytest.fixture(scope="module")
async def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated hub configuration with the fault fixture as its one connector."""
    path = write_config(tmp_path_factory.mktemp("stdio"), {"faults": fault_connector()})
    await upgrade(load_settings(path).database.url)
    return path


class StderrWatch:
    """The hub's stderr, read line by line as it arrives, so a test can await a log line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._waiting: dict[str, anyio.Event] = {}

    async def drain(self, stream: TextIO) -> None:
        wrapped = anyio.wrap_file(stream)
        async for line in wrapped:
            self.lines.append(line)
            for text, event in self._waiting.items():
                if text in line:
                    event.set()

    async def wait_for(self, text: str) -> None:
        if any(text in line for line in self.lines):
            return
        event = self._waiting.setdefault(text, anyio.Event())
        await event.wait()


@asynccontextmanager
async def stdio_hub(config: Path, era: Era) -> AsyncGenerator[tuple[Client, StderrWatch, list[Any]]]:
    """An SDK client of `era` connected to `mcp-hub stdio`; yields it, the hub's stderr, and bad stdout lines."""
    params = StdioServerParameters(command=str(MCP_HUB), args=["stdio", "--config", str(config)])
    not_protocol: list[Any] = []

    async def on_message(message: IncomingMessage) -> None:
        # A stdout line that is not JSON-RPC reaches the client as an exception value.
        if isinstance(message, Exception):
            not_protocol.append(message)

    watch = StderrWatch()
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as errread, os.fdopen(write_fd, "w") as errlog:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch.drain, errread)
            try:
                async with Client(stdio_client(params, errlog=errlog), mode=era, message_handler=on_message) as client:
                    errlog.close()  # the hub holds its own copy: the pipe ends when the hub exits
                    yield client, watch, not_protocol
            finally:
                errlog.close()


@pytest.mark.parametrize("era", ERAS)
async def test_a_stdio_client_of_either_era_lists_and_calls_the_federated_tools(config: Path, era: Era) -> None:
    """Issue 2 §6: the stdio front door serves the same catalog as HTTP; the client's first request picks the era."""
    with anyio.fail_after(40):
        async with stdio_hub(config, era) as (client, stderr, not_protocol):
            # The hub serves at once and connectors join as they come up; it logs when one is ready.
            await stderr.wait_for("downstream ready")
            names = [tool.name for tool in (await client.list_tools()).tools]
            result = await client.call_tool("faults__echo", {"text": "over stdio"})
            negotiated = client.protocol_version
    assert {"faults__echo", "faults__pid"} <= set(names)
    assert names == sorted(names)
    assert result.is_error is False
    assert result.content == [types.TextContent(type="text", text="over stdio")]
    assert negotiated == ("2025-11-25" if era == "legacy" else "2026-07-28")
    assert not_protocol == []
    assert any("hub started" in line for line in stderr.lines)


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_tool_over_stdio_is_an_invalid_params_error(config: Path, era: Era) -> None:
    """Spec (server/tools, both eras): an unknown tool is JSON-RPC error -32602, not a tool result."""
    with anyio.fail_after(30):
        async with stdio_hub(config, era) as (client, _, _):
            with pytest.raises(MCPError) as caught:
                await client.call_tool("faults__no_such_tool", {})
    assert caught.value.error.code == INVALID_PARAMS
    assert "faults__no_such_tool" in caught.value.error.message


async def test_nothing_but_json_rpc_appears_on_stdout_and_logs_go_to_stderr(config: Path, tmp_path: Path) -> None:
    """Spec (basic/transports#stdio): the server MUST NOT write to stdout anything that is not an MCP message."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    list_tools: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    stderr_file = tmp_path / "stderr.log"
    with anyio.fail_after(30), stderr_file.open("w") as stderr:
        process = await anyio.open_process([str(MCP_HUB), "stdio", "--config", str(config)], stderr=stderr)
        assert process.stdin is not None
        assert process.stdout is not None
        async with process:
            lines = TextReceiveStream(process.stdout)
            received = ""

            async def next_response(request_id: int) -> None:
                nonlocal received
                while f'"id":{request_id}' not in received.replace(" ", ""):
                    received += await lines.receive()

            await process.stdin.send((json.dumps(initialize) + "\n").encode())
            await next_response(1)
            await process.stdin.send((json.dumps(initialized) + "\n" + json.dumps(list_tools) + "\n").encode())
            await next_response(2)
            # Closing stdin is how a stdio client ends the session; the hub must then exit by itself.
            await process.stdin.aclose()
            async for rest in lines:
                received += rest
            returncode = await process.wait()

    messages = [json.loads(line) for line in received.splitlines()]
    responses = {message["id"]: message for message in messages if "id" in message}
    assert all(message["jsonrpc"] == "2.0" for message in messages)
    assert responses[1]["result"]["serverInfo"]["name"] == "mcp-hub"
    assert "tools" in responses[2]["result"]
    assert returncode == 0
    assert "hub started" in stderr_file.read_text()
