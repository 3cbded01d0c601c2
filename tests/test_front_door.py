"""Bad input at the front door gets a clear error and loses nothing (issue 2 §6; threats T14, T26)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import pytest

from tests.conftest import RunningHub, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

MODERN_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
}
ENVELOPE: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def request(method: str, params: dict[str, Any], *, meta: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": method,
        "params": {**params, "_meta": meta or ENVELOPE},
    }
    return json.dumps(body).encode()


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    config = write_config(
        tmp_path_factory.mktemp("front"), {"faults": fault_connector()}, "[hub]\nmax_request_body_bytes = 10000\n"
    )
    async with running_hub(config) as running:
        await running.wait_ready()
        yield running


@pytest.fixture
async def http() -> AsyncGenerator[httpx2.AsyncClient]:
    async with httpx2.AsyncClient(timeout=10) as client:
        yield client


async def test_malformed_json_is_a_parse_error(hub: RunningHub, http: httpx2.AsyncClient) -> None:
    """T26, JSON-RPC 2.0: unparseable input is -32700."""
    response = await http.post(hub.url, headers=MODERN_HEADERS, content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32700


async def test_an_oversized_body_is_refused_before_it_is_parsed(hub: RunningHub, http: httpx2.AsyncClient) -> None:
    """T26, our choice: hub.max_request_body_bytes caps every request (413)."""
    body = request("tools/call", {"name": "faults__echo", "arguments": {"text": "x" * 20_000}})
    response = await http.post(hub.url, headers=MODERN_HEADERS, content=body)
    assert response.status_code == 413


async def test_a_header_naming_another_tool_than_the_body_is_rejected(
    hub: RunningHub, http: httpx2.AsyncClient
) -> None:
    """T14, spec 2026-07-28: Mcp-Name must match the body; mismatch is -32020 with HTTP 400."""
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": "faults__echo"}
    body = request("tools/call", {"name": "faults__crash", "arguments": {}})
    response = await http.post(hub.url, headers=headers, content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    assert hub.hub.pool.get("faults").connections_made == 1  # the crash tool never ran


async def test_a_raw_modern_call_with_matching_headers_is_answered_with_the_hubs_identity(
    hub: RunningHub, http: httpx2.AsyncClient
) -> None:
    """Spec 2026-07-28: results carry resultType and the server's own serverInfo stamp."""
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": "faults__echo"}
    response = await http.post(
        hub.url, headers=headers, content=request("tools/call", {"name": "faults__echo", "arguments": {"text": "ok"}})
    )
    result = response.json()["result"]
    assert result["resultType"] == "complete"
    assert result["content"] == [{"type": "text", "text": "ok"}]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcp-hub"


async def test_a_modern_request_without_client_capabilities_is_rejected(
    hub: RunningHub, http: httpx2.AsyncClient
) -> None:
    """Spec 2026-07-28: clientCapabilities is required in every request's _meta."""
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/list"}
    response = await http.post(hub.url, headers=headers, content=request("tools/list", {}, meta=meta))
    assert response.status_code == 400
    assert "clientCapabilities" in response.json()["error"]["message"]


async def test_an_unknown_legacy_session_is_not_found(hub: RunningHub, http: httpx2.AsyncClient) -> None:
    """Spec 2025-11-25: a request with an unknown Mcp-Session-Id gets 404."""
    headers = {**MODERN_HEADERS, "MCP-Protocol-Version": "2025-11-25", "Mcp-Session-Id": "not-a-session"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    response = await http.post(hub.url, headers=headers, content=body)
    assert response.status_code == 404


async def test_a_foreign_host_header_is_refused(hub: RunningHub, http: httpx2.AsyncClient) -> None:
    """T12, spec: DNS-rebinding protection validates Host."""
    headers = {**MODERN_HEADERS, "Host": "attacker.example:8420", "Mcp-Method": "tools/list"}
    response = await http.post(hub.url, headers=headers, content=request("tools/list", {}))
    assert response.status_code == 421
