"""Downstream credentials (issue 3 §6): the hub authenticates to an OAuth-protected downstream by itself.

The downstream here is a second, real mcp-hub with auth enabled (its own authorization server, its own
agent for the first hub): hub A's connector gets client-credentials tokens from hub B and renews them;
the agent talking to hub A never sees them, and its own token never reaches hub B (T01).
"""

from __future__ import annotations

import json
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.downstream.health import Health
from tests.authz.conftest import bearer, client_credentials_token, make_agent
from tests.conftest import RunningHub, connector_toml, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio


def upstream_connector(hub_b: RunningHub, client_id: str) -> str:
    return connector_toml(
        id="hub-b",
        transport="http",
        protocol="2026-07-28",
        url=hub_b.url,
        oauth={
            "token_url": f"{hub_b.base_url}/oauth/token",
            "client_id": client_id,
            "client_secret": "${HUB_B_CLIENT_SECRET}",
            "scope": "tool:faults__*",
        },
    )


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


async def test_a_connector_gets_its_own_token_from_the_downstreams_authorization_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 3 §6, T01: hub A calls hub B with a token B issued to A's connector, never with the agent's."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    config_b = write_config(tmp_path / "b", {"faults": fault_connector()}, auth=True)
    async with running_hub(config_b) as hub_b:
        await hub_b.wait_ready("faults")
        connector_identity = await make_agent(hub_b, "hub-a", "tool:faults__*")
        monkeypatch.setenv("HUB_B_CLIENT_SECRET", connector_identity.client_secret)
        config_a = write_config(
            tmp_path / "a", {"hub-b": upstream_connector(hub_b, connector_identity.client_id)}, auth=True
        )
        async with running_hub(config_a) as hub_a:
            await hub_a.wait_ready("hub-b")
            agent = await make_agent(hub_a, "worker", "tool:hub-b__*")
            agent_token = await client_credentials_token(hub_a, agent)
            async with (
                bearer(agent_token) as http,
                Client(streamable_http_client(hub_a.url, http_client=http), mode="2026-07-28") as client,
            ):
                names = [tool.name for tool in (await client.list_tools()).tools]
                echoed = await client.call_tool("hub-b__faults__echo", {"text": "through two hubs"})
                seen_headers = json.loads(text_of(await client.call_tool("hub-b__faults__meta", {})))
            await hub_b.hub.audit.flush()
            audit_b = await hub_b.hub.store.recent_audit(limit=5)
            report_a = json.dumps(hub_a.hub.health_report())
    assert "hub-b__faults__echo" in names
    assert text_of(echoed) == "through two hubs"
    assert {row.client for row in audit_b} == {"agent:hub-a"}
    assert agent_token not in json.dumps(seen_headers)
    assert connector_identity.client_secret not in report_a


async def test_a_refused_connector_secret_leaves_the_connector_down_with_the_reason_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 3 §6 (our choice): a wrong downstream secret is a clear connector error; the secret is not shown."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    config_b = write_config(tmp_path / "b", {"faults": fault_connector()}, auth=True)
    wrong_secret = "mcphs_wrong-secret-canary-7e2f"
    async with running_hub(config_b) as hub_b:
        connector_identity = await make_agent(hub_b, "hub-a", "tool:faults__*")
        monkeypatch.setenv("HUB_B_CLIENT_SECRET", wrong_secret)
        config_a = write_config(
            tmp_path / "a", {"hub-b": upstream_connector(hub_b, connector_identity.client_id)}, auth=True
        )
        async with running_hub(config_a) as hub_a:
            state = await hub_a.hub.pool.get("hub-b").wait_for(Health.DOWN)
            report = json.dumps(hub_a.hub.health_report())
    assert state.detail is not None
    assert "invalid_client" in state.detail
    assert wrong_secret not in report
