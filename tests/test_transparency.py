"""Everything MCP offers passes through the hub (issue 9): prompts, resources, templates, completions, logging,
error codes, capabilities, in both client eras, from downstreams of both eras over stdio and Streamable HTTP.

The downstream is `tests/fixtures/features_server.py` three times: over stdio (2025-11-25; one shared stream, so
messages are attributed to the only request in flight), over HTTP pinned to 2025-11-25 (messages tagged with
their request) and over HTTP at 2026-07-28 (per-request capabilities and log level).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import PromptsListChanged, ResourcesListChanged, ResourceUpdated

from tests.conftest import RunningHub, running_hub, unique, write_config
from tests.features import CONNECTORS, features_connectors, features_over_http, free_port

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    port = free_port()
    with features_over_http(port):
        config = write_config(tmp_path_factory.mktemp("transparency"), features_connectors(port))
        async with running_hub(config) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


# --- prompts ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_prompts_are_listed_under_public_names_and_got_from_their_connector(hub: RunningHub, era: str) -> None:
    """Issue 9 §2 (spec: server/prompts): `<connector>__<prompt>`, arguments passed on, embedded resources in
    the messages come back under public URIs."""
    async with Client(hub.url, mode=era) as client:
        names = {prompt.name for prompt in (await client.list_prompts()).prompts}
        got = {connector: await client.get_prompt(f"{connector}__greet", {"name": "ada"}) for connector in CONNECTORS}

    assert {f"{connector}__{name}" for connector in CONNECTORS for name in ("greet", "farewell")} <= names
    for connector, result in got.items():
        greeting, embedded = result.messages
        assert isinstance(greeting.content, types.TextContent)
        assert greeting.content.text == "Hello, ada"
        assert isinstance(embedded.content, types.EmbeddedResource)
        assert str(embedded.content.resource.uri) == f"mcp-hub://{connector}/notes://1"


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_prompt_is_invalid_params(hub: RunningHub, era: str) -> None:
    """Spec (prompts, error handling): an invalid prompt name is -32602; the hub never asks a downstream."""
    async with Client(hub.url, mode=era) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("fs-stdio__nope")
    assert raised.value.error.code == types.INVALID_PARAMS


# --- resources ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_resources_and_templates_are_listed_under_public_uris(hub: RunningHub, era: str) -> None:
    """Issue 9 §1: `mcp-hub://<connector>/<downstream URI>`, so two connectors' `notes://1` never collide."""
    async with Client(hub.url, mode=era) as client:
        resources = {str(resource.uri) for resource in (await client.list_resources()).resources}
        templates = {template.uri_template for template in (await client.list_resource_templates()).resource_templates}

    for connector in CONNECTORS:
        assert {f"mcp-hub://{connector}/notes://1", f"mcp-hub://{connector}/file:///readme.txt"} <= resources
        assert {f"mcp-hub://{connector}/notes://{{id}}", f"mcp-hub://{connector}/docs://{{+path}}"} <= templates


@pytest.mark.parametrize("era", ERAS)
async def test_listed_resources_and_template_expansions_are_read_from_their_connector(
    hub: RunningHub, era: str
) -> None:
    """Issue 9 §1: a public URI maps back to the downstream's; an RFC 6570 expansion of a public template (here
    `{+path}` with slashes) reaches the connector as the expansion of its own template."""
    async with Client(hub.url, mode=era) as client:
        listed = await client.read_resource("mcp-hub://fs-modern/notes://1")
        expanded = await client.read_resource("mcp-hub://fs-legacy/docs://guide/intro.md")
        from_stdio = await client.read_resource("mcp-hub://fs-stdio/notes://42")

    for result, downstream in [(listed, "notes://1"), (expanded, "docs://guide/intro.md"), (from_stdio, "notes://42")]:
        (contents,) = result.contents
        assert isinstance(contents, types.TextResourceContents)
        assert contents.text == f"the text of {downstream}"
    assert str(listed.contents[0].uri) == "mcp-hub://fs-modern/notes://1"
    assert str(expanded.contents[0].uri) == "mcp-hub://fs-legacy/docs://guide/intro.md"


