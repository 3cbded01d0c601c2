"""The hash-chained audit trail on both backends: verification, tampering, append-only triggers, retention
(issue 13 §7; threat T24, audit tampering)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import DateTime, Executable, Float, Text, column, insert, table, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mcp_hub.audit.retention import AuditRetention
from mcp_hub.audit.verify import verify_chain
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_chain import GENESIS_HASH, HASHED_COLUMNS, AuditChainStore, ChainLink, row_hash
from mcp_hub.db.engine import create_engine, downgrade, upgrade
from mcp_hub.db.models import AuditCall
from mcp_hub.domain import AuditOutcome
from tests.db.migrated_copies import migrated_copy, migrated_template, migrated_url

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def event(n: int, *, at: datetime | None = None) -> AuditEvent:
    return AuditEvent(
        at=at or T0 + timedelta(seconds=n),
        client="agent:alpha",
        session=None,
        public_name="files__read",
        connector_id="files",
        downstream_name="read",
        outcome=AuditOutcome.OK,
        latency_ms=1.25,
        detail=f"call {n} \u202e",
        downstream_ms=0.5 if n % 2 else None,
    )


async def chained(engine: AsyncEngine, count: int, *, batch: int = 10) -> AuditChainStore:
    store = AuditStore(engine)
    for start in range(0, count, batch):
        await store.insert_audit([event(n) for n in range(start, min(start + batch, count))])
    return AuditChainStore(engine)


async def tamper(engine: AsyncEngine, *statements: str | Executable) -> None:
    """Change the trail as someone with direct database access would: past the append-only triggers."""
    async with engine.begin() as connection:
        await _without_triggers(connection, "audit_calls", statements)


async def _without_triggers(connection: AsyncConnection, table: str, statements: tuple[str | Executable, ...]) -> None:
    postgres = connection.dialect.name == "postgresql"
    if postgres:
        await connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
    else:
        triggers = await connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        for name in triggers.scalars().all():
            await connection.exec_driver_sql(f"DROP TRIGGER {name}")
    for statement in statements:
        await connection.execute(text(statement) if isinstance(statement, str) else statement)
    if postgres:
        await connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")


async def fault_of(store: AuditChainStore) -> tuple[int | None, str]:
    report = await verify_chain(store, chunk=7)  # a small chunk: faults across read boundaries are found too
    assert report.fault is not None, "verification passed on a tampered trail"
    return report.fault.row_id, report.fault.problem


async def test_a_fresh_chain_of_many_batches_verifies_and_names_its_head(migrated_copy: AsyncEngine) -> None:
    """Threat T24: what the writer stored verifies, batch after batch; ids are the chain's order."""
    store = await chained(migrated_copy, 45, batch=4)
    await AuditStore(migrated_copy).insert_audit([event(n) for n in range(45, 85)])  # hashed in a worker thread
    report = await verify_chain(store, chunk=7)
    assert report.fault is None
    assert (report.rows, report.checkpoints, report.start) == (85, 0, ChainLink(0, GENESIS_HASH))
    assert report.head == await store.head()
    assert report.head.id == 85
    intact = await verify_chain(store, expected_head=report.head)
    assert intact.intact


async def test_an_edited_row_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a row changed in SQL no longer matches its hash."""
    store = await chained(migrated_copy, 20)
    await tamper(migrated_copy, "UPDATE audit_calls SET outcome = 'tool_error' WHERE id = 9")
    assert await fault_of(store) == (9, "its columns do not match its hash: it was edited")


async def test_a_row_edited_with_its_hash_recomputed_breaks_the_next_link(migrated_copy: AsyncEngine) -> None:
    """Threat T24: an editor who also rehashes the edited row is caught by the row after it."""
    store = await chained(migrated_copy, 20)
    row_9 = (await store.rows_after(8, 1))[0]
    edited = {column: getattr(row_9, column) for column in HASHED_COLUMNS} | {"outcome": "tool_error"}
    await tamper(
        migrated_copy,
        update(AuditCall).where(AuditCall.id == 9).values(outcome="tool_error", row_hash=row_hash(edited)),
    )
    assert await fault_of(store) == (
        10,
        "does not follow row 9: that row was changed, a row between them deleted, or rows reordered",
    )


async def test_a_deleted_row_is_named_by_the_row_after_the_gap(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the row after a deleted one follows a link that is no longer there."""
    store = await chained(migrated_copy, 20)
    await tamper(migrated_copy, "DELETE FROM audit_calls WHERE id = 12")
    row_id, problem = await fault_of(store)
    assert row_id == 13
    assert problem.startswith("does not follow row 11")


