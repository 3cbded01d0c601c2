"""Approval rules over sequences of calls: a toxic flow's sink is held (threat T18; our design, docs/approvals.md).

The scripted flow: an agent reads untrusted content (`fetch__echo`), then private data (`git__echo`), then writes
to a public sink (`chat__echo`); the rule `exfiltration` holds the sink when both came before it, by the same
caller, within its window. Three fault fixture servers stand for the three downstreams; agents call a real hub
with the SDK's `mcp.Client` in both eras; whether a call ran is read from the audit trail. Redis, where named, is
the real one the limits tests use (`MCP_HUB_TEST_REDIS_URL`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from mcp_hub.approvals.history import CallHistory, MemoryHistory
from mcp_hub.approvals.policy import ApprovalPolicy
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.authz.decisions import Principal
from mcp_hub.config.settings import DATABASE_URL_ENV, ApprovalRule, LimitsSection, load_settings
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.db.engine import upgrade
from mcp_hub.domain import ActionStatus, AgentId, ConnectorId, UserId
from tests.approvals.holding import agent_token, approvals_toml, approver, downstream_runs
from tests.authz.conftest import bearer, client_credentials_token, make_agent
from tests.authz.test_stdio_auth import START_TIMEOUT, admin, stdio_client_of
from tests.cli_process import run_cli
from tests.conftest import RunningHub, fault_connector, running_hub, write_config
from tests.test_limits import REDIS_URL, require_redis
from tests.test_stdio_front_door import Era

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
UNTRUSTED, PRIVATE, SINK = "fetch__echo", "git__echo", "chat__echo"
EXFILTRATION = """
[[approvals.rules]]
name = "exfiltration"
tools = ["chat__*"]
after = ["fetch__*", "git__*"]
within_seconds = 900

[[approvals.rules]]
name = "reviewed-reads"
tools = ["git__counted"]

[[approvals.rules]]
name = "misspelt"
tools = ["chat__*"]
after = ["fecth__*"]
within_seconds = 60
"""
GRANTS = ("tool:fetch__*", "tool:git__*", "tool:chat__*")


def flow_config(directory: Path, limits: str = "") -> Path:
    connectors = {connector: fault_connector(connector) for connector in ("fetch", "git", "chat")}
    return write_config(directory, connectors, approvals_toml(rules=EXFILTRATION) + limits, auth=True)


@pytest.fixture(scope="module")
def flow_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return flow_config(tmp_path_factory.mktemp("flows"))


@pytest.fixture(scope="module")
async def flow_hub(flow_config_path: Path) -> AsyncGenerator[RunningHub]:
    """One hub for the module (each test makes agents of its own names, so their histories do not meet)."""
    async with running_hub(flow_config_path) as hub:
        await hub.wait_ready("fetch", "git", "chat")
        yield hub


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def call(hub: RunningHub, token: str, tool: str, era: str = "legacy") -> types.CallToolResult:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        return await client.call_tool(tool, {"text": f"{tool} by {token[-6:]}"})


async def held_actions(hub: RunningHub, agent_name: str) -> list[ActionRecord]:
    actions = await hub.hub.approvals.list_actions([ActionStatus.PENDING], limit=1000)
    return [action for action in actions if action.agent_name == agent_name]


def reasons_of(action: ActionRecord) -> list[str]:
    """The parts of the first rule that held `action`, as recorded when it was held."""
    assert action.hold_reasons is not None
    return list(action.hold_reasons[0]["because"])


async def sink_runs(hub: RunningHub) -> int:
    return await downstream_runs(hub, SINK)


@pytest.mark.parametrize("era", ERAS)
async def test_the_sink_after_untrusted_content_and_private_data_is_held_naming_the_earlier_calls(
    flow_hub: RunningHub, era: str
) -> None:
    """T18: fetch, then a private read, then a post: the post is held, and its recorded reasons name both earlier
    calls and how long ago they were made; the approver's briefing shows them as still holding it."""
    name = unique("flow")
    token = await agent_token(flow_hub, name, *GRANTS)
    ran_before = await sink_runs(flow_hub)
    for tool in (UNTRUSTED, PRIVATE):
        assert not (await call(flow_hub, token, tool, era)).is_error
    held = await call(flow_hub, token, SINK, era)
    assert held.is_error
    assert "needs a human's approval" in str(held.content[0])
    assert await sink_runs(flow_hub) == ran_before
    [action] = await held_actions(flow_hub, name)
    assert action.rules == ("exfiltration",)
    because = reasons_of(action)
    assert any(part.startswith(f"called `{UNTRUSTED}` ") and "s ago (matches `fetch__*`" in part for part in because)
    assert any(part.startswith(f"called `{PRIVATE}` ") and "matches `git__*`" in part for part in because)
    why = flow_hub.hub.approvals.briefing(action).why
    assert why.recorded
    assert not why.changed, why