@pytest.mark.parametrize(
    "uri",
    [
        "notes://1",
        "mcp-hub://nope/notes://1",
        "mcp-hub://fs-stdio/secret://key",
        "mcp-hub://fs-stdio/",
        "mcp-hub://FS-STDIO/notes://1",
        "mcp-hub:/fs-stdio/notes://1",
    ],
    ids=["downstream-uri", "unknown-connector", "never-handed-out", "empty", "case", "malformed"],
)
async def test_a_uri_the_hub_did_not_hand_out_is_resource_not_found(hub: RunningHub, uri: str) -> None:
    """Issue 9 §1 and spec (resources, error handling: -32602, the URI as `data.uri`): never a guess at which
    connector it means."""
    async with Client(hub.url, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource(uri)
    assert raised.value.error.code == types.INVALID_PARAMS
    assert "Resource not found" in raised.value.error.message
    assert raised.value.error.data == {"uri": uri}


@pytest.mark.parametrize("era", ERAS)
async def test_links_in_tool_results_are_public_and_readable_through_the_hub(hub: RunningHub, era: str) -> None:
    """Issue 9 §1: a `resource_link` and an embedded resource in a tool result name public URIs the client can
    read through the hub."""
    async with Client(hub.url, mode=era) as client:
        result = await client.call_tool("fs-stdio__link", {"id": "7"})
        link, embedded = result.content
        assert isinstance(link, types.ResourceLink)
        assert isinstance(embedded, types.EmbeddedResource)
        read = await client.read_resource(str(link.uri))

    assert str(link.uri) == "mcp-hub://fs-stdio/notes://7"
    assert str(embedded.resource.uri) == "mcp-hub://fs-stdio/notes://7"
    assert isinstance(read.contents[0], types.TextResourceContents)
    assert read.contents[0].text == "the text of notes://7"


# --- completions --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
async def test_completions_of_prompt_arguments_and_template_variables_reach_the_owner(
    hub: RunningHub, era: str
) -> None:
    """Issue 9 §2 (spec: utilities/completion): the reference goes downstream in the connector's own names."""
    async with Client(hub.url, mode=era) as client:
        names = await client.complete(
            types.PromptReference(type="ref/prompt", name="fs-modern__greet"), {"name": "name", "value": "al"}
        )
        ids = await client.complete(
            types.ResourceTemplateReference(type="ref/resource", uri="mcp-hub://fs-stdio/notes://{id}"),
            {"name": "id", "value": "4"},
        )
        with pytest.raises(MCPError) as unknown:
            await client.complete(
                types.PromptReference(type="ref/prompt", name="fs-modern__nope"), {"name": "x", "value": ""}
            )

    assert names.completion.values == ["alice", "albert"]
    assert ids.completion.values == ["41", "42", "43"]
    assert unknown.value.error.code == types.INVALID_PARAMS


# --- errors -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("code", [-32050, -32000, -32001])
async def test_a_downstreams_json_rpc_error_keeps_its_code_and_data_and_names_the_connector(
    hub: RunningHub, era: str, connector: str, code: int
) -> None:
    """Issue 9 §5: not an `isError` result: the same JSON-RPC error, its message behind the connector id. T32:
    -32000 and -32001 are also the SDK's own codes for a closed connection and a timeout; from a downstream they
    fail only that call, and the connection stays up."""
    connections_before = hub.hub.pool.get(connector).connections_made
    async with Client(hub.url, mode=era) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool(f"{connector}__reject", {"code": code, "message": "not today"})
        after = await client.call_tool(f"{connector}__echo", {"text": "still here"})

    assert raised.value.error.code == code
    assert raised.value.error.message == f"{connector}: not today"
    assert raised.value.error.data == {"why": "asked to"}
    assert text_of(after) == "still here"
    assert hub.hub.pool.get(connector).connections_made == connections_before


# --- capabilities -------------------------------------------------------------------------------------------


async def test_initialize_and_discover_advertise_what_the_connectors_offer(hub: RunningHub) -> None:
    """Issue 9 §6: prompts, resources (with subscribe), completions and logging are advertised because the
    connectors declare them; every listChanged is true in both eras."""
    async with Client(hub.url, mode="legacy") as legacy:
        handshake = legacy.server_capabilities
    async with Client(hub.url, mode="2026-07-28") as modern:
        discovered = types.DiscoverResult.model_validate(await modern.session.send_discover("2026-07-28"))

    for capabilities in (handshake, discovered.capabilities):
        assert capabilities.prompts is not None
        assert capabilities.prompts.list_changed is True
        assert capabilities.resources is not None
        assert capabilities.resources.list_changed is True
        assert capabilities.completions is not None
        assert capabilities.logging is not None
        assert capabilities.tools is not None
        assert capabilities.tools.list_changed is True


# --- logging ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_modern_callers_log_level_reaches_the_downstream_and_its_entries_come_back_tagged(
    hub: RunningHub, connector: str
) -> None:
    """Issue 9 §3 (spec 2026-07-28 logging: per-request opt-in): entries at or above the caller's level come back
    on its request, the logger prefixed with the connector, the connector in `_meta`."""
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with Client(hub.url, mode="2026-07-28", log_level="warning", logging_callback=on_log) as client:
        quiet = await client.call_tool(f"{connector}__log", {"level": "info", "text": "too quiet"})
        loud = await client.call_tool(f"{connector}__log", {"level": "error", "text": "loud"})

    assert [entry.data for entry in received] == ["loud"]
    assert received[0].logger == f"{connector}/features"
    assert (received[0].meta or {})["io.github.mcp-hub/connector"] == connector
    if connector == "fs-modern":
        # A 2026-07-28 downstream gets the caller's own level on the request.
        assert (text_of(quiet), text_of(loud)) == ("warning", "warning")
    else:
        assert text_of(loud) != "-"


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_legacy_sessions_level_filters_what_it_receives(hub: RunningHub, connector: str) -> None:
    """Issue 9 §3 (spec 2025-11-25 logging/setLevel): below the session's level nothing arrives; the shared
    downstream session logs at the most verbose level some session wants, each session gets its own share."""
    received: list[types.LoggingMessageNotificationParams] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with Client(hub.url, mode="legacy", logging_callback=on_log) as client:
        with pytest.warns(MCPDeprecationWarning):  # deprecated by 2026-07-28, still the 2025-11-25 way
            await client.set_logging_level("error")  # pyright: ignore[reportDeprecated]
        await client.call_tool(f"{connector}__log", {"level": "warning", "text": "below"})
        await client.call_tool(f"{connector}__log", {"level": "critical", "text": "above"})

    assert [(entry.level, entry.data) for entry in received] == [("critical", "above")]


