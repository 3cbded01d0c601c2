"""Questions downstreams ask the user (elicitation, sampling, roots) reach the caller in its era (issue 9 §4).

Every pairing of eras: a 2025-11-25 downstream asks mid-call (stdio: one shared stream; HTTP: tagged streams),
a 2026-07-28 downstream answers `input_required`; a 2025-11-25 caller is asked on its request's stream, a
2026-07-28 caller gets `input_required` with the hub's own sealed, bound, single-use `requestState` (threats
T13, T19-style replay, T28 for the open-exchange caps).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPError

from tests.approvals.holding import agent_token
from tests.conftest import RunningHub, modern_call, running_hub, unique, write_config
from tests.features import CONNECTORS, features_connectors, features_over_http, free_port

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
CONNECTOR = "io.github.mcp-hub/connector"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    port = free_port()
    with features_over_http(port):
        config = write_config(tmp_path_factory.mktemp("questions"), features_connectors(port))
        async with running_hub(config) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


ROOTS = [
    {"uri": "file:///home/ada/projects/hub", "name": "hub"},
    {"uri": "file:///C:/Users/ada/notes/"},
]
"""The caller's roots: URIs of the caller's machine, which must reach the downstream as they are."""


class User:
    """A client's user: answers every elicitation, sampling and roots request, and remembers what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, dict[str, Any]]] = []

    async def elicit(self, context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        self.asked.append(("elicitation", dict(context.meta or {})))
        return types.ElicitResult(action="accept", content={"answer": "forty-two"})

    async def sample(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        self.asked.append(("sampling", dict(context.meta or {})))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text="the model says hi"), model="test-model"
        )

    async def list_roots(self, context: ClientRequestContext) -> types.ListRootsResult:
        self.asked.append(("roots", dict(context.meta or {})))
        return types.ListRootsResult.model_validate({"roots": ROOTS})

    def client(self, hub: RunningHub, era: str, *, roots: bool = True, **options: Any) -> Client:
        """A client declaring elicitation and sampling, and roots unless `roots=False`."""
        if roots:
            options["list_roots_callback"] = self.list_roots
        return Client(hub.url, mode=era, elicitation_callback=self.elicit, sampling_callback=self.sample, **options)


QUESTIONS: list[tuple[str, dict[str, Any], str]] = [
    ("ask", {"question": "the answer?"}, "forty-two"),
    ("sample", {"prompt": "hi"}, "the model says hi"),
    ("roots", {}, ROOTS[0]["uri"]),
]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize(("tool", "arguments", "answer"), QUESTIONS, ids=["elicitation", "sampling", "roots"])
async def test_a_downstreams_question_reaches_the_caller_and_its_answer_the_downstream(
    hub: RunningHub, era: str, connector: str, tool: str, arguments: dict[str, Any], answer: str
) -> None:
    """Issue 9 §4 (spec: client/elicitation, client/sampling, basic/utilities/mrtr): in every pairing of eras the
    caller is asked once, the connector is named, and the downstream completes the call with the answer."""
    user = User()
    async with user.client(hub, era) as client:
        result = await client.call_tool(f"{connector}__{tool}", arguments)

    assert answer in text_of(result)
    assert len(user.asked) == 1
    if era == "legacy":
        # A relayed server-to-client request names the connector it comes from. A 2026-07-28 input request's
        # params have no `_meta` in that era's schema (the SDK's wire models drop it), so there it cannot.
        assert user.asked[0][1].get(CONNECTOR) == connector


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_the_callers_roots_reach_the_downstream_unchanged(hub: RunningHub, era: str, connector: str) -> None:
    """Spec client/roots (2025-11-25; 2026-07-28 as an input request): the roots are the caller's own (URIs of
    its machine), so the downstream gets exactly the list the caller answered, in every pairing of eras."""
    user = User()
    async with user.client(hub, era) as client:
        result = await client.call_tool(f"{connector}__roots", {})

    assert json.loads(text_of(result))["roots"] == ROOTS
    assert [kind for kind, _ in user.asked] == ["roots"]


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_caller_that_did_not_declare_roots_gets_minus_32021_and_is_not_asked(
    hub: RunningHub, era: str, connector: str
) -> None:
    """Spec 2026-07-28 (-32021 with the required capability), chosen for 2025-11-25 callers alike: a caller that
    declared elicitation and sampling but not roots is never asked for them; the request fails naming `roots`."""
    user = User()
    async with user.client(hub, era, roots=False) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool(f"{connector}__roots", {})
        after = await client.call_tool(f"{connector}__echo", {"text": "fine"})

    assert raised.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert raised.value.error.data == {"requiredCapabilities": {"roots": {}}}
    assert user.asked == []
    assert text_of(after) == "fine"


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_a_caller_that_did_not_declare_the_capability_gets_minus_32021(
    hub: RunningHub, era: str, connector: str
) -> None:
    """Issue 9 §4 (spec 2026-07-28: -32021 with the required capability): the client's declared capabilities
    decide, not the hub's; the request fails with the spec's error, naming what was missing."""
    async with Client(hub.url, mode=era) as client:
        with pytest.raises(MCPError) as raised:
            await client.call_tool(f"{connector}__ask", {"question": "?"})
        after = await client.call_tool(f"{connector}__echo", {"text": "fine"})

    assert raised.value.error.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
    assert raised.value.error.data == {"requiredCapabilities": {"elicitation": {"form": {}}}}
    assert text_of(after) == "fine"


