"""The hub against real third-party npm peers: server-everything downstream, the MCP Inspector upstream.

server-everything (the MCP reference server) speaks only the 2025-11-25 era, over stdio, Streamable
HTTP and the legacy HTTP+SSE transport; the hub must federate it over each and serve its tools to
clients of both eras. The Inspector CLI is an independent client implementation (TypeScript SDK v2),
so a call it completes through the hub is interoperability evidence our own SDK cannot give.

One hub per module federates server-everything three times, once per transport (starting a Node
server costs seconds); each test waits for the connector it uses, so a broken transport fails only
its own tests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
from mcp import Client
from mcp_types import TextContent

from tests.conftest import RunningHub, connector_toml, running_hub, write_config
from tests.npm_peers import (
    ProtocolEra,
    everything_over_http,
    everything_stdio_command,
    require_npm_peers,
    run_inspector,
)

pytestmark = [pytest.mark.anyio, pytest.mark.node]

Transport = Literal["stdio", "http", "sse"]
ClientEra = Literal["legacy", "2026-07-28"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "http", "sse")
CLIENT_ERAS: tuple[ClientEra, ...] = ("legacy", "2026-07-28")
CONNECTOR_IDS: dict[Transport, str] = {"stdio": "everything", "http": "everything-http", "sse": "everything-sse"}
EVERYTHING_TOOLS = {"echo", "get-sum", "get-tiny-image", "trigger-long-running-operation"}
"""Tools server-everything always registers (some others depend on the client's capabilities)."""
READY_TIMEOUT = 20


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped so that the module's hub (an async fixture) can be module-scoped too."""
    return "asyncio"


@pytest.fixture(scope="module")
async def hub(anyio_backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub with one server-everything connector per transport (not yet awaited: see `ready_hub`)."""
    require_npm_peers()
    directory = tmp_path_factory.mktemp("npm-peers")
    command, args = everything_stdio_command()
    common: dict[str, Any] = {"protocol": "legacy", "call_timeout_seconds": 20}
    async with (
        everything_over_http("streamableHttp", directory) as http_url,
        everything_over_http("sse", directory) as sse_url,
    ):
        connectors: dict[Transport, str] = {
            "stdio": connector_toml(id="everything", transport="stdio", command=command, args=args, **common),
            "http": connector_toml(id="everything-http", transport="http", url=http_url, **common),
            "sse": connector_toml(id="everything-sse", transport="sse", url=sse_url, **common),
        }
        config = write_config(directory, {CONNECTOR_IDS[transport]: text for transport, text in connectors.items()})
        async with running_hub(config) as running:
            yield running


@pytest.fixture
def transport() -> Transport:
    return "stdio"


@pytest.fixture
async def ready_hub(hub: RunningHub, transport: Transport) -> RunningHub:
    """The module's hub once the connector for `transport` is ready.

    The HTTP servers are started without a readiness probe: the connector retries with backoff until
    the server listens, and becoming ready is the event awaited here.
    """
    with anyio.fail_after(READY_TIMEOUT):
        await hub.wait_ready(CONNECTOR_IDS[transport])
    return hub


def text_of(content: list[Any]) -> str:
    return "".join(block.text for block in content if isinstance(block, TextContent))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_everything_tools_are_offered_under_the_connector_id_prefix(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Our choice: downstream tool `t` of connector `c` is offered as `c__t`, whatever the transport."""
    connector_id = CONNECTOR_IDS[transport]
    catalog = {
        tool.downstream_name: tool.public_name for tool in ready_hub.hub.catalog.tools.of_connector(connector_id)
    }
    async with Client(ready_hub.url, mode="legacy") as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
    assert catalog.keys() >= EVERYTHING_TOOLS
    assert all(public == f"{connector_id}__{name}" for name, public in catalog.items())
    assert {name for name in listed if name.startswith(f"{connector_id}__")} == set(catalog.values())


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_echo_of_a_legacy_only_downstream_answers_clients_of_both_eras(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Our choice (the hub's purpose): a 2025-11-25-only server's tool is callable from either era."""
    echo = f"{CONNECTOR_IDS[transport]}__echo"
    async with Client(ready_hub.url, mode=era) as client:
        assert echo in {tool.name for tool in (await client.list_tools()).tools}
        result = await client.call_tool(echo, {"message": f"hello over {transport} from {era}"})
    assert not result.is_error, text_of(result.content)
    assert text_of(result.content) == f"Echo: hello over {transport} from {era}"


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_progress_of_a_downstream_tool_reaches_the_calling_client(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec-mandated (basic/utilities/progress): a request carrying a progressToken may receive
    notifications/progress for that token; the hub relays the downstream's progress to its caller."""
    updates: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total))

    tool = f"{CONNECTOR_IDS[transport]}__trigger-long-running-operation"
    async with Client(ready_hub.url, mode=era) as client:
        result = await client.call_tool(tool, {"duration": 0.3, "steps": 3}, progress_callback=on_progress)
    assert not result.is_error, text_of(result.content)
    assert "Steps: 3" in text_of(result.content)
    assert updates == [(1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_the_inspector_cli_lists_and_calls_tools_through_the_hub(
    ready_hub: RunningHub, era: ProtocolEra, tmp_path: Path
) -> None:
    """Our choice (interoperability): an independent client, the MCP Inspector CLI, completes tools/list
    and tools/call through the hub in the era it is told to speak. `--protocol-era modern` pins
    2026-07-28 with no fallback (against server-everything itself it fails: "did not offer pinned
    protocol version"), so the modern run also shows the hub serving that era to a third-party client."""
    listing = await run_inspector(ready_hub.url, era, tmp_path, "--method", "tools/list")
    called = await run_inspector(
        ready_hub.url,
        era,
        tmp_path,
        "--method",
        "tools/call",
        "--tool-name",
        "everything__echo",
        "--tool-arg",
        f"message=inspected in {era}",
    )
    names = {tool["name"] for tool in listing["result"]["tools"]}
    assert {f"everything__{name}" for name in EVERYTHING_TOOLS} <= names
    assert called["result"].get("isError") in (None, False)
    assert called["result"]["content"] == [{"type": "text", "text": f"Echo: inspected in {era}"}]
