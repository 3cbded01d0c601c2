"""The lean forwarding path of 2026-07-28 connectors (issue 12 §1): Streamable HTTP and stdio, through a real hub.

The downstream is the fault fixture (`tests/fixtures/fault_server.py`), over Streamable HTTP and over stdio, pinned to
2026-07-28; a third connector reaches the same HTTP server through the SDK client (`lean_forwarding = false`), so
each behaviour is compared with the SDK path's. Log entries, questions and JSON-RPC errors of a 2026-07-28 HTTP
downstream are covered through the lean path by tests/test_transparency.py and tests/test_questions.py
(`fs-modern`), downstream OAuth end to end by tests/authz/test_downstream_oauth.py (`hub-b`), `Mcp-Param-*` with
base64 values by tests/conformance/test_through_hub.py. Threats: T25 (hangs, size), T32 (oversized answers), T01
(the connector's own token). Mandated by the spec where the docstring says so; otherwise the hub's choice.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcp_hub.domain import ConnectorId, Health
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.errors import ConnectorUnavailableError
from tests.authz.conftest import make_agent
from tests.authz.test_downstream_oauth import MODERN_LIST, client_b_revokes, connector_oauth
from tests.conftest import RunningHub, connector_toml, fault_connector, running_hub, write_config
from tests.test_http1 import NO_STREAM, lean_client
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

LEAN = ["lean-http", "lean-stdio"]
"""The connectors on the lean path; `sdk-http` is the same HTTP downstream on the SDK client's."""


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
    modern: dict[str, Any] = {"protocol": "2026-07-28", "call_timeout_seconds": 3}
    config = write_config(
        tmp_path_factory.mktemp("lean"),
        {
            "lean-http": connector_toml(id="lean-http", transport="http", url=url, **modern),
            "sdk-http": connector_toml(id="sdk-http", transport="http", url=url, lean_forwarding=False, **modern),
            "lean-stdio": fault_connector("lean-stdio", **modern),
        },
    )
    with http_fault_server(port):
        async with running_hub(config) as running:
            await running.wait_ready()
            yield running


async def test_2026_connectors_forward_on_the_lean_path_unless_told_not_to(hub: RunningHub) -> None:
    """Our choice: the lean path for every 2026-07-28 HTTP or stdio connector; `lean_forwarding = false` opts out."""
    assert hub.hub.pool.get("lean-http").forwards_lean
    assert hub.hub.pool.get("lean-stdio").forwards_lean
    assert not hub.hub.pool.get("sdk-http").forwards_lean


@pytest.mark.parametrize("connector", [*LEAN, "sdk-http"])
async def test_progress_on_the_requests_stream_reaches_the_caller_before_the_result(
    hub: RunningHub, connector: str
) -> None:
    """Spec 2026-07-28 (progress): notifications with the request's progress token reach the caller, in order,
    before the result (over HTTP: an SSE answer)."""
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(hub.url, mode="2026-07-28") as client:
        result = await client.call_tool(f"{connector}__slow", {"seconds": 0.2}, progress_callback=on_progress)
    assert text_of(result) == "done"
    assert seen
    assert seen == sorted(seen)


async def test_the_downstream_sees_the_eras_headers_and_mcp_param_headers(hub: RunningHub) -> None:
    """Spec 2026-07-28 (transports, custom headers): `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, and an
    `x-mcp-header` argument mirrored into `Mcp-Param-Region`; the same headers as the SDK client sends."""
    async with Client(hub.url, mode="2026-07-28") as client:
        lean = json.loads(text_of(await client.call_tool("lean-http__headers", {"region": "eu-west-1"})))
        sdk = json.loads(text_of(await client.call_tool("sdk-http__headers", {"region": "eu-west-1"})))
    for seen in (lean, sdk):
        assert seen["mcp-protocol-version"] == "2026-07-28"
        assert seen["mcp-method"] == "tools/call"
        assert seen["mcp-name"] == "headers"
        assert seen["mcp-param-region"] == "eu-west-1"
    assert lean["accept"] == sdk["accept"]


