"""The hold path end to end (issue 4 §1-§4; threats T19, T20, T21).

An agent calls through the SDK's `mcp.Client` in both eras with its bearer token; an approver decides through
`ApprovalService.decide` (the approval pages are tested elsewhere). Whether the downstream ran is read from
the audit trail (one `ok` row per forwarded call). The behaviour is our design (issue 4); MCP leaves human
approval to the server.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.admin import identity
from mcp_hub.approvals.policy import ApprovalPolicy
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.settings import ApprovalRule
from mcp_hub.db.approval_store import ActionRecord, ApprovalStore
from mcp_hub.errors import ApprovalError
from tests.approvals.holding import (
    agent_token,
    approval_config,
    approval_hub,
    approver,
    downstream_runs,
)
from tests.authz.conftest import AgentCredentials, bearer, client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub

pytestmark = pytest.mark.anyio

ERAS = ["legacy", "2026-07-28"]
DANGEROUS = {"text": "rm -rf /srv/data"}
APPROVAL_META = "io.github.mcp-hub/approval"


async def call(
    hub: RunningHub,
    token: str,
    era: str,
    arguments: dict[str, Any],
    *,
    tool: str = "faults__echo",
    progress: Any = None,
) -> types.CallToolResult:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        return await client.call_tool(tool, arguments, progress_callback=progress)


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def action_id_of(result: types.CallToolResult) -> str:
    meta = result.meta or {}
    action_id: str = meta[APPROVAL_META]["id"]
    return action_id


class NewActions:
    """The pending actions this hub creates, as they are created (an `on_change` listener: no polling)."""

    def __init__(self, hub: RunningHub) -> None:
        self.created: list[ActionRecord] = []
        self._arrived = anyio.Event()
        hub.hub.approvals.on_change(self._on_change)

    async def _on_change(self, action: ActionRecord) -> None:
        if action.status == "pending":
            self.created.append(action)
            self._arrived.set()
            self._arrived = anyio.Event()

    async def next(self, count: int = 1) -> ActionRecord:
        with anyio.fail_after(20):
            while len(self.created) < count:
                await self._arrived.wait()
        return self.created[count - 1]


@asynccontextmanager
async def hub_with(tmp_path: Path, **settings: Any) -> AsyncGenerator[RunningHub]:
    async with approval_hub(approval_config(tmp_path, **settings)) as hub:
        yield hub


@pytest.mark.parametrize("era", ERAS)
async def test_a_call_approved_while_held_returns_the_downstreams_result_and_runs_once(
    tmp_path: Path, era: str
) -> None:
    """Issue 4 §3b, T19 (single use): the held request itself returns the result; the downstream ran once."""
    async with hub_with(tmp_path, hold_seconds=30) as hub:
        token = await agent_token(hub, "holder")
        user = await approver(hub)
        actions = NewActions(hub)
        outcome: list[types.CallToolResult] = []

        async def held_call() -> None:
            outcome.append(await call(hub, token, era, DANGEROUS))

        action_id = ""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(held_call)
            action = await actions.next()
            action_id = action.id
            await hub.hub.approvals.decide(action_id, user, True, "fine")
        runs = await downstream_runs(hub, "faults__echo")
        trail = [
            (row.outcome, row.detail or "")
            for row in reversed(await hub.hub.store.recent_audit(limit=20))
            if row.outcome.startswith("approval_")
        ]

    assert outcome[0].is_error is False
    assert text_of(outcome[0]) == DANGEROUS["text"]
    assert runs == 1
    # Issue 4 §6: every transition is audited, with who (the approver, the agent) and when (the row's time).
    assert [name for name, _ in trail] == [
        "approval_requested",
        "approval_approved",
        "approval_executed",
        "approval_returned",
    ]
    assert "by alice" in trail[1][1]
    assert all(action_id in detail for _, detail in trail)


@pytest.mark.parametrize("era", ERAS)
async def test_a_denial_while_held_is_a_tool_error_with_the_reason(tmp_path: Path, era: str) -> None:
    """Issue 4 §3b: the model sees the approver's reason; nothing ran."""
    async with hub_with(tmp_path, hold_seconds=30) as hub:
        token = await agent_token(hub, "holder")
        user = await approver(hub)
        actions = NewActions(hub)
        outcome: list[types.CallToolResult] = []

        async def held_call() -> None:
            outcome.append(await call(hub, token, era, DANGEROUS))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(held_call)
            action = await actions.next()
            await hub.hub.approvals.decide(action.id, user, False, "production data, ask the owner")
        runs = await downstream_runs(hub, "faults__echo")

    assert outcome[0].is_error is True
    assert "production data, ask the owner" in text_of(outcome[0])
    assert runs == 0