async def test_without_a_level_a_modern_caller_gets_no_log_entries(hub: RunningHub) -> None:
    """Spec 2026-07-28 logging: no `logLevel` in `_meta`, no `notifications/message`."""
    received: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params)

    async with Client(hub.url, mode="2026-07-28", logging_callback=on_log) as client:
        seen = await client.call_tool("fs-modern__log", {"level": "emergency", "text": "x"})

    assert received == []
    assert text_of(seen) == "-"


# --- what the downstream sees --------------------------------------------------------------------------------


async def test_a_modern_downstream_sees_the_callers_capabilities_not_the_hubs(hub: RunningHub) -> None:
    """Issue 9 §4: the client's declared capabilities decide what a downstream may ask (2026-07-28 carries them
    per request)."""
    async with Client(hub.url, mode="2026-07-28") as plain:
        without = json.loads(text_of(await plain.call_tool("fs-modern__capabilities", {})))

    async def answer(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with Client(hub.url, mode="2026-07-28", elicitation_callback=answer) as asking:
        with_elicitation = json.loads(text_of(await asking.call_tool("fs-modern__capabilities", {})))

    assert "elicitation" not in without
    assert "sampling" not in without
    assert "elicitation" in with_elicitation


@pytest.mark.parametrize("connector", ["fs-legacy", "fs-modern"])
async def test_concurrent_callers_each_get_only_their_own_log_entries(hub: RunningHub, connector: str) -> None:
    """Issue 9 §3, T27: two requests in flight at once on one shared downstream session; over Streamable HTTP
    each entry is tagged with the request it came with, so each caller gets its own and never the other's."""
    received: dict[str, list[str]] = {"a": [], "b": []}

    async def run(name: str) -> None:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            received[name].append(str(params.data))

        async with Client(hub.url, mode="2026-07-28", log_level="debug", logging_callback=on_log) as client:
            await client.call_tool(f"{connector}__rendezvous", {"group": f"{connector}-pair", "text": f"for {name}"})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run, "a")
        tasks.start_soon(run, "b")

    assert received == {"a": ["for a"], "b": ["for b"]}


async def test_on_a_shared_stream_entries_of_overlapping_requests_reach_nobody(hub: RunningHub) -> None:
    """Issue 9 §3, T27, our choice: a stdio downstream's entries carry no request id; with two requests in flight
    the hub cannot tell whose an entry is, so neither caller gets it (never the wrong one)."""
    received: list[str] = []

    async def run(name: str) -> None:
        async def on_log(params: types.LoggingMessageNotificationParams) -> None:
            received.append(f"{name} got {params.data}")

        async with Client(hub.url, mode="2026-07-28", log_level="debug", logging_callback=on_log) as client:
            await client.call_tool("fs-stdio__rendezvous", {"group": "stdio-pair", "text": f"for {name}"})

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run, "a")
        tasks.start_soon(run, "b")

    assert received == []