@pytest.mark.parametrize("connector", [*LEAN, "sdk-http"])
async def test_the_downstream_gets_the_meta_the_sdk_client_stamps(hub: RunningHub, connector: str) -> None:
    """Spec 2026-07-28 (every request carries its protocol version and the client's capabilities in `_meta`):
    the caller's capabilities, not the hub's; the hub's client information."""
    async with Client(hub.url, mode="2026-07-28") as client:
        meta = json.loads(text_of(await client.call_tool(f"{connector}__meta", {})))
    assert meta[types.PROTOCOL_VERSION_META_KEY] == "2026-07-28"
    assert types.CLIENT_CAPABILITIES_META_KEY in meta
    assert meta["io.modelcontextprotocol/clientInfo"]["name"] == "mcp-hub"


@pytest.mark.parametrize("connector", [*LEAN, "sdk-http"])
async def test_a_tool_error_and_a_json_rpc_error_come_back_as_on_the_sdk_path(hub: RunningHub, connector: str) -> None:
    """Spec 2026-07-28 (tools: an `isError` result is a result; a JSON-RPC error keeps its code, named with the
    connector), T32: a downstream's -32000 "Connection closed" is its own error, not the connection closing;
    neither counts against the circuit breaker."""
    async with Client(hub.url, mode="2026-07-28") as client:
        failed = await client.call_tool(f"{connector}__fail", {})
        with pytest.raises(MCPError) as rejected:
            await client.call_tool(f"{connector}__rpc_error", {"code": -32000, "message": "Connection closed"})
        echoed = await client.call_tool(f"{connector}__echo", {"text": "still connected"})
    assert (failed.is_error, text_of(failed)) == (True, "it failed")
    assert (rejected.value.error.code, rejected.value.error.message) == (-32000, f"{connector}: Connection closed")
    assert text_of(echoed) == "still connected"
    assert hub.hub.pool.get(connector).breaker.report()["consecutive_failures"] == 0
    assert hub.hub.pool.get(connector).health.state == Health.READY


@pytest.mark.parametrize("connector", [*LEAN, "sdk-http"])
async def test_cancelling_a_call_cancels_it_downstream(hub: RunningHub, connector: str) -> None:
    """Spec 2026-07-28 (cancellation): over HTTP the hub closes the request's stream, over stdio it sends
    `notifications/cancelled`; either way the downstream's handler is cancelled."""
    key = f"cancel-{connector}"
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(hub.url, mode="2026-07-28") as client:
        async with anyio.create_task_group() as tasks:

            async def slow_call() -> None:
                await client.call_tool(f"{connector}__slow", {"seconds": 60, "key": key}, progress_callback=on_progress)

            tasks.start_soon(slow_call)
            with anyio.fail_after(10):
                await started.wait()
            tasks.cancel_scope.cancel()
        with anyio.fail_after(10):
            confirmation = await client.call_tool(f"{connector}__wait_cancelled", {"key": key})
    assert text_of(confirmation) == "cancelled"


@pytest.mark.parametrize("connector", [*LEAN, "sdk-http"])
async def test_a_hung_downstream_hits_the_call_timeout(hub: RunningHub, connector: str) -> None:
    """T25, our choice: the connector's call timeout fails the call with its name; the connection stays ready."""
    async with Client(hub.url, mode="2026-07-28") as client:
        with anyio.fail_after(10):
            hung = await client.call_tool(f"{connector}__hang", {})
        echoed = await client.call_tool(f"{connector}__echo", {"text": "still here"})
    assert hung.is_error
    assert "did not answer within 3 s" in text_of(hung)
    assert text_of(echoed) == "still here"


@pytest.mark.parametrize("connector", ["lean-http", "sdk-http"])
async def test_an_oversized_answer_fails_that_call_only(hub: RunningHub, connector: str) -> None:
    """T32, our choice: an answer over `max_message_bytes` (4 MiB) is not read; the call fails naming the cap,
    the connection keeps serving (stdio's cut line resets the connection: tests/test_downstream_protection.py)."""
    async with Client(hub.url, mode="2026-07-28") as client:
        big = await client.call_tool(f"{connector}__big", {"megabytes": 5})
        echoed = await client.call_tool(f"{connector}__echo", {"text": "after"})
    assert big.is_error
    assert "max_message_bytes" in text_of(big)
    assert text_of(echoed) == "after"


