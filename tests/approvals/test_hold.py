"""The hold path end to end (issue 4 §1-§4; threats T19, T20, T21).

An agent calls through the SDK's `mcp.Client` in both eras with its bearer token; an approver decides through
`ApprovalService.decide` (the approval pages are tested elsewhere). Whether the downstream ran is read from
the audit trail (one `ok` row per forwarded call). The behaviour is our design (issue 4); MCP leaves human
approval to the server.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.approvals.policy import ApprovalPolicy
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.settings import ApprovalRule
from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.domain import ALL_STATUSES, ActionId, ActionStatus, AuditOutcome, ConnectorListing
from mcp_hub.errors import ApprovalError
from tests.approvals.holding import (
    LaterClock,
    TwoIdenticalFirstCalls,
    TwoRequestsRunTheApprovedCall,
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


class Transitions:
    """Every status the hub's actions pass through, in order (a subscriber of the hub's feed: no polling)."""

    def __init__(self, hub: RunningHub) -> None:
        self.seen: list[ActionRecord] = []
        self._changed = anyio.Event()
        hub.hub.feed.subscribe(self._on_change)

    async def _on_change(self, action: ActionRecord) -> None:
        self.seen.append(action)
        self._changed.set()
        self._changed = anyio.Event()

    async def reached(self, status: ActionStatus, count: int = 1) -> ActionRecord:
        """The `count`-th action to reach `status`, waiting for it."""
        with anyio.fail_after(20):
            while True:
                changed = self._changed
                matching = [action for action in self.seen if action.status == status]
                if len(matching) >= count:
                    return matching[count - 1]
                await changed.wait()


class NewActions(Transitions):
    """The pending actions this hub creates, as they are created."""

    async def next(self, count: int = 1) -> ActionRecord:
        return await self.reached(ActionStatus.PENDING, count)


class Callers:
    """Concurrent callers of one held call: which action each is held on (from its progress) or its answer."""

    def __init__(self) -> None:
        self.held_on: dict[int, str] = {}
        self.answers: dict[int, types.CallToolResult] = {}
        self._changed = anyio.Event()

    def progress_of(self, caller: int) -> Callable[[float, float | None, str | None], Awaitable[None]]:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            # "waiting for a human to approve action apv_..."
            self.held_on.setdefault(caller, (message or "").rsplit(" ", 1)[-1])
            self._change()

        return on_progress

    def answered(self, caller: int, answer: types.CallToolResult) -> None:
        self.answers[caller] = answer
        self._change()

    def _change(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def held_or_answered(self, *callers: int) -> None:
        with anyio.fail_after(20):
            while not set(callers) <= self.held_on.keys() | self.answers.keys():
                await self._changed.wait()


async def approve_all_pending(hub: RunningHub, approver_name: str = "alice") -> None:
    user = await approver(hub, approver_name)
    for action in await hub.hub.approvals.list_actions([ActionStatus.PENDING]):
        await hub.hub.approvals.decide(action.id, user, True, None)


async def approval_trail(hub: RunningHub) -> list[str]:
    await hub.hub.audit.flush()
    rows = reversed(await hub.hub.stores.audit.recent_audit(limit=50))
    return [row.outcome for row in rows if row.outcome.startswith("approval_")]


async def race_two_identical_first_calls(hub: RunningHub, era: str) -> tuple[Callers, list[ActionRecord]]:
    """Two identical held calls at once (the race pinned down by the hub's `TwoIdenticalFirstCalls` store), then
    approve whatever is pending; every action."""
    token = await agent_token(hub, "twin")
    callers = Callers()

    async def held_call(caller: int) -> None:
        callers.answered(caller, await call(hub, token, era, DANGEROUS, progress=callers.progress_of(caller)))

    async with anyio.create_task_group() as tasks:
        for caller in range(2):
            tasks.start_soon(held_call, caller)
        await callers.held_or_answered(0, 1)
        await approve_all_pending(hub)
    return callers, await hub.hub.approvals.list_actions(ALL_STATUSES)


BLOCKING_TOOL = "faults__wait_cancelled"
BLOCKING = {"key": "approved-run"}
BLOCKING_RULE = f"""
[[approvals.rules]]
name = "blocking"
tools = ["{BLOCKING_TOOL}"]
"""
"""Holds `faults__wait_cancelled`, which answers only once a `faults__slow` call with its key is cancelled."""


async def release_blocked_call(hub: RunningHub, token: str) -> None:
    """Let the approved `faults__wait_cancelled` answer: start a `faults__slow` with its key and cancel it."""
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async def slow_call(client: Client) -> None:
        await client.call_tool("faults__slow", {"seconds": 60, **BLOCKING}, progress_callback=on_progress)

    async with (
        bearer(token) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(slow_call, client)
        with anyio.fail_after(10):
            await started.wait()
        tasks.cancel_scope.cancel()


async def expire_as_if_later(hub: RunningHub, clock: LaterClock, *, seconds: float) -> list[ActionId]:
    """Run the hub's expiry with its approval store's clock `seconds` ahead (then back); the hub's service
    audits what expires."""
    clock.offset = timedelta(seconds=seconds)
    try:
        return await hub.hub.approvals.expire_due()
    finally:
        clock.offset = timedelta(0)


@asynccontextmanager
async def hub_with(
    tmp_path: Path, *, approval_store: Callable[[AsyncEngine], ApprovalStore] = ApprovalStore, **settings: Any
) -> AsyncGenerator[RunningHub]:
    async with approval_hub(approval_config(tmp_path, **settings), approval_store=approval_store) as hub:
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
            for row in reversed(await hub.hub.stores.audit.recent_audit(limit=20))
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
async def test_two_identical_first_calls_at_once_share_one_action_that_runs_once_for_both(
    tmp_path: Path, era: str
) -> None:
    """Issue 4 ("calling again with the same arguments ... does not create a second action"), T19 (single use):
    two identical calls racing to create the action are held on one action; approved once, the downstream
    runs once, both requests return its result, and the request, decision, run and return are audited once."""
    async with hub_with(tmp_path, hold_seconds=30, approval_store=TwoIdenticalFirstCalls) as hub:
        callers, actions = await race_two_identical_first_calls(hub, era)
        runs = await downstream_runs(hub, "faults__echo")
        trail = await approval_trail(hub)

    assert [action.id for action in actions] == [callers.held_on[0]] == [callers.held_on[1]]
    assert [(answer.is_error, text_of(answer)) for answer in callers.answers.values()] == [
        (False, DANGEROUS["text"])
    ] * 2
    assert runs == 1
    # Each transition once. The other request may return the result before the runner's "executed" row is
    # written (it sees `done` as soon as the result is stored), so only the first two are in a fixed order.
    assert trail[:2] == ["approval_requested", "approval_approved"]
    assert sorted(trail[2:]) == ["approval_executed", "approval_returned"]


async def test_an_identical_call_racing_to_the_pending_cap_joins_the_action_instead_of_being_refused(
    tmp_path: Path,
) -> None:
    """T21 (the cap counts a call once), issue 4: with room for one pending action, the second of two identical
    calls counts the first's action, which is its own too, so it waits on it rather than being refused."""
    async with hub_with(tmp_path, hold_seconds=30, max_pending=1, approval_store=TwoIdenticalFirstCalls) as hub:
        callers, actions = await race_two_identical_first_calls(hub, "2026-07-28")
        runs = await downstream_runs(hub, "faults__echo")

    assert [text_of(answer) for answer in callers.answers.values()] == [DANGEROUS["text"]] * 2
    assert [action.id for action in actions] == [callers.held_on[0]] == [callers.held_on[1]]
    assert runs == 1


async def test_a_request_that_loses_the_run_of_an_approved_action_waits_for_the_result_of_the_one_that_won(
    tmp_path: Path,
) -> None:
    """T19 (single use), issue 4 (calling again collects the outcome): two requests held on one action (the same
    call made again while the first still waits) both find it approved; one runs it, and the other, refused
    `approved → executing`, waits for that run's result instead of answering that the action "was executing".
    The approved tool blocks downstream until the test releases it, so the loser always sees the run going on."""
    race: TwoRequestsRunTheApprovedCall | None = None

    def choreographed(engine: AsyncEngine) -> TwoRequestsRunTheApprovedCall:
        nonlocal race
        race = TwoRequestsRunTheApprovedCall(engine)
        return race

    async with hub_with(tmp_path, hold_seconds=30, rules=BLOCKING_RULE, approval_store=choreographed) as hub:
        assert race is not None
        token = await agent_token(hub, "twice")
        callers = Callers()

        async def held_call(caller: int) -> None:
            answer = await call(
                hub, token, "2026-07-28", BLOCKING, tool=BLOCKING_TOOL, progress=callers.progress_of(caller)
            )
            callers.answered(caller, answer)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(held_call, 0)
            await callers.held_or_answered(0)
            tasks.start_soon(held_call, 1)  # the same call again, while the first request still waits
            await callers.held_or_answered(1)
            await approve_all_pending(hub)
            with anyio.fail_after(20):
                await race.lost.wait()
            await release_blocked_call(hub, token)
        runs = await downstream_runs(hub, BLOCKING_TOOL)

    assert callers.held_on[0] == callers.held_on[1]
    assert [(answer.is_error, text_of(answer)) for answer in callers.answers.values()] == [(False, "cancelled")] * 2
    assert runs == 1


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
        actions = await hub.hub.approvals.list_actions([ActionStatus.DONE])
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
        actions = await hub.hub.approvals.list_actions([ActionStatus.PENDING])

    assert result.is_error is False
    assert text_of(result) == "ls /srv"
    assert actions == []


async def test_an_action_past_its_expiry_counts_as_denied(tmp_path: Path) -> None:
    """T21: clock past the TTL → expired = denied; the agent is told, and no one can approve it afterwards."""
    clock = LaterClock()
    async with hub_with(
        tmp_path, hold_seconds=0, pending_ttl_seconds=10, approval_store=partial(ApprovalStore, clock=clock)
    ) as hub:
        token = await agent_token(hub, "slowpoke")
        user = await approver(hub)
        pending = await call(hub, token, "legacy", DANGEROUS)
        expired = await expire_as_if_later(hub, clock, seconds=11)
        told = await call(hub, token, "legacy", DANGEROUS)
        with pytest.raises(ApprovalError) as refused:
            await hub.hub.approvals.decide(action_id_of(pending), user, True, None)
        runs = await downstream_runs(hub, "faults__echo")
        await hub.hub.audit.flush()
        outcomes = [row.outcome for row in await hub.hub.stores.audit.recent_audit(limit=20)]

    assert expired == [action_id_of(pending)]
    assert told.is_error is True
    assert "expired without a decision, which counts as denied" in text_of(told)
    assert refused.value.reason == "conflict"
    assert runs == 0
    assert outcomes.count(AuditOutcome.APPROVAL_EXPIRED) == 1  # issue 4 §6: the expiry is in the audit trail, once


async def test_more_pending_actions_than_the_cap_are_refused(tmp_path: Path) -> None:
    """T21 (flooding): `max_pending_per_caller` pending actions, then the next distinct one is refused."""
    async with hub_with(tmp_path, hold_seconds=0, max_pending=2) as hub:
        token = await agent_token(hub, "flooder")
        answers = [await call(hub, token, "2026-07-28", {"text": f"rm /tmp/{n}"}) for n in range(3)]
        pending = await hub.hub.approvals.list_actions([ActionStatus.PENDING])

    assert [answer.is_error for answer in answers] == [True, True, True]
    assert "already has 2 actions waiting" in text_of(answers[2])
    assert (answers[2].meta or {})[APPROVAL_META] == {"refused": "too_many_pending"}
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


async def test_a_held_call_sends_progress_once_per_progress_interval_not_once_per_look(tmp_path: Path) -> None:
    """Issue 13 §3 (regression), our choice of cadence: with `progress_interval_seconds = 1` a call held for 2.4 s
    gets a notification at 0, 1 and 2 s. The hold loop looks at the action every 0.5 s when no bus wakes it, and it
    used to send progress at each look: 5 notifications, 0.5 s apart. (One era: the loop is the same for both.)"""
    arrivals: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        arrivals.append(anyio.current_time())

    async with hub_with(tmp_path, hold_seconds=2.4, progress_interval_seconds=1) as hub:
        token = await agent_token(hub, "patient")
        result = await call(hub, token, "2026-07-28", DANGEROUS, progress=on_progress)

    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert result.is_error is True
    assert "is pending" in text_of(result)
    assert len(arrivals) == 3, gaps
    assert all(gap > 0.9 for gap in gaps), gaps


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
        still = await hub.hub.approvals.get(action_id_of(pending))
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
        created = await service.admin.create_agent("owned", ["tool:faults__*"], owner="olivia")
        assert created.client_secret is not None
        credentials = AgentCredentials("owned", created.agent.client_id, created.client_secret)
        token = await client_credentials_token(hub, credentials)
        pending = await call(hub, token, "legacy", DANGEROUS)
        with pytest.raises(ApprovalError) as by_owner:
            await hub.hub.approvals.decide(action_id_of(pending), owner, True, None)
        await hub.hub.approvals.decide(action_id_of(pending), other, False, "no")
        with pytest.raises(ApprovalError) as again:
            await hub.hub.approvals.decide(action_id_of(pending), other, True, "changed my mind")

    assert by_owner.value.reason == "forbidden"
    assert "own the agent" in str(by_owner.value)
    assert again.value.reason == "conflict"


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
        ConnectorListing(
            tools=(
                {
                    "name": "echo",
                    "inputSchema": {"type": "object"},
                    "annotations": {"readOnlyHint": True, "destructiveHint": False},
                },
            )
        ),
    )
    tool = catalog.resolve("faults__echo")
    policy = ApprovalPolicy([ApprovalRule(name="all-echo", tools=["faults__echo"])], [])

    requirement = policy.requirement("any-agent", HeldSubject.of_entry(tool), {"text": "hello"})

    assert requirement is not None
    assert requirement.rules == ("all-echo",)


