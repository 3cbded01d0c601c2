"""`ApprovalStore.create` on SQLite and PostgreSQL: one open action per (agent, user, digest).

Issue 4: "the same agent calling again with the same arguments gets that result (it does not create a second
action); different arguments make a new pending action." Calls that arrive at the same time are no
exception: the guarantee lives in the database (two partial unique indexes over the open actions), so it is
tested here, on both backends, with real concurrent transactions. Threats T19 (an approval is bound to one
digest and used once) and T21 (the pending cap counts a call once).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db import upgrade
from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.db.identities import IdentityStore
from mcp_hub.db.models import ApprovalAction
from mcp_hub.domain import ActionId, ActionStatus, AgentId, ClientAuthMethod, ConnectorId, Role, UserId
from mcp_hub.errors import TooManyPendingError
from tests.db.conftest import new_client

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
CONCURRENT_CALLERS = 12


@dataclass(frozen=True)
class Callers:
    """Two agents and a user they may act for, as stored rows (the actions refer to them)."""

    agent: AgentId
    other_agent: AgentId
    user: UserId


@pytest.fixture
async def approval_store(database_url: str, engine: AsyncEngine) -> ApprovalStore:
    await upgrade(database_url)
    return ApprovalStore(engine, clock=lambda: T0)


@pytest.fixture
async def callers(approval_store: ApprovalStore, engine: AsyncEngine) -> Callers:
    identities = IdentityStore(engine, clock=lambda: T0)
    agents = [await identities.create_agent(new_client(name, ClientAuthMethod.NONE)) for name in ("agent-a", "agent-b")]
    user = await identities.create_user("uma", Role.APPROVER, "not-a-real-hash")
    return Callers(agent=agents[0].id, other_agent=agents[1].id, user=user.id)


def action(agent_id: AgentId, user_id: UserId | None, digest: str) -> ActionRecord:
    """A fresh pending action, as `ApprovalService.submit` builds one: a new random id every time."""
    return ActionRecord(
        id=ActionId("apv_" + secrets.token_urlsafe(24)),
        agent_id=agent_id,
        user_id=user_id,
        agent_name="agent",
        method="tools/call",
        public_name="git__git_push",
        connector_id=ConnectorId("git"),
        downstream_name="git_push",
        definition_sha256="d" * 64,
        description="push",
        arguments={"force": True},
        digest=digest,
        rules=("git-push",),
        approvers=("role:approver",),
        status=ActionStatus.PENDING,
        reason=None,
        decided_by=None,
        decided_at=None,
        created_at=T0,
        expires_at=T0 + timedelta(minutes=15),
        result=None,
        completed_at=None,
        reported_at=None,
        hold_reasons=[{"rule": "git-push", "because": ["argument `force` = true"]}],
    )


async def create_concurrently(store: ApprovalStore, actions: list[ActionRecord]) -> list[ActionRecord]:
    """`store.create` for every action at once, each in its own task (and its own transaction)."""
    stored: list[ActionRecord | None] = [None] * len(actions)

    async def create(index: int) -> None:
        stored[index] = await store.create(actions[index])

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for index in range(len(actions)):
                tasks.start_soon(create, index)
    return [record for record in stored if record is not None]


async def stored_rows(engine: AsyncEngine, *where: ColumnElement[bool]) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(ApprovalAction).where(*where)) or 0)


@pytest.mark.parametrize("on_behalf_of_user", [False, True], ids=["no-user", "user"])
async def test_of_n_simultaneous_identical_first_calls_one_action_is_stored_and_every_caller_gets_it(
    approval_store: ApprovalStore, callers: Callers, engine: AsyncEngine, on_behalf_of_user: bool
) -> None:
    """Issue 4 and T19, T21: N concurrent creates of one (agent, user, digest) → one row, one id for all."""
    user = callers.user if on_behalf_of_user else None
    attempts = [action(callers.agent, user, "a" * 64) for _ in range(CONCURRENT_CALLERS)]

    stored = await create_concurrently(approval_store, attempts)

    assert len(stored) == CONCURRENT_CALLERS
    assert len({record.id for record in stored}) == 1
    assert stored[0].id in {attempt.id for attempt in attempts}
    assert {(record.user_id, record.status) for record in stored} == {(user, "pending")}
    assert await stored_rows(engine) == 1
    assert await stored_rows(engine, ApprovalAction.agent_id == callers.agent, ApprovalAction.status == "pending") == 1


async def test_simultaneous_calls_that_differ_in_digest_user_or_agent_each_get_their_own_action(
    approval_store: ApprovalStore, callers: Callers, engine: AsyncEngine
) -> None:
    """Issue 4 ("different arguments make a new pending action"), T19: only an identical call shares one."""
    keys = [
        (callers.agent, None, "a" * 64),
        (callers.agent, None, "b" * 64),
        (callers.agent, callers.user, "a" * 64),
        (callers.other_agent, None, "a" * 64),
    ]
    attempts = [action(*key) for key in keys for _ in range(3)]

    stored = await create_concurrently(approval_store, attempts)

    ids_per_key: dict[tuple[str, str | None, str], set[str]] = {}
    for record in stored:
        ids_per_key.setdefault((record.agent_id, record.user_id, record.digest), set()).add(record.id)
    assert sorted(ids_per_key, key=str) == sorted(keys, key=str)
    assert all(len(ids) == 1 for ids in ids_per_key.values())
    assert await stored_rows(engine) == len(keys)


async def test_a_decided_action_is_handed_back_until_its_outcome_is_collected_then_a_new_one_is_made(
    approval_store: ApprovalStore, callers: Callers
) -> None:
    """Issue 4, T19 (single use): an uncollected outcome is shared; once collected, the same call asks again."""
    first = await approval_store.create(action(callers.agent, None, "a" * 64))
    assert await approval_store.decide(first.id, False, "alice", "not today", run_within=timedelta(minutes=15))

    while_uncollected = await approval_store.create(action(callers.agent, None, "a" * 64))
    assert await approval_store.mark_reported(first.id)
    after_collection = await approval_store.create(action(callers.agent, None, "a" * 64))
    again = await approval_store.create(action(callers.agent, None, "a" * 64))

    assert (while_uncollected.id, while_uncollected.status) == (first.id, "denied")
    assert after_collection.id != first.id
    assert after_collection.status == "pending"
    assert again.id == after_collection.id


async def test_a_create_the_database_refuses_for_another_reason_still_fails(
    approval_store: ApprovalStore, callers: Callers
) -> None:
    """Our choice: only a conflict with an open identical action is absorbed; a missing agent is an error."""
    orphan = action(AgentId("00000000-0000-0000-0000-000000000000"), None, "a" * 64)

    with pytest.raises(IntegrityError, match=r"(?i)foreign key"):
        await approval_store.create(orphan)


async def test_distinct_calls_at_once_never_overshoot_the_pending_cap(
    approval_store: ApprovalStore, callers: Callers, engine: AsyncEngine
) -> None:
    """T21 (flooding): counting and inserting are one locked step, so of N distinct simultaneous calls with room
    for two, exactly two become pending and the rest are refused; another agent is not affected."""
    cap = 2
    created: list[str] = []
    refused: list[str] = []

    async def submit(number: int) -> None:
        try:
            stored = await approval_store.create(action(callers.agent, None, f"digest-{number}"), max_pending=cap)
        except TooManyPendingError as exc:
            refused.append(exc.reason)
        else:
            created.append(stored.id)

    async with anyio.create_task_group() as tasks:
        for number in range(CONCURRENT_CALLERS):
            tasks.start_soon(submit, number)
    other = await approval_store.create(action(callers.other_agent, None, "digest-0"), max_pending=cap)

    pending = await stored_rows(engine, ApprovalAction.agent_id == callers.agent)
    assert len(created) == cap
    assert refused == ["too_many_pending"] * (CONCURRENT_CALLERS - cap)
    assert pending == cap
    assert other.agent_id == callers.other_agent
