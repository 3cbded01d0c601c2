"""`AuditWriter` against a real database: batching, backpressure, retries and shutdown never lose an event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.audit.writer import AuditWriter
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_query import AuditRecord
from mcp_hub.db.audit_seal import SealKey
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import DatabaseError

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
HOUR_MS = 3_600_000


def event(detail: str, *, offset_ms: int = 0) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(milliseconds=offset_ms),
        client="test-client",
        session="session-1",
        public_name="time__now",
        connector_id="time",
        downstream_name="now",
        outcome=AuditOutcome.OK,
        latency_ms=0.5,
        detail=detail,
    )


async def stored_details(audit_store: AuditStore) -> list[str]:
    return sorted(e.detail or "" for e in await audit_store.recent_audit(limit=100_000))


class FailingFirstStore(AuditStore):
    """Fault injection: the first `failures` inserts raise as if the database were unreachable."""

    def __init__(self, engine: AsyncEngine, failures: int) -> None:
        super().__init__(engine)
        self.failures_left = failures
        self.calls = 0

    async def insert_audit(self, events: Sequence[AuditEvent], *, seal_key: SealKey | None = None) -> list[AuditRecord]:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise DatabaseError("injected: database unreachable")
        return await super().insert_audit(events, seal_key=seal_key)


class GatedStore(AuditStore):
    """Holds every insert until `gate` is set, so the queue can be observed filling up."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.gate = anyio.Event()

    async def insert_audit(self, events: Sequence[AuditEvent], *, seal_key: SealKey | None = None) -> list[AuditRecord]:
        await self.gate.wait()
        return await super().insert_audit(events, seal_key=seal_key)


async def test_a_thousand_events_from_many_tasks_are_each_written_once_after_flush(audit_store: AuditStore) -> None:
    """Our choice: the audit trail is complete and without duplicates under concurrency."""
    writer = AuditWriter(audit_store, batch_size=64, flush_interval_ms=HOUR_MS, queue_size=10_000)
    expected = sorted(f"{task}-{i}" for task in range(50) for i in range(20))

    async def caller(task: int) -> None:
        for i in range(20):
            await writer.record(event(f"{task}-{i}", offset_ms=i))

    with anyio.fail_after(30):
        async with writer.running():
            async with anyio.create_task_group() as group:
                for task in range(50):
                    group.start_soon(caller, task)
            await writer.flush()
            assert await stored_details(audit_store) == expected


async def test_events_recorded_right_before_leaving_running_are_written(audit_store: AuditStore) -> None:
    """Our choice: shutdown stores what is queued, without waiting for the flush interval."""
    writer = AuditWriter(audit_store, batch_size=1_000, flush_interval_ms=HOUR_MS, queue_size=1_000)

    with anyio.fail_after(10):
        async with writer.running():
            for i in range(10):
                await writer.record(event(str(i)))

    assert await stored_details(audit_store) == sorted(str(i) for i in range(10))


async def test_a_partial_batch_is_written_once_the_flush_interval_elapses(
    engine: AsyncEngine, audit_store: AuditStore
) -> None:
    """Our choice: a lone event is written after about `flush_interval_ms`, without anyone flushing."""
    stored = anyio.Event()

    class SignallingStore(AuditStore):
        async def insert_audit(
            self, events: Sequence[AuditEvent], *, seal_key: SealKey | None = None
        ) -> list[AuditRecord]:
            records = await super().insert_audit(events, seal_key=seal_key)
            stored.set()
            return records

    writer = AuditWriter(SignallingStore(engine), batch_size=1_000, flush_interval_ms=20, queue_size=1_000)
    with anyio.fail_after(10):
        async with writer.running():
            await writer.record(event("lonely"))
            await stored.wait()
            assert await stored_details(audit_store) == ["lonely"]


async def test_a_full_queue_makes_record_wait_instead_of_dropping(engine: AsyncEngine, audit_store: AuditStore) -> None:
    """Our choice: backpressure on the audited calls rather than a gap in the audit trail."""
    gated = GatedStore(engine)
    writer = AuditWriter(gated, batch_size=2, flush_interval_ms=HOUR_MS, queue_size=3)
    finished: list[int] = []

    async def caller(task: int) -> None:
        for i in range(10):
            await writer.record(event(f"{task}-{i}"))
        finished.append(task)

    with anyio.fail_after(30):
        async with writer.running():
            async with anyio.create_task_group() as group:
                for task in range(10):
                    group.start_soon(caller, task)
                await anyio.wait_all_tasks_blocked()
                # One batch of 2 is held at the gate and 3 events fill the queue: every caller waits.
                assert finished == []
                assert await stored_details(audit_store) == []
                gated.gate.set()
            await writer.flush()

    assert await stored_details(audit_store) == sorted(f"{task}-{i}" for task in range(10) for i in range(10))