SLOW_RULE = """
[[approvals.rules]]
name = "slow-needs-a-human"
tools = ["faults__slow"]
"""


@pytest.mark.parametrize("era", ERAS)
async def test_an_approved_call_whose_collector_is_cancelled_still_finishes_once_and_can_be_collected(
    tmp_path: Path, era: str
) -> None:
    """T19 (exactly once), our choice: cancelling the request that runs an approved call does not cut the call.

    Before, the cancelled request left the action `executing` for good (2026-07-28) or closed it with a
    result nobody received (legacy), so calling again waited forever or asked for a second approval.
    """
    arguments = {"seconds": 1.0, "key": f"collector-{era}"}
    async with hub_with(tmp_path, hold_seconds=0, rules=SLOW_RULE) as hub:
        token = await agent_token(hub, "impatient")
        user = await approver(hub)
        transitions = Transitions(hub)
        pending = await call(hub, token, era, arguments, tool="faults__slow")
        await hub.hub.approvals.decide(action_id_of(pending), user, True, None)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(functools.partial(call, hub, token, era, arguments, tool="faults__slow"))
            await transitions.reached(ActionStatus.EXECUTING)
            tasks.cancel_scope.cancel()  # the collecting client goes away mid-run
        finished = await transitions.reached(ActionStatus.DONE)
        collected = await call(hub, token, era, arguments, tool="faults__slow")
        runs = await downstream_runs(hub, "faults__slow")
        still_open = await hub.hub.approvals.list_actions(
            [ActionStatus.PENDING, ActionStatus.APPROVED, ActionStatus.EXECUTING]
        )

    assert finished.id == action_id_of(pending)
    assert collected.is_error is False
    assert text_of(collected) == "done"
    assert runs == 1
    assert still_open == []


