"""What the hub federates besides tools, end to end with real third-party parts.

Downstream: `@modelcontextprotocol/server-everything` (the MCP reference server, 2025-11-25 only) behind the hub
over stdio (one shared stream), the legacy HTTP+SSE transport (one shared stream) and Streamable HTTP (each
request's messages on its own stream, tagged by the hub). Upstream: the SDK `mcp.Client` in both eras, the MCP
Inspector CLI and the TypeScript SDK v2 client (`tests/npm_clients/ts_client.mjs`), each in both eras.

Every assertion checks what server-everything itself serves (the text of its documents, its prompts' wording,
its completion lists, the text its tools build from the answers they got), so a hub that drops, renames or
garbles anything on the way fails here.

What server-everything offers that decides what can be tested (version pinned in package.json):
- Its only deterministic log entry is the `info` it sends when a session subscribes to a resource. It is not
  part of any request the hub forwards (the hub subscribes on its own shared session), so it reaches only
  2025-11-25 sessions that set a level, on their standalone stream; 2026-07-28 has no stream for such entries.
- `toggle-simulated-logging` sends one entry at a random level at once, unrelated to the request (no
  `relatedRequestId`). On stdio and SSE the hub attributes it to the only request in flight, so it comes back
  with the call, in either era. Over Streamable HTTP the server sends it on its standalone GET stream, so it is
  the session's, not the call's: a 2025-11-25 session that set a level gets it, a 2026-07-28 caller cannot
  (skipped below with that reason). Its level is random, so the tests ask for `debug` (everything passes).
- `trigger-elicitation-request`, `trigger-url-elicitation` and `trigger-sampling-request` are registered only for
  a client declaring elicitation (URL mode) and sampling, which the hub does; each puts its question mid-call
  (2025-11-25), which the hub puts to a 2025-11-25 caller as a request and to a 2026-07-28 caller as
  `input_required`. With `errorPath` the URL one answers `-32042` (URLElicitationRequiredError) instead, which
  2026-07-28 retired: a 2025-11-25 caller gets it whole, a 2026-07-28 caller as `input_required`.
- `toggle-subscriber-updates` sends `notifications/resources/updated` at once for what the hub's downstream
  session subscribed to, then every 5 s; `toggle-simulated-logging` repeats every 5 s too. Each test that starts
  one stops it again before it ends.

Cost: one hub and three Node servers for the module; about 20 s in all, most of it the Inspector and TypeScript
client processes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any, Literal

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.subscriptions import ResourceUpdated

from tests.conftest import RunningHub, connector_toml, running_hub, write_config
from tests.npm_peers import (
    EVERYTHING,
    ProtocolEra,
    TsClientEra,
    everything_over_http,
    everything_stdio_command,
    require_npm_peers,
    run_inspector,
    run_ts_client,
)

pytestmark = [pytest.mark.anyio, pytest.mark.node]

Transport = Literal["stdio", "sse", "http"]
ClientEra = Literal["legacy", "2026-07-28"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "sse", "http")
CLIENT_ERAS: tuple[ClientEra, ...] = ("legacy", "2026-07-28")
CONNECTOR_IDS: dict[Transport, str] = {"stdio": "everything", "sse": "everything-sse", "http": "everything-http"}
CONNECTOR_META = "io.github.mcp-hub/connector"
READY_TIMEOUT = 20
EVENT_TIMEOUT = 10
"""Seconds to wait for a notification that has already been caused (it normally takes milliseconds)."""

DOCS = EVERYTHING.parent / "docs"
"""server-everything serves each file here as `demo://resource/static/document/<name>`."""
DOCUMENT = "features.md"
SIMULATED_LOG_TEXTS = (
    "Debug-level message",
    "Info-level message",
    "Notice-level message",
    "Warning-level message",
    "Error-level message",
    "Critical-level message",
    "Alert level-message",
    "Emergency-level message",
)
"""The entries `toggle-simulated-logging` picks from (server/logging.js), each maybe followed by a session id."""


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """One hub federating server-everything three times, once per transport (awaited per test: `ready_hub`)."""
    require_npm_peers()
    directory = tmp_path_factory.mktemp("everything-features")
    command, args = everything_stdio_command()
    common: dict[str, Any] = {"protocol": "legacy", "call_timeout_seconds": 20}
    async with (
        everything_over_http("sse", directory) as sse_url,
        everything_over_http("streamableHttp", directory) as http_url,
    ):
        connectors = {
            "everything": connector_toml(id="everything", transport="stdio", command=command, args=args, **common),
            "everything-sse": connector_toml(id="everything-sse", transport="sse", url=sse_url, **common),
            "everything-http": connector_toml(id="everything-http", transport="http", url=http_url, **common),
        }
        async with running_hub(write_config(directory, connectors)) as running:
            yield running


@pytest.fixture
def transport() -> Transport:
    return "stdio"


@pytest.fixture
async def ready_hub(hub: RunningHub, transport: Transport) -> RunningHub:
    """The module's hub once the connector for `transport` is ready (the HTTP servers start unprobed: the
    connector retries until they listen)."""
    with anyio.fail_after(READY_TIMEOUT):
        await hub.wait_ready(CONNECTOR_IDS[transport])
    return hub


def public(connector: str, uri: str) -> str:
    return f"mcp-hub://{connector}/{uri}"


def document_uri(connector: str, name: str = DOCUMENT) -> str:
    return public(connector, f"demo://resource/static/document/{name}")


def texts_of(content: list[Any]) -> list[str]:
    return [block.text for block in content if isinstance(block, types.TextContent)]


class Log:
    """A client's `logging_callback`: every entry, and an event per arrival to await the one a test caused."""

    def __init__(self) -> None:
        self.entries: list[types.LoggingMessageNotificationParams] = []
        self._arrived = anyio.Event()

    async def __call__(self, params: types.LoggingMessageNotificationParams) -> None:
        self.entries.append(params)
        arrived, self._arrived = self._arrived, anyio.Event()
        arrived.set()

    async def first(self, wanted: Callable[[str], bool]) -> types.LoggingMessageNotificationParams:
        """The first entry whose (text) data is `wanted`, waiting for it if need be."""
        with anyio.fail_after(EVENT_TIMEOUT):
            while True:
                arrived = self._arrived
                for entry in self.entries:
                    if isinstance(entry.data, str) and wanted(entry.data):
                        return entry
                await arrived.wait()


