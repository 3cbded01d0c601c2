"""Start-up recovery with replica leases (issue 12 §4), on SQLite and PostgreSQL.

Issue 12: "replicas start, stop and crash without failing each other's in-flight work (start-up recovery only
touches its own or orphaned actions, with a lease)". An approved call being executed records its replica; a
replica starting fails only the executions of its own previous incarnation, of replicas whose lease expired or
that never held one, and rows from before replicas had ids. Threat T19 (an approved call runs at most once: a
failed execution is never re-run).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.approvals import ApprovalStore
from mcp_hub.db.replicas import ReplicaStore
from mcp_hub.domain import ActionStatus
from tests.db.test_approval_store import T0, Callers, action, approval_store, callers

pytestmark = pytest.mark.anyio
__all__ = ["approval_store", "callers"]  # fixtures shared with the approval store's tests

LEASE = timedelta(seconds=30)


async def executing(store: ApprovalStore, callers: Callers, replica: str | None) -> str:
    """An approved action now being executed by `replica`."""
    stored = await store.create(action(callers.agent, None, f"digest-{replica}"))
    assert await store.decide(stored.id, True, "uma", None, run_within=timedelta(minutes=5))
    assert await store.start_execution(stored.id, replica=replica)
    return stored.id


async def statuses(store: ApprovalStore, ids: dict[str, str]) -> dict[str, ActionStatus | None]:
    return {name: getattr(await store.get(action_id), "status", None) for name, action_id in ids.items()}


async def test_a_starting_replica_fails_only_its_own_previous_and_orphaned_executions(
    approval_store: ApprovalStore, callers: Callers, engine: AsyncEngine
) -> None:
    replicas = ReplicaStore(engine, clock=lambda: T0)
    await replicas.renew("hub-a", LEASE)  # the previous incarnation's lease has not run out yet
    await replicas.renew("hub-b", LEASE)  # alive
    await replicas.renew("hub-c", timedelta(seconds=-1))  # its lease lapsed: crashed
    ids = {
        replica or "none": await executing(approval_store, callers, replica)
        for replica in ("hub-a", "hub-b", "hub-c", "hub-d", None)  # hub-d never held a lease
    }

    interrupted = await approval_store.interrupt_executions("hub-a", at_start=True)

    assert sorted(interrupted) == sorted(ids[name] for name in ("hub-a", "hub-c", "hub-d", "none"))
    assert await statuses(approval_store, ids) == {
        "hub-a": ActionStatus.FAILED,
        "hub-b": ActionStatus.EXECUTING,
        "hub-c": ActionStatus.FAILED,
        "hub-d": ActionStatus.FAILED,
        "none": ActionStatus.FAILED,
    }


async def test_the_running_sweep_leaves_its_own_and_live_replicas_executions_alone(
    approval_store: ApprovalStore, callers: Callers, engine: AsyncEngine
) -> None:
    replicas = ReplicaStore(engine, clock=lambda: T0)
    await replicas.renew("hub-a", LEASE)
    await replicas.renew("hub-b", LEASE)
    ids = {replica: await executing(approval_store, callers, replica) for replica in ("hub-a", "hub-b")}
    ids["none"] = await executing(approval_store, callers, None)

    assert await approval_store.interrupt_executions(None, at_start=False) == []

    await replicas.release("hub-b")  # a clean stop ends the lease at once
    assert await approval_store.interrupt_executions(None, at_start=False) == [ids["hub-b"]]
    assert await replicas.live() == ["hub-a"]


async def test_a_lease_is_renewed_and_a_restart_keeps_one_row(
    engine: AsyncEngine, approval_store: ApprovalStore
) -> None:
    del approval_store  # migrated
    clock = [T0]
    replicas = ReplicaStore(engine, clock=lambda: clock[0])
    await replicas.renew("hub-a", LEASE, started=True)
    clock[0] = T0 + timedelta(seconds=29)
    await replicas.renew("hub-a", LEASE)
    clock[0] = T0 + timedelta(seconds=45)
    assert await replicas.live() == ["hub-a"]
    clock[0] = T0 + timedelta(seconds=60)
    assert await replicas.live() == []
    await replicas.renew("hub-a", LEASE, started=True)
    assert await replicas.live() == ["hub-a"]
