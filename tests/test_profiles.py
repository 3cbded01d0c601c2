"""A connector's profile, `/mcp/s/<connector-id>` (issue 9 §10): one connector's catalog under its own names,
with the hub's auth, grants, approvals and audit (grants and the audit trail keep using public names)."""

from __future__ import annotations

import warnings
from collections.abc import AsyncGenerator

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

from mcp_hub.domain import AuditOutcome
from tests.approvals.holding import agent_token
from tests.authz.conftest import bearer
from tests.conftest import RunningHub, fault_connector, modern_call, running_hub, unique, write_config
from tests.features import CONNECTORS, features_connectors, features_over_http, free_port

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    port = free_port()
    with features_over_http(port):
        connectors = {**features_connectors(port), "faults": fault_connector()}
        async with running_hub(write_config(tmp_path_factory.mktemp("profiles"), connectors)) as running:
            await running.wait_ready(*CONNECTORS, "faults")
            yield running


def profile(hub: RunningHub, connector: str) -> str:
    return f"{hub.url}/s/{connector}"


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_profile_shows_one_connector_under_its_own_names(hub: RunningHub, era: str, connector: str) -> None:
    """Issue 9 §10: tools, prompts, resources and templates of that connector only, unprefixed, and the URIs in
    results as the downstream gave them."""
    async with Client(profile(hub, connector), mode=era) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        prompts = {prompt.name for prompt in (await client.list_prompts()).prompts}
        resources = {str(resource.uri) for resource in (await client.list_resources()).resources}
        templates = {item.uri_template for item in (await client.list_resource_templates()).resource_templates}
        echoed = await client.call_tool("echo", {"text": "plain"})
        link, embedded = (await client.call_tool("link", {"id": "5"})).content
        greeting = await client.get_prompt("greet", {"name": "ada"})
        read = await client.read_resource("notes://5")
        names = await client.complete(
            types.PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "b"}
        )

    assert {"echo", "link", "ask"} <= tools
    assert all("__" not in name for name in tools)
    assert {"greet", "farewell"} <= prompts
    assert {"notes://1", "file:///readme.txt"} <= resources
    assert {"notes://{id}", "docs://{+path}"} <= templates
    assert text_of(echoed) == "plain"
    assert isinstance(link, types.ResourceLink)
    assert isinstance(embedded, types.EmbeddedResource)
    assert (str(link.uri), str(embedded.resource.uri)) == ("notes://5", "notes://5")
    assert isinstance(greeting.messages[1].content, types.EmbeddedResource)
    assert str(greeting.messages[1].content.resource.uri) == "notes://1"
    assert str(read.contents[0].uri) == "notes://5"
    assert names.completion.values == ["bob"]


@pytest.mark.parametrize("name", ["faults__echo", "fs-legacy__echo", "nope"])
async def test_a_profile_reaches_nothing_of_other_connectors(hub: RunningHub, name: str) -> None:
    """Issue 9 §10 (our choice): a public name of another connector is just an unknown tool on a profile."""
    async with Client(profile(hub, "fs-stdio"), mode="2026-07-28") as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool(name, {"text": "x"})
    assert raised.value.error.code == types.INVALID_PARAMS


async def test_an_unknown_profile_is_not_found(hub: RunningHub) -> None:
    """Our choice: only configured connectors have a profile."""
    async with httpx2.AsyncClient() as http:
        response = await http.post(profile(hub, "nope"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 404


async def test_a_profile_session_hears_of_updates_under_the_downstream_uri(hub: RunningHub) -> None:
    """Issue 9 §1 and §10: a subscription made on a profile names the resource as the downstream does, and so does
    its update."""
    updates: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            arrived.set()

    async with Client(profile(hub, "fs-legacy"), mode="legacy", message_handler=on_message) as client:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource("notes://2")  # pyright: ignore[reportDeprecated]
        await client.call_tool("touch", {"uri": "notes://2"})
        with anyio.fail_after(10):
            await arrived.wait()

    assert updates == ["notes://2"]


# --- with auth ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def auth_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    port = free_port()
    with features_over_http(port):
        config = write_config(tmp_path_factory.mktemp("profiles-auth"), features_connectors(port), auth=True)
        async with running_hub(config) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


async def test_grants_over_public_names_decide_on_a_profile_too(auth_hub: RunningHub) -> None:
    """Issue 9 §10 (same auth, scopes, audit): `tool:fs-stdio__echo` shows `echo` alone on the profile; `link` is
    refused with 403 insufficient_scope naming the public scope; the audit trail names public names."""
    token = await agent_token(auth_hub, unique("profiled"), "tool:fs-stdio__echo")
    url = profile(auth_hub, "fs-stdio")
    async with (
        bearer(token) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        tools = {tool.name for tool in (await client.list_tools()).tools}
        echoed = await client.call_tool("echo", {"text": "granted"})
    refused = await modern_call(url, "link", {"id": "1"}, token=token)
    await auth_hub.hub.audit.flush()
    events = await auth_hub.hub.stores.audit.recent_audit(20)

    assert tools == {"echo"}
    assert text_of(echoed) == "granted"
    assert refused.status_code == 403
    assert 'scope="tool:fs-stdio__link"' in refused.headers["www-authenticate"]
    assert any(event.public_name == "fs-stdio__echo" and event.outcome is AuditOutcome.OK for event in events)
    assert any(event.public_name == "fs-stdio__link" and event.outcome is AuditOutcome.FORBIDDEN for event in events)


async def test_a_completion_outside_the_grants_is_refused_and_audited_like_a_call(auth_hub: RunningHub) -> None:
    """Our choice (T10: every method obeys the one decision): completing a prompt the token may not get is
    refused naming its scope, and the refusal is an audit row, as for tools, prompts and resources."""
    token = await agent_token(auth_hub, unique("completer"), "tool:fs-stdio__echo")
    url = profile(auth_hub, "fs-stdio")
    async with (
        bearer(token) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        with pytest.raises(MCPError) as refused:
            await client.complete(
                types.PromptReference(type="ref/prompt", name="greet"), {"name": "name", "value": "b"}
            )
    await auth_hub.hub.audit.flush()
    events = await auth_hub.hub.stores.audit.recent_audit(20)

    assert refused.value.error.data == {"error": "insufficient_scope", "scope": "prompt:fs-stdio__greet"}
    assert any(
        event.method == "completion/complete"
        and event.public_name == "fs-stdio__greet"
        and event.outcome is AuditOutcome.FORBIDDEN
        for event in events
    )
