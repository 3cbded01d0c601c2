"""The TypeScript SDK client driver (tests/npm_clients/ts_client.mjs, via `tests.npm_peers.run_ts_client`)
against the conformance fixture server directly, in both eras: what end-to-end tests through the hub rely on.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any, cast, get_args

import pytest

from tests.conformance.harness import fixture_over_http
from tests.fixtures.conformance_server import PROMPTS, RESOURCE_TEMPLATES, RESOURCES, TOOLS
from tests.npm_peers import TsClientEra, free_port, require_npm_peers, run_ts_client

pytestmark = pytest.mark.node
ERAS: tuple[TsClientEra, ...] = ("2025-11-25", "2026-07-28")
assert set(ERAS) < set(get_args(TsClientEra))


@pytest.fixture(scope="module")
async def fixture_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[str]:
    require_npm_peers()
    async with fixture_over_http(Path(tmp_path_factory.mktemp("ts-client-fixture"))) as url:
        yield url


def _results(run: dict[str, Any]) -> list[Any]:
    failed = [result for result in run["results"] if not result["ok"]]
    assert not failed, f"operations failed: {failed}"
    return [result["result"] for result in run["results"]]


def _text(result: dict[str, Any]) -> str:
    return "".join(block["text"] for block in result["content"] if block["type"] == "text")


@pytest.mark.parametrize("era", ERAS)
async def test_the_ts_client_negotiates_the_era_it_is_asked_for_and_lists_everything(
    fixture_url: str, era: TsClientEra
) -> None:
    """Spec-mandated: 2025-11-25 is the initialize handshake (era `legacy`), 2026-07-28 is stateless (`modern`);
    both list the same tools, resources, templates and prompts (lists MUST NOT vary per connection)."""
    run = await run_ts_client(
        fixture_url,
        [{"op": "listTools"}, {"op": "listResources"}, {"op": "listResourceTemplates"}, {"op": "listPrompts"}],
        era=era,
    )
    assert (run["era"], run["protocolVersion"]) == ("legacy" if era == "2025-11-25" else "modern", era)
    assert run["serverInfo"]["name"] == "mcp-conformance-fixture"
    tools, resources, templates, prompts = _results(run)
    assert [tool["name"] for tool in tools["tools"]] == [tool["name"] for tool in TOOLS]
    assert [item["uri"] for item in resources["resources"]] == [item["uri"] for item in RESOURCES]
    assert [item["uriTemplate"] for item in templates["resourceTemplates"]] == ["test://template/{id}/data"]
    assert len(templates["resourceTemplates"]) == len(RESOURCE_TEMPLATES)
    assert [prompt["name"] for prompt in prompts["prompts"]] == [prompt["name"] for prompt in PROMPTS]


@pytest.mark.parametrize("era", ERAS)
async def test_the_ts_client_calls_reads_gets_and_completes(fixture_url: str, era: TsClientEra) -> None:
    """Spec-mandated shapes of tools/call, resources/read (a template URI), prompts/get and completion/complete;
    the texts are the fixture's, as the conformance scenarios require them."""
    run = await run_ts_client(
        fixture_url,
        [
            {"op": "callTool", "name": "test_simple_text"},
            {"op": "readResource", "uri": "test://template/42/data"},
            {"op": "getPrompt", "name": "test_prompt_with_arguments", "arguments": {"arg1": "a", "arg2": "b"}},
            {
                "op": "complete",
                "ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                "argument": {"name": "arg1", "value": "pa"},
            },
        ],
        era=era,
    )
    called, read, prompt, completed = _results(run)
    assert _text(called) == "This is a simple text response for testing."
    assert json.loads(read["contents"][0]["text"]) == {"id": "42", "templateTest": True, "data": "Data for ID: 42"}
    assert prompt["messages"][0]["content"]["text"] == "Prompt with arguments: arg1='a', arg2='b'"
    assert completed["completion"]["values"] == ["paris", "park", "party"]