# --- the state a 2026-07-28 caller holds -----------------------------------------------------------------------


ASKS: dict[str, Any] = {"elicitation": {"form": {}}}


async def ask(
    hub: RunningHub,
    name: str,
    arguments: dict[str, Any],
    *,
    token: str | None = None,
    capabilities: dict[str, Any] = ASKS,
    **retry: Any,
) -> dict[str, Any]:
    """One raw 2026-07-28 `tools/call`; `retry` adds `inputResponses` / `requestState`. The JSON-RPC response."""
    response = await modern_call(hub.url, name, arguments, token=token, capabilities=capabilities, **retry)
    answer: dict[str, Any] = response.json()
    return answer


ANSWER = {"q": {"action": "accept", "content": {"answer": "by hand"}}}


@pytest.mark.parametrize("connector", CONNECTORS)
async def test_the_state_a_modern_caller_holds_is_the_hubs_sealed_one_and_a_retry_completes(
    hub: RunningHub, connector: str
) -> None:
    """Issue 9 §4: the caller never sees the downstream's own `requestState` in clear; its retry with the answer
    completes the call."""
    # A 2026-07-28 downstream names its questions; for a 2025-11-25 one the hub does (q1, q2, ...).
    key = "q" if connector == "fs-modern" else "q1"
    first = (await ask(hub, f"{connector}__ask", {"question": "?"}))["result"]
    retried = await ask(
        hub,
        f"{connector}__ask",
        {"question": "?"},
        inputResponses={key: ANSWER["q"]},
        requestState=first["requestState"],
    )

    assert first["resultType"] == "input_required"
    assert first["inputRequests"][key]["method"] == "elicitation/create"
    assert first["requestState"] != "asked"
    assert "asked" not in first["requestState"]
    assert "by hand" in retried["result"]["content"][0]["text"]


@pytest.mark.parametrize("connector", ["fs-modern", "fs-legacy"])
async def test_a_forged_replayed_or_misbound_state_is_refused(hub: RunningHub, connector: str) -> None:
    """Issue 9 §4 (SEP-2322: the state is attacker-controlled): a made-up state, a state used twice, and a state
    presented with other arguments are each `-32602` and reach no downstream."""
    key = "q" if connector == "fs-modern" else "q1"
    name = f"{connector}__ask"
    state = (await ask(hub, name, {"question": "?"}))["result"]["requestState"]
    answer = {key: ANSWER["q"]}

    forged = await ask(hub, name, {"question": "?"}, inputResponses=answer, requestState="v1.forged")
    other_arguments = await ask(hub, name, {"question": "other"}, inputResponses=answer, requestState=state)
    used = await ask(hub, name, {"question": "?"}, inputResponses=answer, requestState=state)
    replayed = await ask(hub, name, {"question": "?"}, inputResponses=answer, requestState=state)

    for refused in (forged, other_arguments, replayed):
        assert refused["error"]["code"] == types.INVALID_PARAMS
        assert "requestState" in refused["error"]["message"]
    assert "result" in used


