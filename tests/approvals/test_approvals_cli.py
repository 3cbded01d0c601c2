"""`mcp-hub approvals list|show|approve|deny`, run as operators run it: a process of its own
(forked from one that imported the command already, tests/cli_process.py).

The hub runs in this process (fault fixture server as `faults`, `faults__echo` held for 30 s); the command
works on the same database, and the held call sees its decision. Mandated by issue 4 §5 and threat T20
(`--as USER` gets the same separation-of-duties checks as the web page); the output format is ours.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncGenerator
from pathlib import Path
from subprocess import CompletedProcess

import anyio
import pytest
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from mcp_hub.config.settings import DATABASE_URL_ENV
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import Role
from tests.authz.conftest import AgentCredentials, auth_service, bearer, client_credentials_token, make_agent
from tests.cli_process import run_cli
from tests.conftest import RunningHub, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

MCP_HUB = Path(sys.executable).parent / "mcp-hub"
RESULTS: dict[str, CallToolResult] = {}
APPROVALS = """
[approvals]
# Long: each `mcp-hub` subprocess imports the whole hub, which takes seconds on a loaded machine, and the
# call must still be held when the decision comes.
hold_seconds = 180

[[approvals.rules]]
name = "echo-needs-a-human"
tools = ["faults__echo"]
"""


def hub_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}


async def mcp_hub(config: Path, *args: str) -> CompletedProcess[bytes]:
    return await run_cli([*args, "--config", str(config)], env=hub_env(), within_seconds=40)


@pytest.fixture
async def hub_and_config(tmp_path: Path) -> AsyncGenerator[tuple[RunningHub, Path]]:
    config = write_config(tmp_path, {"faults": fault_connector()}, APPROVALS, auth=True)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        for name in ("alice", "bob"):
            await auth_service(hub).admin.create_user(name, Role.APPROVER, "a long enough password")
        yield hub, config


async def pending_action(
    tasks: TaskGroup, hub: RunningHub, agent: AgentCredentials, text: str
) -> tuple[ActionRecord, anyio.Event]:
    """Start a held echo call as `agent` in the background; its action once created, and an event set when
    the call returns (its result in `RESULTS[agent.name]`)."""
    created = anyio.Event()
    seen: list[ActionRecord] = []

    async def on_change(action: ActionRecord) -> None:
        if action.agent_name == agent.name and action.status == "pending":
            seen.append(action)
            created.set()

    hub.hub.feed.subscribe(on_change)
    returned = anyio.Event()

    async def call() -> None:
        token = await client_credentials_token(hub, agent)
        async with (
            bearer(token) as http,
            Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
        ):
            RESULTS[agent.name] = await client.call_tool("faults__echo", {"text": text})
        returned.set()

    tasks.start_soon(call)
    with anyio.fail_after(20):
        await created.wait()
    return seen[0], returned


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def test_list_show_and_approve_from_the_command_line(hub_and_config: tuple[RunningHub, Path]) -> None:
    hub, config = hub_and_config
    agent = await make_agent(hub, "cli-agent", "tool:faults__*")
    async with anyio.create_task_group() as tasks:
        action, returned = await pending_action(tasks, hub, agent, "from the terminal")
        listed = await mcp_hub(config, "approvals", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(row["id"], row["agent"], row["tool"]) for row in rows] == [(action.id, "cli-agent", "faults__echo")]
        plain = await mcp_hub(config, "approvals", "list")
        assert action.id in plain.stdout.decode()
        shown = await mcp_hub(config, "approvals", "show", action.id, "--json")
        assert json.loads(shown.stdout)["arguments"] == {"text": "from the terminal"}
        approved = await mcp_hub(config, "approvals", "approve", action.id, "--as", "alice", "--reason", "ok")
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.decode().strip() == f"action {action.id} approved by alice"
        assert b"approval_approved" in approved.stderr  # the command logs its audited decision like the hub
        with anyio.fail_after(60):
            await returned.wait()  # the hub polls the database and runs the call
        assert text_of(RESULTS[agent.name]) == "from the terminal"
        again = await mcp_hub(config, "approvals", "deny", action.id, "--as", "bob")
        assert again.returncode == 1
        assert "decisions are final" in again.stderr.decode()
        everything = await mcp_hub(config, "approvals", "list", "--all", "--json")
        assert [row["status"] for row in json.loads(everything.stdout)] == ["done"]
        told = (await mcp_hub(config, "approvals", "show", action.id)).stdout.decode()
        assert "decision:    Approved by alice at " in told  # issue 13 §3: the decision and the run apart
        assert "run:         Ran; finished at " in told


async def test_the_command_line_applies_separation_of_duties(hub_and_config: tuple[RunningHub, Path]) -> None:
    hub, config = hub_and_config
    agent = await make_agent(hub, "bobs-cli-agent", "tool:faults__*")
    await auth_service(hub).admin.set_agent_owner(agent.name, "bob")
    async with anyio.create_task_group() as tasks:
        action, returned = await pending_action(tasks, hub, agent, "self-service")
        own = await mcp_hub(config, "approvals", "approve", action.id, "--as", "bob")
        assert own.returncode == 1
        assert "you own the agent that asks" in own.stderr.decode()
        nobody = await mcp_hub(config, "approvals", "approve", action.id, "--as", "mallory")
        assert nobody.returncode == 1
        assert "no user 'mallory'" in nobody.stderr.decode()
        denied = await mcp_hub(config, "approvals", "deny", action.id, "--as", "alice", "--reason", "ask bob's lead")
        assert denied.returncode == 0, denied.stderr
        with anyio.fail_after(60):
            await returned.wait()
        assert "denied by alice: ask bob's lead" in text_of(RESULTS[agent.name])
    missing = await mcp_hub(config, "approvals", "show", "apv_nope")
    assert missing.returncode == 1
    assert "no action 'apv_nope'" in missing.stderr.decode()


async def test_the_command_line_prints_what_an_agent_wrote_escaped(hub_and_config: tuple[RunningHub, Path]) -> None:
    """T31: arguments are the agent's text; printed raw, an ESC or C1 CSI sequence would drive the approver's
    terminal (clear it, retitle it, hide the line) and a bidi override would reorder what the approver reads."""
    hub, config = hub_and_config
    agent = await make_agent(hub, "sly-agent", "tool:faults__*")
    hostile = "rm -r /tmp/x\x1b[2K\r\x9b2Kok \u202eevil"
    told = listed = ""
    async with anyio.create_task_group() as tasks:
        action, _ = await pending_action(tasks, hub, agent, hostile)
        told = (await mcp_hub(config, "approvals", "show", action.id)).stdout.decode()
        listed = (await mcp_hub(config, "approvals", "list")).stdout.decode()
        denied = await mcp_hub(config, "approvals", "deny", action.id, "--as", "alice")
        assert denied.returncode == 0, denied.stderr
    for printed in (told, listed):
        assert not any(char in printed for char in "\x1b\r\x9b\u202e"), printed
    assert "\\u001b[2K\\r\\x9b2Kok \\u202eevil" in told  # JSON escaped the C0 controls; C1 and bidi escaped after