def simulated(data: str) -> bool:
    """Is this an entry of `toggle-simulated-logging` (on HTTP transports followed by the session id)?"""
    return data.split(" - SessionId ")[0] in SIMULATED_LOG_TEXTS


class User:
    """A client's user: answers elicitation (form and URL) and sampling, remembering what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any], dict[str, Any]]] = []

    async def elicit(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        self.asked.append(("elicitation", wire, dict(context.meta or {})))
        if wire.get("mode") == "url":
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "integer": 7})

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        self.asked.append(("sampling", wire, dict(context.meta or {})))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="an analytical engine"), model="canned-model"
        )


# --- resources ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_everything_resources_and_templates_are_listed_under_public_uris(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Our choice (issue 9 §1): each downstream resource and template is offered as
    `mcp-hub://<connector>/<downstream URI>`, with the downstream's name and MIME type."""
    connector = CONNECTOR_IDS[transport]
    async with Client(ready_hub.url, mode=era) as client:
        resources = {str(item.uri): item for item in (await client.list_resources()).resources}
        templates = {item.uri_template: item for item in (await client.list_resource_templates()).resource_templates}

    documents = {uri: item for uri, item in resources.items() if uri.startswith(public(connector, ""))}
    assert set(documents) == {document_uri(connector, path.name) for path in DOCS.iterdir() if path.is_file()}
    features = documents[document_uri(connector)]
    assert (features.name, features.mime_type) == (DOCUMENT, "text/markdown")
    own = {uri: item for uri, item in templates.items() if uri.startswith(public(connector, ""))}
    assert set(own) == {
        public(connector, "demo://resource/dynamic/text/{resourceId}"),
        public(connector, "demo://resource/dynamic/blob/{resourceId}"),
    }
    assert own[public(connector, "demo://resource/dynamic/text/{resourceId}")].name == "Dynamic Text Resource"


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_listed_document_and_template_expansions_are_read_from_server_everything(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (server/resources) and our URI mapping: a listed resource reads as the file server-everything serves;
    an expansion of a public template reaches the server as the expansion of its own (text and blob)."""
    connector = CONNECTOR_IDS[transport]
    async with Client(ready_hub.url, mode=era) as client:
        document = await client.read_resource(document_uri(connector))
        text = await client.read_resource(public(connector, "demo://resource/dynamic/text/17"))
        blob = await client.read_resource(public(connector, "demo://resource/dynamic/blob/23"))

    (contents,) = document.contents
    assert isinstance(contents, types.TextResourceContents)
    assert contents.text == (DOCS / DOCUMENT).read_text(encoding="utf-8")
    assert (str(contents.uri), contents.mime_type) == (document_uri(connector), "text/markdown")
    (generated,) = text.contents
    assert isinstance(generated, types.TextResourceContents)
    assert generated.text.startswith("Resource 17: This is a plaintext resource created at ")
    assert str(generated.uri) == public(connector, "demo://resource/dynamic/text/17")
    (binary,) = blob.contents
    assert isinstance(binary, types.BlobResourceContents)
    assert base64.b64decode(binary.blob).decode().startswith("Resource 23: This is a base64 blob created at ")
    assert str(binary.uri) == public(connector, "demo://resource/dynamic/blob/23")


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_resource_links_in_a_tool_result_are_public_and_readable_through_the_hub(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Our URI mapping (issue 9 §1): the `resource_link`s `get-resource-links` returns name public URIs, and each
    reads through the hub as the resource server-everything generates for it."""
    connector = CONNECTOR_IDS[transport]
    async with Client(ready_hub.url, mode=era) as client:
        result = await client.call_tool(f"{connector}__get-resource-links", {"count": 2})
        links = [block for block in result.content if isinstance(block, types.ResourceLink)]
        reads = [await client.read_resource(str(link.uri)) for link in links]

    assert [(str(link.uri), link.name) for link in links] == [
        (public(connector, "demo://resource/dynamic/blob/1"), "Blob Resource 1"),
        (public(connector, "demo://resource/dynamic/text/2"), "Text Resource 2"),
    ]
    blob, text = (read.contents[0] for read in reads)
    assert isinstance(blob, types.BlobResourceContents)
    assert base64.b64decode(blob.blob).decode().startswith("Resource 1: This is a base64 blob created at ")
    assert isinstance(text, types.TextResourceContents)
    assert text.text.startswith("Resource 2: This is a plaintext resource created at ")


async def toggle_updates(client: Client, connector: str) -> str:
    """Call `toggle-subscriber-updates` (starts or stops updates of what the hub's downstream session subscribed
    to, the first ones at once); its text."""
    result = await client.call_tool(f"{connector}__toggle-subscriber-updates", {})
    assert not result.is_error, texts_of(result.content)
    return "".join(texts_of(result.content))


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_legacy_session_hears_server_everythings_update_of_what_it_subscribed_to(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Spec (2025-11-25 resources/subscribe): the hub subscribes downstream for the session, and
    server-everything's `notifications/resources/updated` reaches it under the public URI."""
    connector = CONNECTOR_IDS[transport]
    uri = document_uri(connector, "structure.md")
    updated: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: object) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            arrived.set()

    async with Client(ready_hub.url, mode="legacy", message_handler=on_message) as client:
        with pytest.warns(MCPDeprecationWarning):  # removed by 2026-07-28, still the way of 2025-11-25 sessions
            await client.subscribe_resource(uri)  # pyright: ignore[reportDeprecated]
        started = await toggle_updates(client, connector)
        try:
            assert started.startswith("Started simulated resource updated notifications"), started
            with anyio.fail_after(EVENT_TIMEOUT):
                await arrived.wait()
        finally:
            if started.startswith("Started"):
                assert (await toggle_updates(client, connector)).startswith("Stopped simulated resource updates")
        with pytest.warns(MCPDeprecationWarning):
            await client.unsubscribe_resource(uri)  # pyright: ignore[reportDeprecated]

    assert updated[0] == uri


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_modern_listener_hears_server_everythings_update_of_what_it_listens_to(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Spec (2026-07-28 subscriptions/listen with resourceSubscriptions): the hub acknowledges the public URI,
    subscribes on its 2025-11-25 downstream session, and the downstream's update comes on the listen stream."""
    connector = CONNECTOR_IDS[transport]
    uri = document_uri(connector, "how-it-works.md")
    async with (
        Client(ready_hub.url, mode="2026-07-28") as client,
        client.listen(resource_subscriptions=[uri]) as subscription,
    ):
        started = await toggle_updates(client, connector)
        try:
            assert started.startswith("Started simulated resource updated notifications"), started
            with anyio.fail_after(EVENT_TIMEOUT):
                event = await anext(aiter(subscription))
        finally:
            if started.startswith("Started"):
                assert (await toggle_updates(client, connector)).startswith("Stopped simulated resource updates")

    assert subscription.honored.resource_subscriptions == [uri]
    assert isinstance(event, ResourceUpdated)
    assert event.uri == uri


# --- prompts and completions --------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_everything_prompts_are_listed_and_got_with_their_arguments(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Our naming (`<connector>__<prompt>`) and spec (server/prompts): arguments reach server-everything, and the
    resource it embeds in a prompt comes back under its public URI."""
    connector = CONNECTOR_IDS[transport]
    async with Client(ready_hub.url, mode=era) as client:
        listed = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        simple = await client.get_prompt(f"{connector}__simple-prompt")
        weather = await client.get_prompt(f"{connector}__args-prompt", {"city": "Lyon", "state": "Rhône"})
        embedding = await client.get_prompt(
            f"{connector}__resource-prompt", {"resourceType": "Text", "resourceId": "5"}
        )

    names = {"simple-prompt", "args-prompt", "completable-prompt", "resource-prompt"}
    assert {name for name in listed if name.startswith(f"{connector}__")} == {f"{connector}__{n}" for n in names}
    arguments = listed[f"{connector}__args-prompt"].arguments or []
    assert [(argument.name, argument.required) for argument in arguments] == [("city", True), ("state", False)]
    (message,) = simple.messages
    assert isinstance(message.content, types.TextContent)
    assert message.content.text == "This is a simple prompt without arguments."
    (question,) = weather.messages
    assert isinstance(question.content, types.TextContent)
    assert question.content.text == "What's weather in Lyon, Rhône?"
    intro, embedded = embedding.messages
    assert isinstance(intro.content, types.TextContent)
    assert intro.content.text.startswith("This prompt includes the Text resource with id: 5.")
    assert isinstance(embedded.content, types.EmbeddedResource)
    resource = embedded.content.resource
    assert isinstance(resource, types.TextResourceContents)
    assert str(resource.uri) == public(connector, "demo://resource/dynamic/text/5")
    assert resource.text.startswith("Resource 5: This is a plaintext resource created at ")


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_completions_come_from_server_everything(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (server/utilities/completion): a prompt argument's completion (with the context of an earlier
    argument) and a public template variable's completion reach server-everything in its own names."""
    connector = CONNECTOR_IDS[transport]
    prompt = types.PromptReference(type="ref/prompt", name=f"{connector}__completable-prompt")
    template = types.ResourceTemplateReference(
        type="ref/resource", uri=public(connector, "demo://resource/dynamic/text/{resourceId}")
    )
    async with Client(ready_hub.url, mode=era) as client:
        departments = await client.complete(prompt, {"name": "department", "value": "S"})
        people = await client.complete(prompt, {"name": "name", "value": ""}, {"department": "Engineering"})
        valid_id = await client.complete(template, {"name": "resourceId", "value": "12"})
        invalid_id = await client.complete(template, {"name": "resourceId", "value": "twelve"})

    assert departments.completion.values == ["Sales", "Support"]
    assert people.completion.values == ["Alice", "Bob", "Charlie"]
    assert valid_id.completion.values == ["12"]
    assert invalid_id.completion.values == []


# --- logging ----------------------------------------------------------------------------------------------------


async def toggle_logging(client: Client, connector: str) -> str:
    """Call `toggle-simulated-logging` (on for the hub's downstream session if off, else off); its text."""
    result = await client.call_tool(f"{connector}__toggle-simulated-logging", {})
    assert not result.is_error, texts_of(result.content)
    return "".join(texts_of(result.content))


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_log_entry_server_everything_sends_during_a_call_reaches_the_caller_tagged(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (server/utilities/logging, both eras) and our tagging: a caller that asked for `debug`
    (`logging/setLevel` on 2025-11-25, the per-request `logLevel` on 2026-07-28) gets the entry
    `toggle-simulated-logging` sends, its logger the connector id and the connector named in `_meta`.

    Over Streamable HTTP server-everything sends it on its standalone stream, unrelated to the call: a
    2025-11-25 session that set a level gets it there; a 2026-07-28 caller has no such stream."""
    if transport == "http" and era == "2026-07-28":
        pytest.skip(
            "server-everything sends simulated log entries without relatedRequestId, so over Streamable HTTP they "
            "go to its standalone GET stream, not the call's; 2026-07-28 has no stream for entries of no request"
        )
    connector = CONNECTOR_IDS[transport]
    log = Log()
    options: dict[str, Any] = {"log_level": "debug"} if era == "2026-07-28" else {}
    async with Client(ready_hub.url, mode=era, logging_callback=log, **options) as client:
        if era == "legacy":
            with pytest.warns(MCPDeprecationWarning):  # deprecated by 2026-07-28, still the 2025-11-25 way
                await client.set_logging_level("debug")  # pyright: ignore[reportDeprecated]
        started = await toggle_logging(client, connector)
        try:
            assert started.startswith("Started simulated, random-leveled logging"), started
            entry = await log.first(simulated)
        finally:
            if started.startswith("Started"):
                assert (await toggle_logging(client, connector)).startswith("Stopped simulated logging")

    assert entry.logger == connector
    assert (entry.meta or {}).get(CONNECTOR_META) == connector


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everythings_subscribe_acknowledgement_reaches_a_legacy_session_that_set_a_level(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Spec (2025-11-25 logging/setLevel, resources/subscribe) and our relaying: subscribing through the hub makes
    the hub subscribe downstream; server-everything acknowledges with an `info` entry that belongs to no request
    of the caller, which the hub relays to the sessions that set a level, tagged with the connector."""
    connector = CONNECTOR_IDS[transport]
    log = Log()
    async with Client(ready_hub.url, mode="legacy", logging_callback=log) as client:
        with pytest.warns(MCPDeprecationWarning):
            await client.set_logging_level("debug")  # pyright: ignore[reportDeprecated]
        with pytest.warns(MCPDeprecationWarning):  # removed by 2026-07-28, still the way of 2025-11-25 sessions
            await client.subscribe_resource(document_uri(connector, "startup.md"))  # pyright: ignore[reportDeprecated]
        entry = await log.first(
            lambda data: data.startswith(
                "Received Subscribe Resource request for URI: demo://resource/static/document/startup.md"
            )
        )
        with pytest.warns(MCPDeprecationWarning):
            await client.unsubscribe_resource(document_uri(connector, "startup.md"))  # pyright: ignore[reportDeprecated]

    assert (entry.level, entry.logger) == ("info", connector)
    assert (entry.meta or {}).get(CONNECTOR_META) == connector


# --- questions: elicitation and sampling --------------------------------------------------------------------------


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everythings_form_elicitation_is_answered_by_the_caller(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (client/elicitation; 2026-07-28 input_required): server-everything's form reaches the caller whole
    and the answer reaches server-everything, which echoes it in its result."""
    connector = CONNECTOR_IDS[transport]
    user = User()
    async with Client(ready_hub.url, mode=era, elicitation_callback=user.elicit) as client:
        result = await client.call_tool(f"{connector}__trigger-elicitation-request", {})

    assert not result.is_error, texts_of(result.content)
    assert texts_of(result.content)[:2] == [
        "✅ User provided the requested information!",
        "User inputs:\n- Name: Ada Lovelace\n- Agreed to terms: true\n- Favorite Integer: 7",
    ]
    ((kind, question, meta),) = user.asked
    assert kind == "elicitation"
    assert question["message"] == "Please provide inputs for the following fields:"
    assert question["requestedSchema"]["required"] == ["name"]
    assert question["requestedSchema"]["properties"]["untitledSingleSelectEnum"]["enum"][0] == "Monica"
    if era == "legacy":
        assert meta.get(CONNECTOR_META) == connector


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everythings_url_elicitation_is_answered_by_the_caller(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (client/elicitation, URL mode): the URL (and on 2025-11-25 the elicitation id) reach the caller;
    its acceptance reaches server-everything."""
    connector = CONNECTOR_IDS[transport]
    user = User()
    arguments = {"url": "https://example.com/consent", "elicitationId": f"consent-{transport}-{era}"}
    async with Client(ready_hub.url, mode=era, elicitation_callback=user.elicit) as client:
        result = await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)

    assert not result.is_error, texts_of(result.content)
    assert texts_of(result.content)[0] == (
        "✅ User completed the URL elicitation flow.\n"
        f"Elicitation ID: consent-{transport}-{era}\nURL: https://example.com/consent"
    )
    ((kind, question, meta),) = user.asked
    assert kind == "elicitation"
    assert (question["mode"], question["url"]) == ("url", "https://example.com/consent")
    if era == "legacy":
        # 2026-07-28 removed `elicitationId` from the request (it is still in server-everything's result above).
        assert question["elicitationId"] == f"consent-{transport}-{era}"
        assert meta.get(CONNECTOR_META) == connector


@pytest.mark.parametrize("era", CLIENT_ERAS)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everythings_sampling_request_is_answered_by_the_caller(
    ready_hub: RunningHub, transport: Transport, era: ClientEra
) -> None:
    """Spec (client/sampling; 2026-07-28 input_required): the messages, system prompt and token limit reach the
    caller; the model's answer reaches server-everything, which returns it."""
    connector = CONNECTOR_IDS[transport]
    user = User()
    async with Client(ready_hub.url, mode=era, sampling_callback=user.sample) as client:
        result = await client.call_tool(
            f"{connector}__trigger-sampling-request", {"prompt": "what did Ada program?", "maxTokens": 42}
        )

    assert not result.is_error, texts_of(result.content)
    (text,) = texts_of(result.content)
    assert text.startswith("LLM sampling result: \n")
    assert json.loads(text.removeprefix("LLM sampling result: \n")) == {
        "model": "canned-model",
        "role": "assistant",
        "content": {"type": "text", "text": "an analytical engine"},
    }
    ((kind, question, meta),) = user.asked
    assert kind == "sampling"
    assert question["messages"] == [
        {
            "role": "user",
            "content": {"type": "text", "text": "Resource trigger-sampling-request context: what did Ada program?"},
        }
    ]
    assert (question["systemPrompt"], question["maxTokens"]) == ("You are a helpful test server.", 42)
    if era == "legacy":
        assert meta.get(CONNECTOR_META) == connector


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_server_everythings_url_elicitation_required_error_reaches_a_legacy_caller_whole(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Spec (2025-11-25 client/elicitation, URLElicitationRequiredError): `-32042` and its `elicitations` reach a
    2025-11-25 caller, so it can send the user to the prerequisite URL and retry."""
    connector = CONNECTOR_IDS[transport]
    arguments = {
        "url": "https://example.com/authorize",
        "errorPath": True,
        "elicitationId": f"prerequisite-{transport}",
    }
    async with Client(ready_hub.url, mode="legacy") as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)
        # The retry the error asks for: server-everything recognizes it and asks by request (refused: no callback).
        with pytest.raises(MCPError) as retried:
            await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)

    assert raised.value.error.code == types.URL_ELICITATION_REQUIRED
    assert (
        raised.value.error.message
        == f"{connector}: MCP error -32042: This request requires browser-based authorization."
    )
    (elicitation,) = raised.value.error.data["elicitations"]
    assert (elicitation["mode"], elicitation["url"]) == ("url", "https://modelcontextprotocol.io")
    assert retried.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_url_elicitation_required_error_reaches_a_modern_caller_as_input_required(
    ready_hub: RunningHub, transport: Transport
) -> None:
    """Spec: 2026-07-28 retired `-32042` (reserved, never reused); URL elicitation is an `input_required` request
    there. Our design: the hub turns a 2025-11-25 downstream's `-32042` into those requests, and the caller's
    retry calls the downstream again, as a 2025-11-25 client would after the user finished: here
    server-everything then asks by request, which the caller answers too, and the call completes."""
    connector = CONNECTOR_IDS[transport]
    user = User()
    arguments = {"url": "https://example.com/authorize", "errorPath": True, "elicitationId": f"pre-{transport}"}
    async with Client(ready_hub.url, mode="2026-07-28", elicitation_callback=user.elicit) as client:
        result = await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)

    assert not result.is_error, texts_of(result.content)
    assert texts_of(result.content)[0].startswith("✅ User completed the URL elicitation flow.")
    prerequisite, asked_mid_call = (question for _, question, _ in user.asked)
    assert (prerequisite["mode"], prerequisite["url"]) == ("url", "https://modelcontextprotocol.io")
    assert (asked_mid_call["mode"], asked_mid_call["url"]) == ("url", "https://example.com/authorize")


async def test_a_declined_prerequisite_is_not_sent_on_and_an_undeclared_url_mode_is_minus_32021(
    ready_hub: RunningHub,
) -> None:
    """A modern caller that declines the prerequisite URL gets -32602 and the downstream is not called again; one
    that declared no elicitation at all gets -32021 (the spec's error for a missing client capability)."""
    connector = CONNECTOR_IDS["stdio"]
    arguments = {"url": "https://example.com/authorize", "errorPath": True, "elicitationId": "declined"}

    async def decline(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="decline")

    async with Client(ready_hub.url, mode="2026-07-28", elicitation_callback=decline) as client:
        with pytest.raises(MCPError) as declined:
            await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)
    async with Client(ready_hub.url, mode="2026-07-28") as client:
        with pytest.raises(MCPError) as undeclared:
            await client.call_tool(f"{connector}__trigger-url-elicitation", arguments)

    assert declined.value.error.code == types.INVALID_PARAMS
    assert "declined" in declined.value.error.message
    assert undeclared.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY


# --- the MCP Inspector CLI ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_the_inspector_cli_lists_and_reads_resources_and_gets_prompts_through_the_hub(
    ready_hub: RunningHub, era: ProtocolEra, tmp_path: Path
) -> None:
    """Interoperability (our choice): an independent client, the Inspector CLI (`--protocol-era modern` pins
    2026-07-28), lists and reads server-everything's resources and lists and gets its prompts through the hub."""
    url, uri = ready_hub.url, document_uri("everything")
    resources = await run_inspector(url, era, tmp_path, "--method", "resources/list")
    read = await run_inspector(url, era, tmp_path, "--method", "resources/read", "--uri", uri)
    prompts = await run_inspector(url, era, tmp_path, "--method", "prompts/list")
    got = await run_inspector(
        url,
        era,
        tmp_path,
        "--method",
        "prompts/get",
        "--prompt-name",
        "everything__args-prompt",
        "--prompt-args",
        "city=Lyon",
        "state=Rhône",
    )

    assert uri in {resource["uri"] for resource in resources["result"]["resources"]}
    assert read["result"]["contents"] == [
        {"uri": uri, "mimeType": "text/markdown", "text": (DOCS / DOCUMENT).read_text(encoding="utf-8")}
    ]
    listed = {prompt["name"]: prompt for prompt in prompts["result"]["prompts"]}
    assert [argument["name"] for argument in listed["everything__args-prompt"]["arguments"]] == ["city", "state"]
    assert got["result"]["messages"] == [
        {"role": "user", "content": {"type": "text", "text": "What's weather in Lyon, Rhône?"}}
    ]


# --- the TypeScript SDK v2 client -------------------------------------------------------------------------------


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
@pytest.mark.parametrize("transport", ["stdio", "sse"])
async def test_the_typescript_client_gets_prompts_resources_and_logs_through_the_hub(
    ready_hub: RunningHub, transport: Transport, era: TsClientEra
) -> None:
    """Interoperability (our choice): the TypeScript SDK v2 client, in either era, gets server-everything's
    prompts, completions, resources and a log entry of a call through the hub, tagged with the connector, and
    answers its sampling request (a server-to-client request on 2025-11-25, `input_required` on 2026-07-28)."""
    connector = CONNECTOR_IDS[transport]
    toggle = {"op": "callTool", "name": f"{connector}__toggle-simulated-logging"}
    document = await run_ts_client(
        ready_hub.url,
        [
            {"op": "listPrompts"},
            {"op": "getPrompt", "name": f"{connector}__args-prompt", "arguments": {"city": "Turin"}},
            {
                "op": "complete",
                "ref": {"type": "ref/prompt", "name": f"{connector}__completable-prompt"},
                "argument": {"name": "department", "value": "Ma"},
            },
            {"op": "listResources"},
            {"op": "listResourceTemplates"},
            {"op": "readResource", "uri": document_uri(connector)},
            {"op": "readResource", "uri": public(connector, "demo://resource/dynamic/text/3")},
            {"op": "setLoggingLevel", "level": "debug"},
            toggle,
            toggle,
            {"op": "callTool", "name": f"{connector}__trigger-sampling-request", "arguments": {"prompt": "hello"}},
        ],
        era=era,
        answers={"sampling": {"role": "assistant", "content": {"type": "text", "text": "from TS"}, "model": "ts"}},
    )

    results = document["results"]
    assert all(result["ok"] for result in results), results
    prompts, prompt, completion, resources, templates, read, expanded, _, started, stopped, sampled = (
        result["result"] for result in results
    )
    assert {f"{connector}__simple-prompt", f"{connector}__args-prompt"} <= {p["name"] for p in prompts["prompts"]}
    assert prompt["messages"] == [{"role": "user", "content": {"type": "text", "text": "What's weather in Turin?"}}]
    assert completion["completion"]["values"] == ["Marketing"]
    assert document_uri(connector) in {resource["uri"] for resource in resources["resources"]}
    assert public(connector, "demo://resource/dynamic/text/{resourceId}") in {
        template["uriTemplate"] for template in templates["resourceTemplates"]
    }
    assert read["contents"][0]["text"] == (DOCS / DOCUMENT).read_text(encoding="utf-8")
    assert expanded["contents"][0]["text"].startswith("Resource 3: This is a plaintext resource created at ")
    assert started["content"][0]["text"].startswith("Started simulated, random-leveled logging")
    assert stopped["content"][0]["text"].startswith("Stopped simulated logging")
    logs = [n["params"] for n in document["notifications"] if n["method"] == "notifications/message"]
    entry = next((log for log in logs if isinstance(log["data"], str) and simulated(log["data"])), None)
    assert entry is not None, document["notifications"]
    assert entry["logger"] == connector
    assert entry["_meta"][CONNECTOR_META] == connector
    (asked,) = document["requests"]
    assert asked["method"] == "sampling/createMessage"
    assert asked["params"]["messages"][0]["content"]["text"] == "Resource trigger-sampling-request context: hello"
    answer = json.loads(sampled["content"][0]["text"].removeprefix("LLM sampling result: \n"))
    assert answer == {"model": "ts", "role": "assistant", "content": {"type": "text", "text": "from TS"}}