async def test_the_sink_alone_or_after_only_one_of_the_two_runs(flow_hub: RunningHub) -> None:
    """T18: each `after` glob must have matched an earlier call; the sink alone, or after one of the two, runs,
    and once the second comes the next sink is held (in whichever order the two came)."""
    name = unique("partial")
    token = await agent_token(flow_hub, name, *GRANTS)
    ran_before = await sink_runs(flow_hub)
    assert not (await call(flow_hub, token, SINK)).is_error
    assert not (await call(flow_hub, token, PRIVATE)).is_error
    assert not (await call(flow_hub, token, SINK)).is_error
    assert await sink_runs(flow_hub) == ran_before + 2
    assert await held_actions(flow_hub, name) == []
    assert not (await call(flow_hub, token, UNTRUSTED)).is_error
    assert (await call(flow_hub, token, SINK)).is_error
    assert await sink_runs(flow_hub) == ran_before + 2
    assert len(await held_actions(flow_hub, name)) == 1


async def test_another_agents_history_does_not_count(flow_hub: RunningHub) -> None:
    """T18, per caller: one agent's fetch and private read do not hold another agent's post."""
    reader, poster = unique("reader"), unique("poster")
    reader_token = await agent_token(flow_hub, reader, *GRANTS)
    poster_token = await agent_token(flow_hub, poster, *GRANTS)
    for tool in (UNTRUSTED, PRIVATE):
        assert not (await call(flow_hub, reader_token, tool)).is_error
    assert not (await call(flow_hub, poster_token, SINK)).is_error
    assert await held_actions(flow_hub, poster) == []
    assert (await call(flow_hub, reader_token, SINK)).is_error
    assert len(await held_actions(flow_hub, reader)) == 1


async def test_a_held_call_is_recorded_once_approved_and_run(flow_hub: RunningHub) -> None:
    """T18, our choice: a held call is not yet admitted (it read nothing); once approved and run, it is recorded
    like any other, and the next post is held."""
    name = unique("approved")
    token = await agent_token(flow_hub, name, *GRANTS)
    reviewed = {"key": name}
    assert not (await call(flow_hub, token, UNTRUSTED)).is_error
    async with bearer(token) as http, Client(streamable_http_client(flow_hub.url, http_client=http)) as client:
        assert (await client.call_tool("git__counted", reviewed)).is_error
        assert not (await call(flow_hub, token, SINK)).is_error
        [held] = await held_actions(flow_hub, name)
        user = await approver(flow_hub, unique("alice"))
        await flow_hub.hub.approvals.decide(held.id, user, True, None)
        ran = await client.call_tool("git__counted", reviewed)
        assert not ran.is_error, ran
    assert (await call(flow_hub, token, SINK)).is_error
    [sink] = [action for action in await held_actions(flow_hub, name) if action.public_name == SINK]
    assert any(part.startswith("called `git__counted` ") for part in reasons_of(sink))


async def test_a_refused_call_is_not_recorded(flow_hub: RunningHub) -> None:
    """T18, our choice: a call is recorded when it is admitted to run; one the grants refuse fetched nothing."""
    name = unique("refused")
    token = await agent_token(flow_hub, name, "tool:git__*", "tool:chat__*")
    async with bearer(token) as http, Client(streamable_http_client(flow_hub.url, http_client=http)) as client:
        with pytest.raises(MCPError, match="may not call fetch__echo"):
            await client.call_tool(UNTRUSTED, {"text": "refused"})
    assert not (await call(flow_hub, token, PRIVATE)).is_error
    assert not (await call(flow_hub, token, SINK)).is_error
    assert await held_actions(flow_hub, name) == []


async def test_the_command_line_shows_a_rules_sequence(flow_hub: RunningHub, flow_config_path: Path) -> None:
    """T18: `mcp-hub approvals rules` shows `after` and `within_seconds` beside the rest of each rule, and warns of
    a glob that matches no tool the hub saw (a misspelt `after` would never hold anything)."""
    env = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}
    plain = await run_cli(["approvals", "rules", "--config", str(flow_config_path)], env=env, within_seconds=40)
    assert plain.returncode == 0, plain.stderr
    warnings = [line for line in plain.stderr.decode().splitlines() if "warning" in line]
    assert warnings == [
        "mcp-hub: warning: rule `misspelt`: after glob `fecth__*` matches none of the "
        f"{len(flow_hub.hub.catalog.tools)} tools the hub last saw (public names are <connector>__<tool>: see "
        "`mcp-hub catalog`)"
    ]
    assert (
        "  after:      fetch__*, git__* (each called by the same agent and user within 900 s)"
        in plain.stdout.decode().splitlines()
    )
    listed = await run_cli(
        ["approvals", "rules", "--json", "--config", str(flow_config_path)], env=env, within_seconds=40
    )
    exfiltration, reviewed, _misspelt = json.loads(listed.stdout)
    assert (exfiltration["name"], exfiltration["after"], exfiltration["within_seconds"]) == (
        "exfiltration",
        ["fetch__*", "git__*"],
        900,
    )
    assert (reviewed["name"], reviewed["after"], reviewed["within_seconds"]) == ("reviewed-reads", [], None)