async def test_record_nowait_queues_while_there_is_room_and_refuses_a_full_queue(
    engine: AsyncEngine, audit_store: AuditStore
) -> None:
    """The hot path's append (no trip through the event loop) never drops: with the queue full it refuses, and
    the caller awaits `record` instead."""
    gated = GatedStore(engine)
    writer = AuditWriter(gated, batch_size=1, flush_interval_ms=HOUR_MS, queue_size=2)
    with anyio.fail_after(30):
        async with writer.running():
            writer.record_nowait(event("first"))
            await anyio.wait_all_tasks_blocked()  # the writer took "first" and waits at the gate
            writer.record_nowait(event("second"))
            writer.record_nowait(event("third"))
            assert not writer.has_room
            with pytest.raises(RuntimeError, match="queue is full"):
                writer.record_nowait(event("dropped?"))
            gated.gate.set()
            await writer.record(event("fourth"))
            await writer.flush()
    assert await stored_details(audit_store) == ["first", "fourth", "second", "third"]


async def test_a_failing_insert_is_retried_until_every_event_is_written_once(
    engine: AsyncEngine, audit_store: AuditStore
) -> None:
    """Our choice: a database outage delays the audit trail but never loses or duplicates it."""
    failing = FailingFirstStore(engine, failures=2)
    writer = AuditWriter(failing, batch_size=10, flush_interval_ms=HOUR_MS, queue_size=100, retry_initial_seconds=0.01)

    with anyio.fail_after(30):
        async with writer.running():
            for i in range(25):
                await writer.record(event(f"{i:02}"))
            await writer.flush()

    assert await stored_details(audit_store) == [f"{i:02}" for i in range(25)]
    assert failing.calls == 2 + 3  # two failures, then batches of 10, 10 and 5


async def test_recording_outside_running_is_refused(audit_store: AuditStore) -> None:
    """Our choice: an event recorded with no writer running would never be written, so it raises."""
    writer = AuditWriter(audit_store, batch_size=10, flush_interval_ms=10, queue_size=10)

    with pytest.raises(RuntimeError, match="not running"):
        await writer.record(event("early"))
    async with writer.running():
        pass
    with pytest.raises(RuntimeError, match="not running"):
        await writer.record(event("late"))
    with pytest.raises(RuntimeError, match="not running"):
        await writer.flush()


async def test_observers_see_every_recorded_event_and_a_failing_observer_costs_nothing(
    audit_store: AuditStore,
) -> None:
    """Our choice: the log line, metrics and sinks hang off the writer; a broken observer loses no audit row."""
    writer = AuditWriter(audit_store, batch_size=8, flush_interval_ms=HOUR_MS, queue_size=100)
    seen: list[str] = []

    def broken(_: AuditEvent) -> None:
        raise RuntimeError("observer bug")

    writer.observe(broken)
    writer.observe(lambda recorded: seen.append(recorded.detail or ""))
    with anyio.fail_after(30):
        async with writer.running():
            for i in range(3):
                await writer.record(event(f"e{i}"))
            assert writer.queue_depth == 3
            await writer.flush()
            assert writer.queue_depth == 0
    assert seen == ["e0", "e1", "e2"]
    assert await stored_details(audit_store) == ["e0", "e1", "e2"]


async def test_the_downstream_share_of_the_latency_is_stored(audit_store: AuditStore) -> None:
    """Our choice: hub-added and downstream time are told apart in metrics and usage (issue 13)."""
    timed = AuditEvent(
        at=T0,
        client="c",
        session=None,
        public_name="time__now",
        connector_id="time",
        downstream_name="now",
        outcome=AuditOutcome.OK,
        latency_ms=2.5,
        detail=None,
        downstream_ms=1.75,
    )
    await audit_store.insert_audit([timed, event("untimed")])
    stored = {e.detail: e.downstream_ms for e in await audit_store.recent_audit()}
    assert stored == {None: 1.75, "untimed": None}