@pytest.mark.parametrize("era", ERAS)
async def test_the_ts_client_answers_elicitation_sampling_and_roots_with_its_canned_answers(
    fixture_url: str, era: TsClientEra
) -> None:
    """Spec-mandated: on 2025-11-25 the server asks with requests on the call's stream, on 2026-07-28 with an
    InputRequiredResult the client answers by retrying (the SDK does it); either way the client sees the same
    requests, in order, and the tool the same answers."""
    run = await run_ts_client(
        fixture_url,
        [
            {"op": "callTool", "name": "test_input_required_result_multi_round"},
            {"op": "callTool", "name": "test_input_required_result_multiple_inputs"},
        ],
        era=era,
        answers={
            "elicitation": [
                {"action": "accept", "content": {"name": "Ada"}},
                {"action": "accept", "content": {"color": "blue"}},
                {"action": "accept", "content": {"name": "Grace"}},
            ],
            "sampling": {"role": "assistant", "content": {"type": "text", "text": "Hello!"}, "model": "canned"},
            "roots": {"roots": [{"uri": "file:///work", "name": "work"}]},
        },
    )
    multi_round, multiple = _results(run)
    assert _text(multi_round) == "name=Ada; color=blue"
    assert _text(multiple) == "name=Grace; greeting=Hello!; roots=file:///work"
    requests = cast(list[dict[str, Any]], run["requests"])
    asked = [
        (request["method"], cast(dict[str, Any], request.get("params") or {}).get("message")) for request in requests
    ]
    assert asked == [
        ("elicitation/create", "Step 1: What is your name?"),
        ("elicitation/create", "Step 2: What is your favorite color?"),
        ("elicitation/create", "What is your name?"),
        ("sampling/createMessage", None),
        ("roots/list", None),
    ]


@pytest.mark.parametrize("era", ERAS)
async def test_the_ts_client_reports_log_messages_and_progress(fixture_url: str, era: TsClientEra) -> None:
    """Spec-mandated: log messages only once a level is set (2025-11-25: logging/setLevel; 2026-07-28: the
    request's `_meta` logLevel, and none at all without it), and progress for a call that asked for it."""
    run = await run_ts_client(
        fixture_url,
        [
            {"op": "callTool", "name": "test_tool_with_progress", "progress": True},
            {"op": "setLoggingLevel", "level": "warning"},
            {"op": "callTool", "name": "test_logging_tool"},
        ],
        era=era,
    )
    _results(run)
    progress = [n["params"]["progress"] for n in run["notifications"] if n["method"] == "notifications/progress"]
    assert progress == [0, 50, 100]
    levels = [n["params"]["level"] for n in run["notifications"] if n["method"] == "notifications/message"]
    assert levels == ["warning", "error", "critical", "alert", "emergency"]


@pytest.mark.parametrize("era", ERAS)
async def test_the_ts_client_sends_its_headers_on_every_request(fixture_url: str, era: TsClientEra) -> None:
    """Our driver's contract: `headers` ride every HTTP request (a bearer token, for the hub)."""
    run = await run_ts_client(
        fixture_url,
        [{"op": "callTool", "name": "test_request_headers"}],
        era=era,
        headers={"Authorization": "Bearer ts-client-test"},
    )
    (called,) = _results(run)
    assert json.loads(_text(called))["authorization"] == "Bearer ts-client-test"


async def test_a_failing_operation_is_reported_and_the_next_one_still_runs(fixture_url: str) -> None:
    """Spec-mandated: an unknown tool is a JSON-RPC error -32602; our driver reports it and goes on."""
    run = await run_ts_client(
        fixture_url,
        [{"op": "callTool", "name": "no_such_tool"}, {"op": "callTool", "name": "test_error_handling"}],
        era="2026-07-28",
    )
    unknown, failing_tool = run["results"]
    assert (unknown["ok"], unknown["error"]["code"]) == (False, -32602)
    assert failing_tool["ok"]
    assert failing_tool["result"]["isError"] is True


async def test_a_server_that_cannot_be_reached_is_a_fatal_run() -> None:
    """Our driver's contract: no connection, no results; the document says why and the exit code is 1."""
    require_npm_peers()
    run = await run_ts_client(f"http://127.0.0.1:{free_port()}/mcp", [{"op": "listTools"}], check=False)
    assert run["fatal"].startswith("connect failed")
    assert "results" in run
    assert run["results"] == []