async def test_an_approval_not_used_before_it_lapses_expires_and_runs_nothing(tmp_path: Path) -> None:
    """T19 (time of check, time of use), our choice: an approval is good for `pending_ttl_seconds` only."""
    clock = LaterClock()
    async with hub_with(
        tmp_path, hold_seconds=0, pending_ttl_seconds=10, approval_store=partial(ApprovalStore, clock=clock)
    ) as hub:
        token = await agent_token(hub, "forgetful")
        user = await approver(hub)
        pending = await call(hub, token, "legacy", DANGEROUS)
        await hub.hub.approvals.decide(action_id_of(pending), user, True, "go ahead")
        expired = await expire_as_if_later(hub, clock, seconds=11)
        told = await call(hub, token, "legacy", DANGEROUS)
        runs = await downstream_runs(hub, "faults__echo")
        trail = [
            row.detail for row in await hub.hub.stores.audit.recent_audit(limit=20) if row.outcome == "approval_expired"
        ]

    assert expired == [action_id_of(pending)]
    assert told.is_error is True
    assert "approved, but not run before the approval lapsed" in text_of(told)
    assert runs == 0
    assert [detail.split(": ", 1)[1] for detail in trail if detail] == [
        "approved, but not run before the approval lapsed; call again to ask anew"
    ]


