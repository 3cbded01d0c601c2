"""Virtual servers, `/mcp/v/<name>` (issue 11 §6), and the search meta-tools (§7), on a real hub with real SDK
clients of both eras and auth on: a curated subset under its renames, tokens audience-bound to a virtual server
(RFC 8707, threat T01), its RFC 9728 document, grants inside it, list_changed per virtual server, and
`search_tools` / `call_tool` that never find or call what the caller's grants exclude (threat T10)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ToolsListChanged

import mcp_hub
from mcp_hub.authz.decisions import Access
from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.domain import AuditOutcome
from tests.authz.conftest import AgentCredentials, bearer, make_agent
from tests.conftest import RunningHub, fault_connector, modern_call, running_hub, unique, write_config

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
META = {"search_tools", "call_tool"}

SUPPORT = VirtualServerSpec(
    name="support",
    tools=["faults__echo", "faults__add_tool", "faults__grown*", "other__pid"],
    rename={"faults__echo": "say", "other__pid": "process_id", "faults__add_tool": "add_tool"},
    descriptions={"faults__echo": "Say it back."},
    meta_tools="add",
)
OPS = VirtualServerSpec(name="ops", tools=["other__*"], meta_tools="only")


def write_virtual(directory: Path, *specs: VirtualServerSpec) -> None:
    (directory / "virtual").mkdir(exist_ok=True)
    for spec in specs:
        (directory / "virtual" / f"{spec.name}.toml").write_text(spec.to_toml())


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    directory = tmp_path_factory.mktemp("virtual")
    write_virtual(directory, SUPPORT, OPS)
    connectors = {"faults": fault_connector(), "other": fault_connector("other")}
    config = write_config(directory, connectors, '[catalog]\nmeta_tools = "add"\n', auth=True)
    async with running_hub(config) as running:
        await running.wait_ready("faults", "other")
        yield running


def virtual(hub: RunningHub, name: str) -> str:
    return f"{hub.url}/v/{name}"


async def token_for(hub: RunningHub, agent: AgentCredentials, resource: str) -> httpx2.Response:
    form = {"grant_type": "client_credentials", "resource": resource}
    async with hub.client() as client:
        return await client.post(f"{hub.base_url}/oauth/token", data=form, auth=(agent.client_id, agent.client_secret))


async def token(hub: RunningHub, resource: str, *grants: str) -> str:
    agent = await make_agent(hub, unique("virtual"), *grants)
    response = await token_for(hub, agent, resource)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.mark.parametrize("era", ERAS)
async def test_a_virtual_server_lists_only_its_tools_under_its_renames(hub: RunningHub, era: str) -> None:
    """Issue 11 §6: the curated subset, renamed, with its description override; a call by the new name reaches
    the downstream tool, and the audit trail names the public name."""
    access = await token(hub, virtual(hub, "support"), "tool:*")
    async with (
        bearer(access) as http,
        Client(streamable_http_client(virtual(hub, "support"), http_client=http), mode=era) as client,
    ):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        said = await client.call_tool("say", {"text": f"hello {era}"})
        pid = await client.call_tool("process_id", {})
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("faults__echo", {"text": "by its public name"})
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(50)

    assert set(tools) == {"say", "add_tool", "process_id"} | META
    assert tools["say"].description == "Say it back."
    assert text_of(said) == f"hello {era}"
    assert text_of(pid).isdigit()
    assert unknown.value.error.code == types.INVALID_PARAMS
    assert any(event.public_name == "faults__echo" and event.outcome is AuditOutcome.OK for event in events)


async def test_grants_decide_inside_a_virtual_server_by_public_names(hub: RunningHub) -> None:
    """Issue 11 §6: a grant of `tool:faults__echo` shows `say` alone; `process_id` (other__pid) is refused with
    403 naming the public scope."""
    access = await token(hub, virtual(hub, "support"), "tool:faults__echo")
    url = virtual(hub, "support")
    async with bearer(access) as http, Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        tools = {tool.name for tool in (await c.list_tools()).tools}
    refused = await modern_call(url, "process_id", {}, token=access)

    assert tools == {"say"} | META
    assert refused.status_code == 403
    assert 'scope="tool:other__pid"' in refused.headers["www-authenticate"]


async def test_a_virtual_server_token_is_accepted_there_and_nowhere_else(hub: RunningHub) -> None:
    """Issue 11 §6, RFC 8707 (threat T01): a token for /mcp/v/support works there and is 401 on /mcp, on another
    virtual server and on a connector's profile. Our choice: a hub-wide token also works on a virtual server (its
    grants decide, as on /mcp/s/)."""
    scoped = await token(hub, virtual(hub, "support"), "tool:*")
    hub_wide = await token(hub, hub.url, "tool:*")
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    ping: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/list",
    }
    statuses: dict[tuple[str, str], int] = {}
    async with hub.client(timeout=30) as http:
        for label, access in (("scoped", scoped), ("hub", hub_wide)):
            for where in ("/v/support", "", "/v/ops", "/s/faults"):
                response = await http.post(
                    hub.url + where, json=ping, headers={**headers, "Authorization": f"Bearer {access}"}
                )
                statuses[label, where] = response.status_code
                if response.status_code == 401:
                    assert 'error="invalid_token"' in response.headers["www-authenticate"]

    assert statuses == {
        ("scoped", "/v/support"): 200,
        ("scoped", ""): 401,
        ("scoped", "/v/ops"): 401,
        ("scoped", "/s/faults"): 401,
        ("hub", "/v/support"): 200,
        ("hub", ""): 200,
        ("hub", "/v/ops"): 200,
        ("hub", "/s/faults"): 200,
    }


async def test_a_virtual_server_publishes_its_own_protected_resource_metadata(hub: RunningHub) -> None:
    """RFC 9728 §3.1 and §5.1: the 401 of a virtual server points at its own document, which names its URL."""
    async with hub.client() as http:
        refused = await http.post(virtual(hub, "ops"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        document = (await http.get(f"{hub.base_url}/.well-known/oauth-protected-resource/mcp/v/ops")).json()
    assert (
        f'resource_metadata="{hub.base_url}/.well-known/oauth-protected-resource/mcp/v/ops"'
        in (refused.headers["www-authenticate"])
    )
    assert document["resource"] == virtual(hub, "ops")
    assert document["authorization_servers"] == [hub.base_url]


async def test_the_token_endpoint_refuses_a_resource_that_is_no_virtual_server(hub: RunningHub) -> None:
    """RFC 8707 §2: `invalid_target` for a URL the hub does not serve."""
    agent = await make_agent(hub, unique("virtual"), "tool:*")
    response = await token_for(hub, agent, virtual(hub, "nope"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_an_unknown_virtual_server_is_not_found(hub: RunningHub) -> None:
    access = await token(hub, hub.url, "tool:*")
    async with bearer(access) as http:
        response = await http.post(virtual(hub, "nope"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 404


@pytest.mark.parametrize("era", ERAS)
async def test_search_finds_only_what_the_caller_may_call_and_call_tool_honours_grants(
    hub: RunningHub, era: str
) -> None:
    """Issue 11 §7 on /mcp (`[catalog] meta_tools = "add"`): with `tool:faults__*` granted, a search for the
    process id finds `faults__pid` and never `other__pid`; `call_tool` runs a granted tool (audited under its own
    name) and refuses the other as a direct call would."""
    access = await token(hub, hub.url, "tool:faults__*")
    async with (
        bearer(access) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode=era) as client,
    ):
        listed = [tool.name for tool in (await client.list_tools()).tools]
        found = await client.call_tool("search_tools", {"query": "process id"})
        detailed = await client.call_tool("search_tools", {"query": "echo text", "limit": 1, "schemas": True})
        called = await client.call_tool("call_tool", {"name": "faults__echo", "arguments": {"text": "via meta"}})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("call_tool", {"name": "other__pid", "arguments": {}})
    names = [hit["name"] for hit in json.loads(text_of(found))]
    (echo,) = json.loads(text_of(detailed))

    assert listed[:2] == ["search_tools", "call_tool"]
    assert names[0] == "faults__pid"
    assert all(name.startswith("faults__") for name in names)
    assert echo["name"] == "faults__echo"
    assert echo["inputSchema"]["properties"]["text"] == {"type": "string"}
    assert text_of(called) == "via meta"
    assert refused.value.error.code == -32003
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(50)
    assert any(event.public_name == "other__pid" and event.outcome is AuditOutcome.FORBIDDEN for event in events)


async def test_meta_tools_only_lists_the_pair_and_searches_under_the_servers_names(hub: RunningHub) -> None:
    """Issue 11 §7: `meta_tools = "only"` lists two tools; the others are found by search and called through
    `call_tool` (or directly, by name)."""
    access = await token(hub, virtual(hub, "ops"), "tool:*")
    url = virtual(hub, "ops")
    async with bearer(access) as http, Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as c:
        listed = {tool.name for tool in (await c.list_tools()).tools}
        found = await c.call_tool("search_tools", {"query": "process id"})
        called = await c.call_tool("call_tool", {"name": "other__pid"})
        direct = await c.call_tool("other__pid", {})
        echo = await c.call_tool("search_tools", {"query": "echo"})
    assert listed == META
    assert json.loads(text_of(found))[0]["name"] == "other__pid"
    assert text_of(called) == text_of(direct)
    assert json.loads(text_of(echo))[0]["name"] == "other__echo"


@pytest.mark.parametrize("era", ERAS)
async def test_a_virtual_server_announces_changes_to_what_it_shows(hub: RunningHub, era: str) -> None:
    """Issue 11 §6: a tool added downstream that the server's globs pick (`faults__grown*`) is announced to its
    clients in either era (list_changed on a legacy session, a listen stream on 2026-07-28) and listed."""
    access = await token(hub, virtual(hub, "support"), "tool:*")
    url = virtual(hub, "support")
    grown = unique("grown").replace("-", "_")
    notified = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            notified.set()

    async with (
        bearer(access) as http,
        Client(streamable_http_client(url, http_client=http), mode=era, message_handler=on_message) as client,
    ):
        if era == "legacy":
            await client.list_tools()
            await client.call_tool("add_tool", {"name": grown})
            with anyio.fail_after(10):
                await notified.wait()
        else:
            async with client.listen(tools_list_changed=True) as subscription:
                await client.call_tool("add_tool", {"name": grown})
                with anyio.fail_after(10):
                    event = await subscription.__anext__()
            assert isinstance(event, ToolsListChanged)
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert f"faults__{grown}" in names


async def test_the_cached_json_of_a_list_is_what_the_sdk_path_answers_on_every_server(hub: RunningHub) -> None:
    """Issue 12 §1-§2: a server's `Lists.page_json` (what a fast front end writes as the JSON-RPC `result`) equals
    the result the SDK path sends over HTTP, on /mcp and on virtual servers with `meta_tools` "add" and "only"."""
    grant = "tool:*"
    access = Access(grants=(grant,), token_scopes=None)
    targets = [
        (hub.url, hub.hub.server, hub.hub.catalog.tools),
        (virtual(hub, "support"), hub.hub.virtual_servers["support"], hub.hub.virtual_views["support"].tools),
        (virtual(hub, "ops"), hub.hub.virtual_servers["ops"], hub.hub.virtual_views["ops"].tools),
    ]
    for url, server, section in targets:
        bearer_token = await token(hub, url, grant)
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/list",
            "Authorization": f"Bearer {bearer_token}",
        }
        meta: dict[str, Any] = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 7, "method": "tools/list", "params": {"_meta": meta}}
        async with httpx2.AsyncClient(timeout=30) as http:
            response = await http.post(url, headers=headers, json=body)
        assert response.status_code == 200, response.text
        assert server.lists is not None
        cached = await server.lists.page_json(section, "tools", access, None, lead=server.tools_lead)
        answered = response.json()["result"]
        # The SDK stamps every 2026-07-28 result with the server's identity: a fast front end must add it too.
        server_info = {"name": "mcp-hub", "version": mcp_hub.__version__}
        assert answered.pop("_meta") == {"io.modelcontextprotocol/serverInfo": server_info}
        assert json.loads(cached) == answered, url
        assert server.tools_lead is not None
        assert [tool["name"] for tool in json.loads(cached)["tools"]][:2] == ["search_tools", "call_tool"]
