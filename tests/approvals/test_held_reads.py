"""Approval rules that name prompts and resources (issue 9 §7; threats T19, T20).

A rule's `prompts` and `resources` globs hold a `prompts/get` or a `resources/read` exactly like a tool call:
a durable action bound to the agent, the method, the prompt or URI, its definition and the arguments; an
approver decides; getting or reading again collects the outcome, which ran once. While there is no result,
the caller gets JSON-RPC -32003 with `data.error = "approval_required"` and the action (a prompt get or a read
has no `isError` result to carry it). The downstream is `tests/fixtures/features_server.py` over stdio; the
agent is an SDK `mcp.Client` in both eras with a bearer token.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_hub.config.settings import ApprovalRule
from mcp_hub.domain import ActionStatus
from tests.approvals.holding import agent_token, approvals_toml, approver, downstream_runs
from tests.authz.conftest import bearer
from tests.conftest import RunningHub, connector_toml, running_hub, unique, write_config
from tests.features import FEATURES_SERVER, PYTHON

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
APPROVAL_META = "io.github.mcp-hub/approval"
SECRET_NOTE = "mcp-hub://fs/notes://2"
RULES = f"""
[[approvals.rules]]
name = "greetings"
prompts = ["fs__greet"]

[[approvals.rules]]
name = "secret-notes"
resources = ["{SECRET_NOTE}", "mcp-hub://fs/docs://secret/*"]
"""


FS_CONNECTOR = connector_toml(
    id="fs", transport="stdio", protocol="legacy", command=PYTHON, args=[str(FEATURES_SERVER)]
)


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    config = write_config(
        tmp_path_factory.mktemp("held-reads"), {"fs": FS_CONNECTOR}, approvals_toml(rules=RULES), auth=True
    )
    async with running_hub(config) as running:
        await running.wait_ready("fs")
        yield running


async def token_for(hub: RunningHub) -> str:
    return await agent_token(hub, unique("reader"), "prompt:fs__*", "resource:mcp-hub://fs/*")


async def get_prompt(
    hub: RunningHub, token: str, era: str, name: str, arguments: dict[str, str]
) -> types.GetPromptResult | MCPError:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        try:
            return await client.get_prompt(name, arguments)
        except MCPError as error:
            return error


async def read(hub: RunningHub, token: str, era: str, uri: str) -> types.ReadResourceResult | MCPError:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        try:
            return await client.read_resource(uri)
        except MCPError as error:
            return error


def held(answer: object) -> tuple[dict[str, Any], str]:
    """The action summary and the message of a held request's error, after checking the error's shape."""
    assert isinstance(answer, MCPError), answer
    assert answer.error.code == -32003
    data: dict[str, Any] = answer.error.data
    assert data["error"] == "approval_required"
    return data[APPROVAL_META], answer.error.message


@pytest.mark.parametrize("era", ERAS)
async def test_a_held_prompt_waits_for_approval_and_the_approved_get_runs_once(hub: RunningHub, era: str) -> None:
    """Pending → approved → collected by getting again with the same arguments: the downstream ran once, the
    result is the prompt's (embedded resources under public URIs); other prompts are not held."""
    token = await token_for(hub)
    runs_before = await downstream_runs(hub, "fs__greet")

    summary, message = held(await get_prompt(hub, token, era, "fs__greet", {"name": "ada"}))
    assert summary["status"] == ActionStatus.PENDING
    assert summary["link"].endswith(f"/approvals/{summary['id']}")
    assert "Get this prompt again with exactly the same arguments" in message
    action = await hub.hub.approvals.get(summary["id"])
    assert action is not None
    assert (action.method, action.public_name, action.downstream_name) == ("prompts/get", "fs__greet", "greet")
    assert action.arguments == {"name": "ada"}
    assert await downstream_runs(hub, "fs__greet") == runs_before

    await hub.hub.approvals.decide(summary["id"], await approver(hub, unique("alice")), True, None)
    result = await get_prompt(hub, token, era, "fs__greet", {"name": "ada"})

    assert isinstance(result, types.GetPromptResult), result
    greeting, embedded = result.messages
    assert isinstance(greeting.content, types.TextContent)
    assert "ada" in greeting.content.text
    assert isinstance(embedded.content, types.EmbeddedResource)
    assert str(embedded.content.resource.uri) == "mcp-hub://fs/notes://1"
    assert await downstream_runs(hub, "fs__greet") == runs_before + 1
    farewell = await get_prompt(hub, token, era, "fs__farewell", {})
    assert isinstance(farewell, types.GetPromptResult)
    assert farewell.messages