async def test_an_outcome_is_returned_again_for_a_while_then_the_same_call_asks_anew(tmp_path: Path) -> None:
    """T19 (replay), our choice: a collected outcome answers a repeat for `collect_again_seconds`, then a new
    action is needed; the downstream never runs twice for one approval."""
    async with hub_with(tmp_path, hold_seconds=0) as hub:
        token = await agent_token(hub, "repeater")
        user = await approver(hub)
        pending = await call(hub, token, "legacy", DANGEROUS)
        await hub.hub.approvals.decide(action_id_of(pending), user, True, None)
        collected = await call(hub, token, "legacy", DANGEROUS)
        repeated = await call(hub, token, "legacy", DANGEROUS)
        action = await hub.hub.approvals.get(action_id_of(pending))
        assert action is not None
        # Outside the window (a zero window here) the same call would make a new action.
        after_the_window = await hub.hub.stores.approvals.open_action(action.agent_id, None, action.digest)
        runs = await downstream_runs(hub, "faults__echo")

    assert (collected.is_error, text_of(collected)) == (False, DANGEROUS["text"])
    assert (repeated.is_error, text_of(repeated)) == (False, DANGEROUS["text"])
    assert after_the_window is None
    assert runs == 1


def test_a_rule_matched_to_a_tool_once_still_decides_agents_and_arguments_call_by_call() -> None:
    """Our choice: the policy remembers which rules name a tool, never whether a call was held."""
    catalog = Catalog()
    catalog.replace_connector("faults", ConnectorListing(tools=({"name": "echo", "inputSchema": {"type": "object"}},)))
    tool = catalog.resolve("faults__echo")
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
        policy.requirement(agent, HeldSubject.of_entry(tool), arguments) is not None
        for agent, arguments in [
            ("careful", {"text": "x"}),
            ("careful", {}),
            ("other", {"text": "x"}),
            ("careful", {"text": "y"}),
        ]
    ]

    assert held == [True, False, False, True]