async def test_answers_sent_unasked_reach_a_modern_downstream_as_they_came(hub: RunningHub) -> None:
    """SEP-2322 (a server ignores what it does not recognize; the conformance scenario
    input-required-result-ignore-extra-params sends answers with no `requestState`): the hub passes such answers to
    a 2026-07-28 downstream, which judges them as it would a direct client's (this one wants its own state back
    and says so); a 2025-11-25 downstream asks mid-call, so there they answer nothing and the caller is asked."""
    unasked = {"q": ANSWER["q"], "q1": ANSWER["q"], "extra": {"action": "decline"}}

    modern = await ask(hub, "fs-modern__ask", {"question": "?"}, inputResponses=unasked)
    legacy = await ask(hub, "fs-legacy__ask", {"question": "?"}, inputResponses=unasked)

    assert modern["error"]["code"] == types.INVALID_PARAMS
    assert "the state does not come from this server" in modern["error"]["message"]
    assert legacy["result"]["resultType"] == "input_required"


# --- exchanges: a 2025-11-25 downstream asks a 2026-07-28 caller ---------------------------------------------------


@pytest.fixture(scope="module")
async def impatient_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """Questions wait only half a second; one open exchange per caller."""
    port = free_port()
    with features_over_http(port):
        extra = "[questions]\nanswer_seconds = 0.5\nmax_open_per_principal = 1\n"
        config = write_config(tmp_path_factory.mktemp("impatient"), features_connectors(port), extra)
        async with running_hub(config) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


async def test_an_unanswered_question_is_refused_to_the_downstream_and_the_exchange_forgotten(
    impatient_hub: RunningHub,
) -> None:
    """Issue 9 §4, T28: a caller that never comes back does not hold the downstream call (or a slot) forever:
    after `answer_seconds` the question is refused to the downstream, and the state handed out has expired."""
    hub = impatient_hub
    first = (await ask(hub, "fs-legacy__ask", {"question": "?"}))["result"]
    questions = hub.hub.questions
    with anyio.fail_after(10):
        while questions.open_exchanges:  # noqa: ASYNC110 - the refusal happens in the hub's own task
            await anyio.sleep(0.05)
    late = await ask(
        hub, "fs-legacy__ask", {"question": "?"}, inputResponses={"q1": ANSWER["q"]}, requestState=first["requestState"]
    )

    assert late["error"]["code"] == types.INVALID_PARAMS
    assert late["error"]["message"] == "Invalid or expired requestState"


async def test_one_caller_cannot_hold_more_exchanges_than_its_share(impatient_hub: RunningHub) -> None:
    """T28: `max_open_per_principal` (1 here): a second open exchange is refused while the first waits."""
    hub = impatient_hub
    first = await ask(hub, "fs-stdio__ask", {"question": "one"})
    second = await ask(hub, "fs-stdio__ask", {"question": "two"})

    assert first["result"]["resultType"] == "input_required"
    assert second["error"]["code"] == types.INVALID_PARAMS
    assert "too many" in second["error"]["message"]


# --- with auth: a state is bound to its principal ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def auth_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    port = free_port()
    with features_over_http(port):
        config = write_config(tmp_path_factory.mktemp("questions-auth"), features_connectors(port), auth=True)
        async with running_hub(config) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


@pytest.mark.parametrize("connector", ["fs-modern", "fs-legacy"])
async def test_another_agents_state_is_refused_and_leaves_the_owners_exchange_alone(
    auth_hub: RunningHub, connector: str
) -> None:
    """T13 and issue 9 §4: a `requestState` is bound to the agent it was handed to; another agent presenting it
    (same tool, same arguments) gets `-32602`, and the owner can still answer with it."""
    key = "q" if connector == "fs-modern" else "q1"
    name = f"{connector}__ask"
    owner = await agent_token(auth_hub, unique("owner"), f"tool:{connector}__*")
    intruder = await agent_token(auth_hub, unique("intruder"), f"tool:{connector}__*")
    state = (await ask(auth_hub, name, {"question": "?"}, token=owner))["result"]["requestState"]
    answer = {key: ANSWER["q"]}

    stolen = await ask(auth_hub, name, {"question": "?"}, token=intruder, inputResponses=answer, requestState=state)
    rightful = await ask(auth_hub, name, {"question": "?"}, token=owner, inputResponses=answer, requestState=state)

    assert stolen["error"]["code"] == types.INVALID_PARAMS
    assert stolen["error"]["message"] == "Invalid or expired requestState"
    assert "by hand" in rightful["result"]["content"][0]["text"]