STDIO_RULE = """
[[approvals.rules]]
name = "exfiltration"
tools = ["faults__counted"]
after = ["faults__echo", "faults__meta"]
within_seconds = 900
"""


@pytest.mark.parametrize("era", ERAS)
async def test_over_stdio_the_sink_after_both_earlier_calls_is_held(tmp_path: Path, era: Era) -> None:
    """T18 on the stdio front door (`mcp-hub stdio --agent`): one fault server's tools stand for the three
    (`echo` untrusted, `meta` private, `counted` the sink); the sink runs after one, and is held after both."""
    config = write_config(tmp_path, {"faults": fault_connector()}, approvals_toml(rules=STDIO_RULE), auth=True)
    await upgrade(load_settings(config).database.url)
    async with admin(config) as tools:
        await tools.auth.admin.create_agent("local", ["tool:faults__*"])
    with anyio.fail_after(START_TIMEOUT):
        # The SDK starts the hub with a minimal environment: PYTHONPATH, where set, names the code under test.
        source = {key: os.environ[key] for key in ("PYTHONPATH",) if key in os.environ}
        async with stdio_client_of(config, era, args=("--agent", "local"), env=source) as client:
            assert not (await client.call_tool("faults__echo", {"text": "untrusted"})).is_error
            ran = await client.call_tool("faults__counted", {"key": era})
            assert not (await client.call_tool("faults__meta", {})).is_error
            held = await client.call_tool("faults__counted", {"key": era})
    assert not ran.is_error, ran
    assert held.is_error
    assert "needs a human's approval" in str(held.content[0])
    assert "rules: exfiltration" in str(held.content[0])


def sequence_rule(within_seconds: int = 900) -> ApprovalRule:
    return ApprovalRule(
        name="exfiltration", tools=["chat__*"], after=["fetch__*", "git__*"], within_seconds=within_seconds
    )


