"""The resource server in front of /mcp: tokens required, grants decide lists and calls (issue 3 §4, §5)."""

from __future__ import annotations

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from tests.authz.conftest import bearer, client_credentials_token, make_agent
from tests.conftest import RunningHub

pytestmark = pytest.mark.anyio


async def test_a_request_without_a_token_gets_401_pointing_at_the_resource_metadata(auth_hub: RunningHub) -> None:
    """MCP authorization spec + RFC 9728 §5.1: the challenge names the metadata URL and a scope."""
    async with httpx2.AsyncClient() as client:
        response = await client.post(auth_hub.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        metadata = await client.get(f"{auth_hub.base_url}/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert f'resource_metadata="{auth_hub.base_url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert 'scope="' in challenge
    assert metadata.json()["resource"] == auth_hub.url
    assert metadata.json()["authorization_servers"] == [auth_hub.base_url]


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_two_agents_see_only_their_granted_tools_and_are_refused_outside_them(
    auth_hub_on_each_database: RunningHub, era: str
) -> None:
    """Issue 3 §5 (T10, T27): tools/list shows exactly what tools/call allows, per agent."""
    echo_only = await make_agent(auth_hub_on_each_database, "echo-only", "tool:faults__echo")
    everything = await make_agent(auth_hub_on_each_database, "everything", "tool:faults__*")
    narrow_token = await client_credentials_token(auth_hub_on_each_database, echo_only)
    wide_token = await client_credentials_token(auth_hub_on_each_database, everything)

    async with (
        bearer(narrow_token) as http,
        Client(streamable_http_client(auth_hub_on_each_database.url, http_client=http), mode=era) as narrow,
    ):
        narrow_names = [tool.name for tool in (await narrow.list_tools()).tools]
        echoed = await narrow.call_tool("faults__echo", {"text": "allowed"})
        with pytest.raises(MCPError) as refused:
            await narrow.call_tool("faults__pid", {})
    async with (
        bearer(wide_token) as http,
        Client(streamable_http_client(auth_hub_on_each_database.url, http_client=http), mode=era) as wide,
    ):
        wide_names = [tool.name for tool in (await wide.list_tools()).tools]

    assert narrow_names == ["faults__echo"]
    assert {"faults__echo", "faults__pid"} <= set(wide_names)
    assert echoed.is_error is False
    assert "tool:faults__pid" in refused.value.error.message


async def test_asking_for_the_challenges_scope_gets_the_agents_grants(auth_hub: RunningHub) -> None:
    """RFC 6749 §3.3: scope = requested ∩ granted; `tool:*` (what the 401 suggests) yields the agent's grants."""
    agent = await make_agent(auth_hub, "echoer", "tool:faults__echo")
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{auth_hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": "tool:*"},
            auth=(agent.client_id, agent.client_secret),
        )
        refused = await client.post(
            f"{auth_hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": "tool:other__*"},
            auth=(agent.client_id, agent.client_secret),
        )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "tool:faults__echo"
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