@pytest.mark.parametrize("era", ERAS)
async def test_past_the_hold_time_the_agent_is_told_to_call_again_and_collects_the_outcome(
    tmp_path: Path, era: str
) -> None:
    """Issue 4 §3c, T19: the pending answer names the action; the same call later collects it, no second action."""
    async with hub_with(tmp_path, hold_seconds=0.3) as hub:
        token = await agent_token(hub, "patient")
        user = await approver(hub)
        pending = await call(hub, token, era, DANGEROUS)
        action_id = action_id_of(pending)
        await hub.hub.approvals.decide(action_id, user, True, None)
        collected = await call(hub, token, era, DANGEROUS)
        actions = await hub.hub.approvals.store.list_actions(["done"])
        runs = await downstream_runs(hub, "faults__echo")

    assert pending.is_error is True
    assert action_id in text_of(pending)
    assert "Call this tool again with exactly the same arguments" in text_of(pending)
    assert collected.is_error is False
    assert text_of(collected) == DANGEROUS["text"]
    assert [action.id for action in actions] == [action_id]
    assert runs == 1


async def test_changed_arguments_after_an_approval_make_a_new_pending_action(tmp_path: Path) -> None:
    """T19: the approval is bound to the digest of the arguments: approve A, send B → B waits for its own."""
    async with hub_with(tmp_path, hold_seconds=0) as hub:
        token = await agent_token(hub, "switcher")
        user = await approver(hub)
        first = await call(hub, token, "2026-07-28", DANGEROUS)
        await hub.hub.approvals.decide(action_id_of(first), user, True, None)
        switched = await call(hub, token, "2026-07-28", {"text": "rm -rf /srv/other"})
        runs = await downstream_runs(hub, "faults__echo")

    assert switched.is_error is True
    assert action_id_of(switched) != action_id_of(first)
    assert "pending" in text_of(switched)
    assert runs == 0


async def test_a_call_whose_arguments_do_not_meet_the_condition_is_not_held(tmp_path: Path) -> None:
    """Issue 4 §1: conditions narrow a rule; other calls of the same tool run at once."""
    async with hub_with(tmp_path, hold_seconds=30) as hub:
        token = await agent_token(hub, "harmless")
        with anyio.fail_after(10):
            result = await call(hub, token, "legacy", {"text": "ls /srv"})
        actions = await hub.hub.approvals.store.list_actions(["pending"])

    assert result.is_error is False
    assert text_of(result) == "ls /srv"
    assert actions == []


async def test_an_action_past_its_expiry_counts_as_denied(tmp_path: Path) -> None:
    """T21: clock past the TTL → expired = denied; the agent is told, and no one can approve it afterwards."""
    async with hub_with(tmp_path, hold_seconds=0, pending_ttl_seconds=10) as hub:
        token = await agent_token(hub, "slowpoke")
        user = await approver(hub)
        pending = await call(hub, token, "legacy", DANGEROUS)
        later = ApprovalStore(hub.hub.engine, clock=lambda: datetime.now(UTC) + timedelta(seconds=11))
        later.on_expired = hub.hub.approvals.store.on_expired  # the hub's service audits what expires
        expired = await later.expire_due()
        told = await call(hub, token, "legacy", DANGEROUS)
        with pytest.raises(ApprovalError) as refused:
            await hub.hub.approvals.decide(action_id_of(pending), user, True, None)
        runs = await downstream_runs(hub, "faults__echo")
        await hub.hub.audit.flush()
        outcomes = [row.outcome for row in await hub.hub.store.recent_audit(limit=20)]

    assert expired == [action_id_of(pending)]
    assert told.is_error is True
    assert "expired without a decision, which counts as denied" in text_of(told)
    assert refused.value.kind == "conflict"
    assert runs == 0
    assert outcomes.count("approval_expired") == 1  # issue 4 §6: the expiry is in the audit trail, once


async def test_more_pending_actions_than_the_cap_are_refused(tmp_path: Path) -> None:
    """T21 (flooding): `max_pending_per_agent` pending actions, then the next distinct one is refused."""
    async with hub_with(tmp_path, hold_seconds=0, max_pending=2) as hub:
        token = await agent_token(hub, "flooder")
        answers = [await call(hub, token, "2026-07-28", {"text": f"rm /tmp/{n}"}) for n in range(3)]
        pending = await hub.hub.approvals.store.list_actions(["pending"])

    assert [answer.is_error for answer in answers] == [True, True, True]
    assert "already has 2 actions waiting" in text_of(answers[2])
    assert len(pending) == 2


@pytest.mark.parametrize("era", ERAS)
async def test_a_held_caller_that_asked_for_progress_receives_progress(tmp_path: Path, era: str) -> None:
    """Issue 4 §3b: progress notifications every `progress_interval_seconds` keep a held request alive."""
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with hub_with(tmp_path, hold_seconds=1) as hub:
        token = await agent_token(hub, "watcher")
        result = await call(hub, token, era, DANGEROUS, progress=on_progress)

    assert result.is_error is True
    assert len(messages) >= 2
    assert all(action_id_of(result) in message for message in messages)