def sink_subject() -> HeldSubject:
    return HeldSubject(
        method="tools/call",
        public_name=SINK,
        connector_id=ConnectorId("chat"),
        downstream_name="echo",
        sha256="0" * 64,
        description="",
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_calls_older_than_the_window_do_not_count() -> None:
    """T18: `within_seconds` bounds the sequence: 900 s after the fetch, the post is held; one second later the
    fetch is out of the window and the post may run. (The in-process history on a clock the test turns.)"""
    clock = Clock()
    rule = sequence_rule(900)
    history = CallHistory([rule], MemoryHistory(900, clock=clock))
    policy = ApprovalPolicy([rule], [])
    principal = Principal(AgentId("agt_window"), "window")
    await history.record(principal, UNTRUSTED)
    clock.now += 300
    await history.record(principal, PRIVATE)
    clock.now += 600
    held = policy.requirement("window", sink_subject(), {}, await history.earlier(principal))
    assert held is not None
    assert f"called `{UNTRUSTED}` 15 min ago (matches `fetch__*` of `after`, within 900 s)" in held.matches[0].because
    clock.now += 1
    assert policy.requirement("window", sink_subject(), {}, await history.earlier(principal)) is None


async def test_the_history_of_a_user_delegated_caller_is_that_users() -> None:
    """T18, per caller: an agent acting for one user (a user-delegated token) does not carry that user's earlier
    calls into its calls for another user, nor into its own."""
    rule = sequence_rule()
    history = CallHistory([rule], MemoryHistory(900))
    policy = ApprovalPolicy([rule], [])
    agent = AgentId("agt_shared")
    for_ann, for_bob = Principal(agent, "shared", UserId("usr_ann")), Principal(agent, "shared", UserId("usr_bob"))
    for tool in (UNTRUSTED, PRIVATE):
        await history.record(for_ann, tool)
    for caller in (for_bob, Principal(agent, "shared")):
        assert policy.requirement("shared", sink_subject(), {}, await history.earlier(caller)) is None
    assert policy.requirement("shared", sink_subject(), {}, await history.earlier(for_ann)) is not None


async def test_a_full_in_process_history_that_forgot_a_caller_holds_rather_than_reads_empty() -> None:
    """T18, fail closed: past its bound the in-process history forgets the caller idle longest; while that
    caller's window lasts, a caller with no history is unknown, so the sink is held and the reason says why."""
    clock = Clock()
    rule = sequence_rule(60)
    history = CallHistory([rule], MemoryHistory(60, max_callers=2, clock=clock))
    policy = ApprovalPolicy([rule], [])
    callers = [Principal(AgentId(f"agt_{index}"), f"agent{index}") for index in range(3)]
    for caller in callers:
        await history.record(caller, UNTRUSTED)
    held = policy.requirement("agent0", sink_subject(), {}, await history.earlier(callers[0]))
    assert held is not None
    assert "could not be read (this hub's in-process history was full" in held.matches[0].because[-1]
    clock.now += 61
    assert policy.requirement("agent0", sink_subject(), {}, await history.earlier(callers[0])) is None


def test_only_tools_an_after_glob_names_are_watched() -> None:
    """Issue 12 (per-call budget): a tool no `after` glob matches is never recorded."""
    history = CallHistory([sequence_rule()], MemoryHistory(900))
    assert history.watches(UNTRUSTED)
    assert history.watches(PRIVATE)
    assert not history.watches(SINK)
    assert CallHistory.for_rules([ApprovalRule(name="plain", tools=["chat__*"])], LimitsSection()) is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"after": ["fetch__*"]}, "`after` needs `within_seconds`"),
        ({"within_seconds": 60}, "`within_seconds` bounds `after`"),
        ({"after": ["fetch__*"], "within_seconds": 0}, "greater than or equal to 1"),
        ({"after": ["fetch__*"], "within_seconds": 86_401}, "less than or equal to 86400"),
        ({"after": [f"t{index}__*" for index in range(9)], "within_seconds": 60}, "at most 8 items"),
    ],
)
def test_sequence_fields_are_bounded(fields: dict[str, object], says: str) -> None:
    """T18 (bounded): `after` needs a window of 1 s to a day, and names at most 8 globs."""
    with pytest.raises(ValidationError, match=says):
        ApprovalRule.model_validate({"name": "r", "tools": ["chat__*"], **fields})


async def test_two_replicas_sharing_redis_share_the_history(tmp_path: Path) -> None:
    """T18 across replicas: the fetch made through one hub and the private read through another hold the post
    made through the first (the history is in the limits' Redis)."""
    await require_redis()
    limits = f'[limits]\nredis_url = "{REDIS_URL}"\nredis_key_prefix = "test:{uuid.uuid4().hex}:"\n'
    config = flow_config(tmp_path, limits)
    async with running_hub(config) as first, running_hub(config) as second:
        await first.wait_ready("fetch", "git", "chat")
        await second.wait_ready("fetch", "git", "chat")
        # One agent (one database); each replica issues it a token for its own URL, as clients behind a load
        # balancer would get for the shared one.
        agent = await make_agent(first, unique("replicas"), *GRANTS)
        token, second_token = [await client_credentials_token(hub, agent) for hub in (first, second)]
        assert not (await call(first, token, UNTRUSTED)).is_error
        assert not (await call(first, token, SINK)).is_error
        assert not (await call(second, second_token, PRIVATE)).is_error
        assert (await call(first, token, SINK, "2026-07-28")).is_error
        name = agent.name
        [action] = await held_actions(first, name)
        assert any(part.startswith(f"called `{PRIVATE}`") for part in reasons_of(action))


async def test_an_unreachable_history_holds_the_sink_and_says_why(tmp_path: Path) -> None:
    """T18, fail closed: with the limits' Redis unreachable (the limits themselves fail open here), the sink of a
    sequence rule is held and its reason names the unreadable history; the fetch itself runs."""
    limits = '[limits]\nredis_url = "redis://127.0.0.1:1/0"\non_backend_failure = "open"\n'
    async with running_hub(flow_config(tmp_path, limits)) as hub:
        await hub.wait_ready("fetch", "git", "chat")
        name = unique("unreachable")
        token = await agent_token(hub, name, *GRANTS)
        assert not (await call(hub, token, UNTRUSTED)).is_error
        assert (await call(hub, token, SINK)).is_error
        [action] = await held_actions(hub, name)
        [unreadable] = [part for part in reasons_of(action) if "could not be read" in part]
        # The fetch could not be recorded: until its window has passed, this replica cannot tell what it missed.
        assert "this replica could not record an earlier call (Redis unreachable)" in unreadable, unreadable