@pytest.mark.parametrize("era", ERAS)
async def test_other_arguments_make_another_action(hub: RunningHub, era: str) -> None:
    """T19: an approval is bound to the exact arguments."""
    token = await token_for(hub)
    first, _ = held(await get_prompt(hub, token, era, "fs__greet", {"name": "ada"}))
    again, _ = held(await get_prompt(hub, token, era, "fs__greet", {"name": "ada"}))
    other, _ = held(await get_prompt(hub, token, era, "fs__greet", {"name": "mallory"}))

    assert first["id"] == again["id"]
    assert other["id"] != first["id"]


@pytest.mark.parametrize("era", ERAS)
async def test_a_denied_read_tells_the_reason_and_reads_nothing(hub: RunningHub, era: str) -> None:
    token = await token_for(hub)
    pending, _ = held(await read(hub, token, era, SECRET_NOTE))
    action_id = pending["id"]
    action = await hub.hub.approvals.get(action_id)
    assert action is not None
    assert (action.method, action.downstream_name) == ("resources/read", "notes://2")

    await hub.hub.approvals.decide(action_id, await approver(hub, unique("bob")), False, "not for agents")
    denied, message = held(await read(hub, token, era, SECRET_NOTE))

    assert denied["status"] == ActionStatus.DENIED
    assert "denied by" in message
    assert "not for agents" in message
    assert await downstream_runs(hub, SECRET_NOTE) == 0
    open_note = await read(hub, token, era, "mcp-hub://fs/notes://1")
    assert isinstance(open_note, types.ReadResourceResult)
    assert isinstance(open_note.contents[0], types.TextResourceContents)


@pytest.mark.parametrize("era", ERAS)
async def test_a_read_of_a_template_expansion_is_held_by_its_uri(hub: RunningHub, era: str) -> None:
    """A rule names the concrete URIs read (here a glob over `docs://{+path}` expansions); the action is bound
    to the template's definition and runs the read the approver saw."""
    token = await token_for(hub)
    uri = f"mcp-hub://fs/docs://secret/{unique('plan')}.txt"
    pending, _ = held(await read(hub, token, era, uri))

    await hub.hub.approvals.decide(pending["id"], await approver(hub, unique("carol")), True, None)
    result = await read(hub, token, era, uri)

    assert isinstance(result, types.ReadResourceResult), result
    [contents] = result.contents
    assert isinstance(contents, types.TextResourceContents)
    assert str(contents.uri) == uri
    assert await downstream_runs(hub, uri) == 1
    public = await read(hub, token, era, "mcp-hub://fs/docs://public/plan.txt")
    assert isinstance(public, types.ReadResourceResult)
    assert public.contents


async def test_without_authentication_a_held_prompt_is_refused(tmp_path: Path) -> None:
    """Fail closed: an approval is bound to an agent, and with auth off there is none."""
    config = write_config(tmp_path, {"fs": FS_CONNECTOR}, approvals_toml(rules=RULES))
    async with running_hub(config) as open_hub:
        await open_hub.wait_ready("fs")
        async with Client(open_hub.url, mode="2026-07-28") as client:
            with pytest.raises(MCPError) as refused:
                await client.get_prompt("fs__greet", {"name": "ada"})
            farewell = await client.get_prompt("fs__farewell", {})

    assert refused.value.error.code == -32003
    assert "needs an authenticated agent" in refused.value.error.message
    assert farewell.messages


def test_a_rule_must_name_something() -> None:
    with pytest.raises(ValidationError, match="name at least one glob in tools, prompts or resources"):
        ApprovalRule(name="nothing")
    assert ApprovalRule(name="reads", resources=["mcp-hub://*"]).tools == []