async def test_a_pending_action_survives_a_restart_and_can_then_be_approved_and_collected(tmp_path: Path) -> None:
    """T21: pending actions are durable; after a restart on the same database they are decided and collected."""
    config = approval_config(tmp_path, hold_seconds=0)
    async with approval_hub(config) as hub:
        agent = await make_agent(hub, "survivor", "tool:faults__*")
        pending = await call(hub, await client_credentials_token(hub, agent), "legacy", DANGEROUS)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        token = await client_credentials_token(hub, agent)
        user = await approver(hub)
        still = await hub.hub.approvals.store.get(action_id_of(pending))
        await hub.hub.approvals.decide(action_id_of(pending), user, True, None)
        collected = await call(hub, token, "legacy", DANGEROUS)

    assert still is not None
    assert still.status == "pending"
    assert collected.is_error is False
    assert text_of(collected) == DANGEROUS["text"]


async def test_the_owner_of_the_agent_may_not_approve_and_a_second_decision_conflicts(tmp_path: Path) -> None:
    """T20: the agent's owner (`agents create --owner`) is refused; decisions are final (a second is a conflict)."""
    async with hub_with(tmp_path, hold_seconds=0) as hub:
        owner = await approver(hub, "olivia")
        other = await approver(hub, "bob")
        service = hub.hub.auth
        assert service is not None
        created = await identity.create_agent(service, "owned", ["tool:faults__*"], owner="olivia")
        assert created.client_secret is not None
        credentials = AgentCredentials("owned", created.agent.client_id, created.client_secret)
        token = await client_credentials_token(hub, credentials)
        pending = await call(hub, token, "legacy", DANGEROUS)
        with pytest.raises(ApprovalError) as by_owner:
            await hub.hub.approvals.decide(action_id_of(pending), owner, True, None)
        await hub.hub.approvals.decide(action_id_of(pending), other, False, "no")
        with pytest.raises(ApprovalError) as again:
            await hub.hub.approvals.decide(action_id_of(pending), other, True, "changed my mind")

    assert by_owner.value.kind == "forbidden"
    assert "own the agent" in str(by_owner.value)
    assert again.value.kind == "conflict"


async def test_a_sensitive_tool_of_a_connector_file_is_held_too(tmp_path: Path) -> None:
    """Issue 4 §1: `sensitive_tools` in a connector file holds its calls without any `[[approvals.rules]]`."""
    connector = fault_connector(sensitive_tools=["pid"])
    async with hub_with(tmp_path, hold_seconds=0, connector=connector, rules="") as hub:
        token = await agent_token(hub, "sensitive")
        held = await call(hub, token, "legacy", {}, tool="faults__pid")
        free = await call(hub, token, "legacy", {"text": "rm -rf /"})

    assert held.is_error is True
    assert "sensitive:faults" in text_of(held)
    assert free.is_error is False


def test_a_downstreams_read_only_hint_does_not_lower_the_bar() -> None:
    """Spec (tool annotations are untrusted hints) and issue 4 §1: a rule holds a tool that claims readOnlyHint."""
    catalog = Catalog()
    catalog.replace_connector(
        "faults",
        [
            {
                "name": "echo",
                "inputSchema": {"type": "object"},
                "annotations": {"readOnlyHint": True, "destructiveHint": False},
            }
        ],
    )
    tool = catalog.tools_by_name()["faults__echo"]
    policy = ApprovalPolicy([ApprovalRule(name="all-echo", tools=["faults__echo"])], [])

    requirement = policy.requirement("any-agent", tool, {"text": "hello"})

    assert requirement is not None
    assert requirement.rules == ("all-echo",)


def test_a_rule_matched_to_a_tool_once_still_decides_agents_and_arguments_call_by_call() -> None:
    """Our choice: the policy remembers which rules name a tool, never whether a call was held."""
    catalog = Catalog()
    catalog.replace_connector("faults", [{"name": "echo", "inputSchema": {"type": "object"}}])
    tool = catalog.tools_by_name()["faults__echo"]
    rule = ApprovalRule.model_validate(
        {
            "name": "long-echo",
            "tools": ["faults__*"],
            "agents": ["careful"],
            "when": [{"field": "text", "op": "exists"}],
        }
    )
    policy = ApprovalPolicy([rule], [])

    held = [
        policy.requirement(agent, tool, arguments) is not None
        for agent, arguments in [
            ("careful", {"text": "x"}),
            ("careful", {}),
            ("other", {"text": "x"}),
            ("careful", {"text": "y"}),
        ]
    ]

    assert held == [True, False, False, True]