async def test_reordered_rows_are_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: swapping two rows' places (their ids) breaks the chain at the first moved row."""
    store = await chained(migrated_copy, 20)
    await tamper(
        migrated_copy,
        "UPDATE audit_calls SET id = 1000 WHERE id = 5",
        "UPDATE audit_calls SET id = 5 WHERE id = 6",
        "UPDATE audit_calls SET id = 6 WHERE id = 1000",
    )
    row_id, problem = await fault_of(store)
    assert row_id == 5
    assert "does not follow row 4" in problem


async def test_an_inserted_row_is_named_even_when_it_is_chained_correctly(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a row slipped in between (later ids shifted up), with its own hashes right, is named."""
    store = await chained(migrated_copy, 20)
    row_10 = (await store.rows_after(9, 1))[0]
    forged: dict[str, Any] = {
        "id": 11,
        "at": T0,
        "client": "agent:alpha",
        "session": None,
        "public_name": "files__delete",
        "connector_id": "files",
        "downstream_name": "delete",
        "outcome": "ok",
        "latency_ms": 1.0,
        "detail": None,
        "method": "tools/call",
        "downstream_ms": None,
        "prev_hash": row_10.row_hash,
    }
    await tamper(
        migrated_copy,
        update(AuditCall).where(AuditCall.id > 10).values(id=AuditCall.id + 1000),
        update(AuditCall).where(AuditCall.id > 1000).values(id=AuditCall.id - 999),
        insert(AuditCall).values(**forged, row_hash=row_hash(forged)),
    )
    assert await fault_of(store) == (11, "was inserted: row 12 follows the row before it")


async def test_the_database_refuses_updates_deletes_and_truncation_of_the_trail(migrated_copy: AsyncEngine) -> None:
    """Threat T24: append-only in practice; only rows a checkpoint covers may be deleted (the prune)."""
    await chained(migrated_copy, 3)
    statements = ["UPDATE audit_calls SET detail = 'x' WHERE id = 1", "DELETE FROM audit_calls WHERE id = 1"]
    if migrated_copy.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_calls")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated_copy.begin() as connection:
                await connection.execute(text(statement))
    assert (await verify_chain(AuditChainStore(migrated_copy))).rows == 3


async def test_retention_prunes_behind_a_checkpoint_and_the_chain_still_verifies(migrated_copy: AsyncEngine) -> None:
    """Issue 13 §7: pruning by time keeps verification working from the newest checkpoint, chunk by chunk."""
    store = AuditStore(migrated_copy)
    old = [event(n, at=T0 - timedelta(days=40, seconds=-n)) for n in range(25)]
    await store.insert_audit(old)
    await store.insert_audit([event(n) for n in range(25, 30)])
    chain = AuditChainStore(migrated_copy)
    retention = AuditRetention(chain, retention_days=30, interval_seconds=3600, clock=lambda: T0)
    assert await chain.prune_before(T0 - timedelta(days=30), chunk=10) == 25
    assert await retention.prune_once() == 0
    report = await verify_chain(chain)
    assert report.intact
    assert (report.rows, report.checkpoints, report.start.id) == (5, 3, 25)
    await store.insert_audit([event(30)])  # the chain goes on after the prune
    assert (await verify_chain(chain)).rows == 6
    with pytest.raises(DBAPIError, match="append-only"):
        async with migrated_copy.begin() as connection:
            await connection.execute(text("DELETE FROM audit_checkpoints"))


async def test_a_chain_pruned_to_nothing_continues_from_its_checkpoint(migrated_copy: AsyncEngine) -> None:
    """Our choice: with every row pruned, the checkpoint's anchor is the chain's head."""
    chain = await chained(migrated_copy, 4)
    assert await chain.prune_before(T0 + timedelta(days=1)) == 4
    assert (await chain.head()).id == 4
    await AuditStore(migrated_copy).insert_audit([event(5)])
    report = await verify_chain(chain)
    assert report.intact
    assert (report.rows, report.head.id) == (1, 5)


async def test_a_prune_beyond_the_checkpoint_anchor_is_detected(migrated_copy: AsyncEngine) -> None:
    """Threat T24: deleting past the newest checkpoint's anchor leaves a row that does not follow it."""
    chain = await chained(migrated_copy, 10)
    await chain.prune_before(T0 + timedelta(seconds=4))  # rows 1-4 (times T0+0s .. T0+3s)
    await tamper(migrated_copy, "DELETE FROM audit_calls WHERE id IN (5, 6)")
    row_id, problem = await fault_of(chain)
    assert row_id == 7
    assert problem.startswith("does not follow the newest checkpoint's anchor (row 4)")


async def test_the_oldest_rows_deleted_without_a_checkpoint_are_detected(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a "prune" that leaves no checkpoint leaves a first row that does not follow the genesis."""
    chain = await chained(migrated_copy, 10)
    await tamper(migrated_copy, "DELETE FROM audit_calls WHERE id <= 3")
    row_id, problem = await fault_of(chain)
    assert row_id == 4
    assert problem.startswith("does not follow the start of the chain")


async def test_an_edited_or_deleted_checkpoint_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the checkpoints are chained too."""
    chain = await chained(migrated_copy, 10)
    await chain.prune_before(T0 + timedelta(seconds=3), chunk=1)  # three checkpoints
    async with migrated_copy.begin() as connection:
        await _without_triggers(
            connection, "audit_checkpoints", ("UPDATE audit_checkpoints SET pruned_rows = 9 WHERE id = 2",)
        )
    report = await verify_chain(chain)
    assert (report.fault and report.fault.checkpoint_id, report.fault and report.fault.problem) == (
        2,
        "its columns do not match its hash: it was edited",
    )
    async with migrated_copy.begin() as connection:
        await _without_triggers(connection, "audit_checkpoints", ("DELETE FROM audit_checkpoints WHERE id = 2",))
    report = await verify_chain(chain)
    assert report.fault is not None
    assert str(report.fault).startswith("checkpoint 3: does not follow the checkpoint before it")


async def test_a_deleted_tail_is_detected_against_a_head_recorded_elsewhere(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the chain alone cannot show its newest rows are gone; a head kept by a sink can."""
    chain = await chained(migrated_copy, 10)
    head = await chain.head()
    await tamper(migrated_copy, "DELETE FROM audit_calls WHERE id > 8")
    assert (await verify_chain(chain)).intact
    report = await verify_chain(chain, expected_head=head)
    assert report.fault is not None
    assert (report.fault.row_id, report.fault.problem) == (10, "the expected head is missing: the chain ends at row 8")


async def test_concurrent_writers_on_two_engines_extend_one_chain(
    migrated_url: str, migrated_copy: AsyncEngine
) -> None:
    """Threat T24 with replicas: two writers (two engines, as two hub processes) interleave batches, and the
    chain lock keeps one valid chain."""
    second = create_engine(migrated_url)
    try:
        writers = [
            AuditWriter(AuditStore(engine), batch_size=3, flush_interval_ms=5, queue_size=100)
            for engine in (migrated_copy, second)
        ]

        async def record(writer: AuditWriter, offset: int) -> None:
            async with writer.running():
                for n in range(40):
                    await writer.record(event(offset + n))
                    if n % 5 == 0:
                        await anyio.lowlevel.checkpoint()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(record, writers[0], 0)
                group.start_soon(record, writers[1], 1000)
        report = await verify_chain(AuditChainStore(migrated_copy))
        assert report.intact, report.fault
        assert report.rows == 80
    finally:
        await second.dispose()


__all__ = ["migrated_copy", "migrated_template", "migrated_url"]  # fixtures


async def test_migration_0012_chains_the_rows_already_there_and_downgrades(database_url: str) -> None:
    """Our choice: the rows written before the chain existed are chained by the migration, in id order, so the
    whole trail verifies; the downgrade drops the chain and its triggers."""
    await upgrade(database_url, "0011_audit_downstream_time")
    engine = create_engine(database_url)
    try:
        old = [
            {"at": T0 + timedelta(seconds=n), "client": "agent:alpha", "public_name": "time__now", "outcome": "ok"}
            | {"latency_ms": 1.5, "method": "tools/call", "detail": f"old {n}"}
            for n in range(5)
        ]
        async with engine.begin() as connection:
            types = {"at": DateTime(timezone=True), "latency_ms": Float()}
            before = table("audit_calls", *(column(name, types.get(name, Text())) for name in old[0]))
            await connection.execute(insert(before), old)
        await upgrade(database_url)
        await AuditStore(engine).insert_audit([event(5)])
        report = await verify_chain(AuditChainStore(engine))
        assert (report.intact, report.rows) == (True, 6)
        await downgrade(database_url, "0011_audit_downstream_time")
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE audit_calls SET detail = 'editable again' WHERE id = 1"))
    finally:
        await engine.dispose()