# --- subscriptions and list changes ---------------------------------------------------------------------------


async def legacy_subscription(client: Client, uri: str, *, subscribe: bool = True) -> None:
    """`resources/subscribe` (or unsubscribe): removed by 2026-07-28, still the way of 2025-11-25 sessions."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        if subscribe:
            await client.subscribe_resource(uri)  # pyright: ignore[reportDeprecated]
        else:
            await client.unsubscribe_resource(uri)  # pyright: ignore[reportDeprecated]


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_session_hears_of_updates_to_what_it_subscribed_to_and_nothing_else(
    hub: RunningHub, connector: str
) -> None:
    """Issue 9 §1 (spec 2025-11-25 resources/subscribe): the update arrives under the public URI; an update to
    another resource of the same downstream does not."""
    updates: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updates.append(str(message.params.uri))
            arrived.set()

    subscribed = f"mcp-hub://{connector}/notes://1"
    async with Client(hub.url, mode="legacy", message_handler=on_message) as client:
        await legacy_subscription(client, subscribed)
        await client.call_tool(f"{connector}__touch", {"uri": "notes://2"})
        await client.call_tool(f"{connector}__touch", {"uri": "notes://1"})
        with anyio.fail_after(10):
            await arrived.wait()
        await legacy_subscription(client, subscribed, subscribe=False)

    assert updates == [subscribed]


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_listen_stream_hears_of_updates_to_the_resources_it_named(hub: RunningHub, connector: str) -> None:
    """Issue 9 §1 (spec 2026-07-28 subscriptions/listen): a URI the hub never handed out is left out of the
    acknowledged filter; updates of the others arrive on the stream under their public URIs."""
    wanted = f"mcp-hub://{connector}/notes://3"
    async with (
        Client(hub.url, mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[wanted, "mcp-hub://nope/x://y"]) as subscription,
    ):
        await client.call_tool(f"{connector}__touch", {"uri": "notes://2"})
        await client.call_tool(f"{connector}__touch", {"uri": "notes://3"})
        with anyio.fail_after(10):
            event = await anext(subscription)

    assert subscription.honored.resource_subscriptions == [wanted]
    assert event == ResourceUpdated(uri=wanted)


@pytest.mark.parametrize("uri", ["mcp-hub://fs-stdio/secret://key", "notes://1"])
async def test_subscribing_to_a_uri_the_hub_did_not_hand_out_is_resource_not_found(hub: RunningHub, uri: str) -> None:
    """Issue 9 §1: the same rule as for reads: -32602, nothing subscribed downstream."""
    async with Client(hub.url, mode="legacy") as client:
        with pytest.raises(MCPError) as raised:
            await legacy_subscription(client, uri)
    assert raised.value.error.code == types.INVALID_PARAMS


async def test_prompt_and_resource_list_changes_reach_clients_of_both_eras(hub: RunningHub) -> None:
    """Issue 9 §6: a downstream's prompts/resources list change refreshes the catalog and is announced to a
    session (`notifications/*/list_changed`) and on listen streams."""
    legacy_heard: set[str] = set()
    both_heard = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.PromptListChangedNotification | types.ResourceListChangedNotification):
            legacy_heard.add(message.method)
            if len(legacy_heard) == 2:
                both_heard.set()

    prompt, resource = unique("extra"), f"notes://{unique('extra')}"
    async with (
        Client(hub.url, mode="legacy", message_handler=on_message) as legacy,
        Client(hub.url, mode="2026-07-28") as modern,
        modern.listen(prompts_list_changed=True, resources_list_changed=True) as subscription,
    ):
        await legacy.call_tool("fs-stdio__add_prompt", {"name": prompt})
        await legacy.call_tool("fs-stdio__add_resource", {"uri": resource})
        modern_heard: set[type[object]] = set()
        with anyio.fail_after(10):
            await both_heard.wait()
            while len(modern_heard) < 2:
                modern_heard.add(type(await anext(subscription)))
        prompts = {item.name for item in (await modern.list_prompts()).prompts}
        resources = {str(item.uri) for item in (await modern.list_resources()).resources}

    assert legacy_heard == {"notifications/prompts/list_changed", "notifications/resources/list_changed"}
    assert modern_heard == {PromptsListChanged, ResourcesListChanged}
    assert f"fs-stdio__{prompt}" in prompts
    assert f"mcp-hub://fs-stdio/{resource}" in resources