@pytest.mark.parametrize("connector", LEAN)
async def test_a_downstream_lost_mid_call_fails_the_call_and_is_reconnected(tmp_path: Path, connector: str) -> None:
    """T25, issue 2 §4: the process dies during a call; the call fails at once naming the connector, the
    connection is marked lost, and the hub reconnects when the downstream is back (its own hub: the server is
    killed). The SDK path is not compared: its CONNECTION_CLOSED races the transport's end and may come back as
    the downstream's own -32000."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    modern: dict[str, Any] = {"protocol": "2026-07-28", "call_timeout_seconds": 10}
    connectors = {
        "lean-http": connector_toml(id="lean-http", transport="http", url=url, **modern),
        "sdk-http": connector_toml(id="sdk-http", transport="http", url=url, lean_forwarding=False, **modern),
        "lean-stdio": fault_connector("lean-stdio", **modern),
    }
    config = write_config(tmp_path, {connector: connectors[connector]})
    with http_fault_server(port) as server:
        async with running_hub(config) as running:
            await running.wait_ready()
            connection = running.hub.pool.get(connector)
            before = connection.connections_made
            async with Client(running.url, mode="2026-07-28") as client:
                with anyio.fail_after(8):  # inside the 10 s call timeout: a lost connection is not a hang
                    crashed = await client.call_tool(f"{connector}__crash", {})
                if connector != "lean-stdio":  # the HTTP server is gone: start it again
                    server.kill()
                    server.wait()
                    with http_fault_server(port), anyio.fail_after(30):
                        await connection.wait_connections(before + 1)
                        echoed = await client.call_tool(f"{connector}__echo", {"text": "back"})
                else:
                    with anyio.fail_after(30):
                        await connection.wait_connections(before + 1)
                    echoed = await client.call_tool(f"{connector}__echo", {"text": "back"})
    assert crashed.is_error
    assert f"'{connector}'" in text_of(crashed)
    assert text_of(echoed) == "back"


async def test_the_lean_client_renews_its_token_once_after_a_401(tmp_path: Path) -> None:
    """RFC 6750 §3.1 / issue 3 §6, our choice (as the SDK path's auth flow): a revoked connector token is answered
    401; the lean client renews it once and retries, so the call succeeds with the new token."""
    config_b = write_config(tmp_path, {"faults": fault_connector()}, "[auth]\ndecision_cache_seconds = 0\n", auth=True)
    async with running_hub(config_b) as hub_b:
        await hub_b.wait_ready("faults")
        credentials = await make_agent(hub_b, "hub-a", "tool:faults__*")
        lost: list[str] = []

        async with (
            ClientCredentialsAuth(
                ConnectorId("hub-b"), connector_oauth(hub_b, credentials), hub_b.url, timeout=10
            ) as auth,
            lean_client(
                "hub-b", hub_b.url, lost, auth=auth, max_message_bytes=4 * 1024 * 1024, connect_timeout=10
            ) as lean,
        ):
            headers = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"}
            first = await lean.request(MODERN_LIST, headers, NO_STREAM)
            token = await auth.bearer()
            revoked = await client_b_revokes(hub_b, credentials, token)
            second = await lean.request(MODERN_LIST, headers, NO_STREAM)
            renewed = await auth.bearer()
    assert revoked.status_code == 200
    assert "faults__echo" in {tool["name"] for tool in first["tools"]}
    assert second["tools"] == first["tools"]
    assert renewed != token
    assert lost == []


async def test_a_refused_connection_is_the_connector_unavailable(tmp_path: Path) -> None:
    """T25, our choice: nothing listening is `ConnectorUnavailableError` at once, and the owner is told."""
    lost: list[str] = []

    async with lean_client("nobody", f"http://127.0.0.1:{free_port()}/mcp", lost) as lean:
        with pytest.raises(ConnectorUnavailableError) as refused, anyio.fail_after(5):
            await lean.request(MODERN_LIST, {}, NO_STREAM)
    assert "'nobody' is unreachable" in str(refused.value)
    assert len(lost) == 1
