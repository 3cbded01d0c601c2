"""The audit trail's seals on both backends: what someone who can write the database, but lacks `[audit] seal_key`,
can no longer do unseen (threat T24, audit tampering; docs/audit.md, trust model).

The intruder here writes plain SQL, with the append-only triggers in place unless a test says otherwise, and knows
the code (so chains and checkpoint hashes come out right); only the key is missing.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy import event as event_hooks
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mcp_hub.audit.retention import AuditRetention
from mcp_hub.audit.verify import ChainReport, verify_chain
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.audit_chain import (
    GENESIS_HASH,
    HASHED_COLUMNS,
    AuditChainStore,
    ChainRow,
    chain_head,
    chain_values,
    checkpoint_hash,
    row_hash,
)
from mcp_hub.db.audit_seal import SealKey, seal_values
from mcp_hub.db.engine import create_engine
from mcp_hub.db.models import AuditCall, AuditCheckpoint, AuditSeal
from mcp_hub.errors import DatabaseError
from tests.db.migrated_copies import migrated_copy, migrated_template, migrated_url
from tests.db.test_audit_chain import T0, event, tamper

KEY = SealKey.of(bytes(range(32)))
OLD_KEY = SealKey.of(bytes(range(100, 132)))


async def sealed(engine: AsyncEngine, count: int, *, batch: int = 5, key: SealKey = KEY, first: int = 0) -> None:
    """`count` rows stored by a hub with `key`, `batch` per transaction (so one seal per `batch` rows)."""
    store = AuditStore(engine)
    for start in range(first, first + count, batch):
        await store.insert_audit([event(n) for n in range(start, min(start + batch, first + count))], seal_key=key)


async def verified(engine: AsyncEngine, *keys: SealKey) -> ChainReport:
    return await verify_chain(AuditChainStore(engine), seal_keys=keys, chunk=3)  # faults across read boundaries


async def append_as_intruder(engine: AsyncEngine, count: int) -> None:
    """Rows appended with plain INSERTs, chained as the hub chains them, without a seal."""
    rows = [asdict(event(900 + n)) | {"outcome": "ok"} for n in range(count)]
    async with AsyncSession(engine) as session, session.begin():
        await session.execute(insert(AuditCall), chain_values(await chain_head(session), rows))


async def forge_prune(engine: AsyncEngine, anchor_id: int, **seal_columns: Any) -> None:
    """A well-formed checkpoint, then the rows behind it deleted (which the triggers allow): a prune made without
    the key. `seal_columns`: what the intruder writes in place of a MAC."""
    chain = AuditChainStore(engine)
    anchor = (await chain.rows_after(anchor_id - 1, 1))[0]
    checkpoints = await chain.checkpoints()
    fields: dict[str, Any] = {
        "at": T0 + timedelta(days=1),
        "anchor_id": anchor.id,
        "anchor_at": anchor.at,
        "anchor_hash": anchor.row_hash,
        "pruned_rows": anchor.id - (checkpoints[-1].anchor_id if checkpoints else 0),
        "prev_hash": checkpoints[-1].checkpoint_hash if checkpoints else GENESIS_HASH,
    }
    async with engine.begin() as connection:
        values = fields | {"checkpoint_hash": checkpoint_hash(**fields)} | seal_columns
        await connection.execute(insert(AuditCheckpoint).values(**values))
        await connection.execute(delete(AuditCall).where(AuditCall.id <= anchor.id))
        if seal_columns.get("mac") is not None:  # the triggers let a checkpoint with a MAC cover seals
            await connection.execute(delete(AuditSeal).where(AuditSeal.last_id <= anchor.id))


def fault_of(report: ChainReport) -> str:
    assert report.fault is not None, "verification passed on a tampered trail"
    return str(report.fault)


async def test_sealed_batches_verify_with_the_key_and_are_not_checked_without_it(migrated_copy: AsyncEngine) -> None:
    """Threat T24: each batch a hub with the key stores carries a seal; verify checks them only when given a key."""
    await sealed(migrated_copy, 23, batch=5)

    report = await verified(migrated_copy, KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.seals, report.seals.sealed_rows, report.seals.unsealed_after) == (5, 23, 0)
    assert report.seals.newest is not None
    assert (report.seals.newest.first_id, report.seals.newest.last_id) == (21, 23)
    assert report.seals.newest.key_id == KEY.id
    assert (await verified(migrated_copy)).seals is None


async def test_a_prune_forged_without_the_key_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a well-formed checkpoint and the rows behind it deleted pass the chain (as any prune does), but
    not the seals: without a MAC its sealed rows' seals stay behind; with a made-up MAC it does not verify."""
    await sealed(migrated_copy, 20)
    await forge_prune(migrated_copy, 8)
    assert (await verified(migrated_copy)).intact  # the gap the key closes
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "checkpoint 1: has no MAC, but the rows it pruned were sealed (seal 1): a prune forged without the seal key"
    )


async def test_a_prune_with_the_key_keeps_the_seals_that_show_a_prune_forged_before_it(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24: the seals left behind a prune forged without a MAC are what shows it. The hub's next prune would
    delete them (and its checkpoint with a MAC would let the intruder do so too), after which the forged one would
    pass for a prune from before sealing began; so the hub refuses to prune behind it, and verify keeps naming it."""
    await sealed(migrated_copy, 20)
    await forge_prune(migrated_copy, 7)
    retention = AuditRetention(
        AuditChainStore(migrated_copy),
        retention_days=30,
        interval_seconds=3600,
        seal_key=KEY,
        clock=lambda: T0 + timedelta(days=30, seconds=12),
    )
    with pytest.raises(DatabaseError, match=r"checkpoint 1 has no MAC, but rows it pruned were sealed \(seal 1\)"):
        await retention.prune_once()
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "checkpoint 1: has no MAC, but the rows it pruned were sealed (seal 1): a prune forged without the seal key"
    )


async def test_a_prune_forged_with_a_made_up_mac_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a checkpoint with any MAC may cover seals (the triggers cannot check it), so the intruder can
    delete them too; the MAC itself then fails, with the key the hub's MACs name or with any other."""
    await sealed(migrated_copy, 20)
    await forge_prune(migrated_copy, 10, mac="0" * 64, mac_key_id=KEY.id, sealing_began=True)
    assert (await verified(migrated_copy)).intact
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "checkpoint 1: its MAC does not verify: a prune forged without the seal key"
    )


async def test_a_prune_forged_with_a_mac_but_no_key_id_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the triggers let a checkpoint with any MAC cover seals, so the intruder can delete the seals of
    the rows pruned behind one whose MAC names no key; it is not taken for a prune from before sealing began."""
    await sealed(migrated_copy, 20)
    await forge_prune(migrated_copy, 10, mac="0" * 64)
    assert await AuditChainStore(migrated_copy).seal_within(0, 10) is None  # nothing left to betray it
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "checkpoint 1: has a MAC but no key id: a prune forged without the seal key"
    )


async def test_an_unsealed_prune_after_a_sealed_one_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: once a checkpoint carries a MAC, a later one without is a prune made without the key, even of
    rows whose seals it does not reach."""
    await sealed(migrated_copy, 20, batch=10)
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=10), seal_key=KEY) == 10
    assert (await verified(migrated_copy, KEY)).intact
    await forge_prune(migrated_copy, 12)
    assert fault_of(await verified(migrated_copy, KEY)).startswith(
        "checkpoint 2: has no MAC, though a checkpoint before it has one: a prune made without the seal key"
    )


async def test_rows_appended_after_the_newest_seal_are_counted_and_named_once_a_seal_follows(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24: rows appended by plain SQL after the newest seal are a warning with their count (a replica
    without the key could have written them); once the hub seals a later batch, they lie between seals: an error."""
    await sealed(migrated_copy, 10)
    await append_as_intruder(migrated_copy, 2)
    report = await verified(migrated_copy, KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.unsealed_after, report.seals.first_unsealed_after, report.rows) == (2, 11, 12)

    await sealed(migrated_copy, 3, first=20)
    assert (await verified(migrated_copy)).intact
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "row 11: is in no seal, but seal 3 follows it: appended by a writer without the seal key (forged, or a "
        "replica or command without [audit] seal_key)"
    )


class SealedWhileWalked(AuditChainStore):
    """Orders a race: a hub stores a sealed batch just before the walk reads its second chunk of rows."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.engine = engine
        self.reads = 0

    async def rows_after(self, after_id: int, limit: int) -> list[ChainRow]:
        self.reads += 1
        if self.reads == 3:  # the first read looks at the first row; then one chunk per read
            await sealed(self.engine, 2, first=20)
        return await super().rows_after(after_id, limit)


async def test_rows_counted_as_unsealed_are_named_when_a_batch_sealed_during_the_walk_follows_them(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24 with replicas: rows the walk took for the unsealed tail lie between seals once a batch stored
    meanwhile is sealed after them; the walk names them rather than warn about a tail that is not one."""
    await sealed(migrated_copy, 5)
    await append_as_intruder(migrated_copy, 1)
    store = SealedWhileWalked(migrated_copy)
    report = await verify_chain(store, seal_keys=[KEY], chunk=6)
    assert (report.rows, store.reads) == (6, 3)
    assert str(report.fault).startswith("row 6: is in no seal, but seal 2 follows it")


async def test_rows_from_before_sealing_stay_so_when_the_first_sealed_batch_comes_during_the_walk(
    migrated_copy: AsyncEngine,
) -> None:
    """Our choice: before any seal, rows without one are older than sealing, not a tail written without the key,
    once the walk meets the first seal."""
    await AuditStore(migrated_copy).insert_audit([event(n) for n in range(6)])
    report = await verify_chain(SealedWhileWalked(migrated_copy), seal_keys=[KEY], chunk=6)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.unsealed_before, report.seals.unsealed_after, report.seals.sealed_rows) == (6, 0, 2)


class PrunedWhileWalked(AuditChainStore):
    """Orders a race: another replica's prune with the key commits just after the walk read the rows, before it
    reads their seals."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.engine = engine
        self.pruned = False

    async def rows_after(self, after_id: int, limit: int) -> list[ChainRow]:
        rows = await super().rows_after(after_id, limit)
        if len(rows) > 1 and not self.pruned:  # not the walk's first look at the first row
            self.pruned = True
            assert await AuditChainStore(self.engine).prune_before(T0 + timedelta(seconds=5), seal_key=KEY) == 5
        return rows


async def test_rows_sealed_and_pruned_while_walked_are_not_reported_as_older_than_sealing(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24 with replicas (docs/audit.md: a prune during the walk moves the start, and the walk starts again
    before it reports anything): rows whose seals a prune deleted after the walk read them are not reported as
    written before sealing began; the report is the walk from the new checkpoint."""
    await sealed(migrated_copy, 10)
    report = await verify_chain(PrunedWhileWalked(migrated_copy), seal_keys=[KEY])
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.start.id, report.checkpoints, report.rows) == (5, 1, 5)
    assert (report.seals.unsealed_before, report.seals.sealed_rows) == (0, 5)


async def test_a_forged_seal_over_appended_rows_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a seal the intruder writes for their rows has no valid MAC."""
    await sealed(migrated_copy, 10)
    await append_as_intruder(migrated_copy, 1)
    head = await AuditChainStore(migrated_copy).head()
    intruders_key = SealKey.of(b"not the hub's key, 32 bytes long")
    forged = seal_values(intruders_key, first_id=11, last_id=11, last_hash=head.hash, sealed_at=T0)
    async with migrated_copy.begin() as connection:
        await connection.execute(insert(AuditSeal).values(**(forged | {"key_id": KEY.id})))
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "seal 3: its MAC does not verify: a seal forged without the seal key"
    )


@pytest.mark.parametrize(
    "columns",
    [{"mac": "\u00e9" * 64}, {"last_hash": 'a"b'}, {"last_id": 2**60}],
    ids=["mac-not-ascii", "hash-with-a-quote", "id-beyond-json-integers"],
)
async def test_a_seal_with_columns_no_mac_covers_is_named_as_forged(
    migrated_copy: AsyncEngine, columns: dict[str, Any]
) -> None:
    """Threat T24: the intruder may write anything into a seal's columns; verify names such a seal as forged, as
    any other, rather than stopping with an error of its own."""
    await sealed(migrated_copy, 10)
    head = await AuditChainStore(migrated_copy).head()
    forged = seal_values(KEY, first_id=11, last_id=11, last_hash=head.hash, sealed_at=T0) | columns
    async with migrated_copy.begin() as connection:
        await connection.execute(insert(AuditSeal).values(**forged))
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "seal 3: its MAC does not verify: a seal forged without the seal key"
    )


async def test_a_seal_copied_again_is_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: a replayed seal has a valid MAC, but covers rows another seal covers already."""
    await sealed(migrated_copy, 15)
    async with migrated_copy.begin() as connection:
        copied = (await connection.execute(select(AuditSeal).where(AuditSeal.id == 2))).mappings().one()
        await connection.execute(insert(AuditSeal).values(**{k: v for k, v in copied.items() if k != "id"}))
    assert fault_of(await verified(migrated_copy, KEY)) == "seal 4: overlaps the seal before it: a seal was copied"


async def test_a_sealed_row_changed_and_the_chain_rewritten_after_it_fails_at_its_seal(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24: rewriting every hash from an edited row on keeps the chain consistent, not the seals."""
    await sealed(migrated_copy, 15)
    chain = AuditChainStore(migrated_copy)
    rows = await chain.rows_after(6, 100)
    statements: list[Any] = []
    previous = rows[0].prev_hash
    for row in rows:
        values = {column: getattr(row, column) for column in HASHED_COLUMNS} | {"prev_hash": previous}
        if row.id == 7:
            values["outcome"] = "denied"
        previous = row_hash(values)
        statements.append(update(AuditCall).where(AuditCall.id == row.id).values(**values, row_hash=previous))
    await tamper(migrated_copy, *statements)

    assert (await verified(migrated_copy)).intact
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "seal 2: row 10's hash is not the one it sealed: a sealed row was changed and the chain rewritten after it"
    )


async def test_sealed_rows_deleted_from_the_tail_are_named(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the newest rows deleted (past the triggers) leave their seals behind, which the triggers keep."""
    await sealed(migrated_copy, 12)
    await tamper(migrated_copy, "DELETE FROM audit_calls WHERE id > 7")
    assert (await verified(migrated_copy)).intact
    assert fault_of(await verified(migrated_copy, KEY)) == (
        "seal 2: covers rows up to 10, but the chain ends at row 7: sealed rows were deleted"
    )


async def test_a_forged_row_stays_named_after_the_seals_before_it_were_pruned(migrated_copy: AsyncEngine) -> None:
    """Threat T24: the checkpoint of a sealed prune says sealing had begun, so a row between seals is still named
    when the seal before it is gone."""
    await sealed(migrated_copy, 10)
    await append_as_intruder(migrated_copy, 1)
    await sealed(migrated_copy, 5, first=20)
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=10), seal_key=KEY) == 10
    assert fault_of(await verified(migrated_copy, KEY)).startswith("row 11: is in no seal, but seal 3 follows it")


async def test_retention_with_the_key_seals_its_checkpoints_and_removes_the_pruned_seals(
    migrated_copy: AsyncEngine,
) -> None:
    """Issue 13 §7 with seals: a sealed prune verifies, chunk after chunk, and leaves no seal of a deleted row
    behind; a seal that spans the anchor stays and still matches."""
    await sealed(migrated_copy, 30, batch=7)
    chain = AuditChainStore(migrated_copy)
    retention = AuditRetention(
        chain, retention_days=30, interval_seconds=3600, seal_key=KEY, clock=lambda: T0 + timedelta(days=30, seconds=9)
    )
    assert await retention.prune_once() == 9
    checkpoints = await chain.checkpoints()
    assert [(c.anchor_id, c.mac_key_id, c.sealing_began) for c in checkpoints] == [(9, KEY.id, True)]
    remaining = [(seal.first_id, seal.last_id) for seal in await chain.seals_after((0, 0), 10)]
    assert remaining == [(8, 14), (15, 21), (22, 28), (29, 30)]
    report = await verified(migrated_copy, KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.sealed_rows, report.seals.unsealed_before) == (21, 0)


async def test_rows_and_prunes_from_before_sealing_began_verify_and_are_reported(migrated_copy: AsyncEngine) -> None:
    """Our choice: a trail that existed before `seal_key` was set verifies with the key; its unsealed rows and
    checkpoints are reported as older than sealing, and the first seal vouches for them from then on. A prune with
    the key follows such a checkpoint (it left no seal behind)."""
    await AuditStore(migrated_copy).insert_audit([event(n) for n in range(10)])
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=4)) == 4
    await sealed(migrated_copy, 6, first=10)
    report = await verified(migrated_copy, KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.unsealed_before, report.seals.unsealed_checkpoints, report.seals.sealed_rows) == (6, 1, 6)

    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=12), seal_key=KEY) == 8
    report = await verified(migrated_copy, KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.seals.unsealed_before, report.seals.unsealed_checkpoints, report.seals.sealed_rows) == (0, 1, 4)


async def test_the_checkpoints_from_before_sealing_are_checked_against_the_seals_in_one_read(
    migrated_copy: AsyncEngine,
) -> None:
    """Our choice (cost): a trail pruned long before sealing began has a checkpoint per pruned chunk, and each must
    have left no seal behind; verify asks that of the seals once for all of them, not once per checkpoint (each
    such read went through every seal: 16 s for 2,000 checkpoints over 20,000 seals, hours for a year's)."""
    await AuditStore(migrated_copy).insert_audit([event(n) for n in range(30)])
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=20), chunk=1) == 20
    await sealed(migrated_copy, 5, first=30)
    seal_reads: list[str] = []

    def count(_connection: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM audit_seals" in statement:
            seal_reads.append(statement)

    event_hooks.listen(migrated_copy.sync_engine, "before_cursor_execute", count)
    report = await verify_chain(AuditChainStore(migrated_copy), seal_keys=[KEY])
    assert report.intact, report.fault
    assert report.seals is not None
    assert (report.checkpoints, report.seals.unsealed_checkpoints, report.seals.sealed_rows) == (20, 20, 5)
    assert len(seal_reads) == 3  # one for the 20 checkpoints; the walk's: the seals of its rows, none after them


async def test_after_a_key_rotation_verify_needs_the_old_key_too(migrated_copy: AsyncEngine) -> None:
    """Our choice (rotation): each MAC names its key's id; given only the new key, verify names the first MAC it
    cannot check; given both, everything verifies."""
    await sealed(migrated_copy, 10, key=OLD_KEY)
    await sealed(migrated_copy, 10, first=10)
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=3), seal_key=OLD_KEY) == 3

    assert fault_of(await verified(migrated_copy, KEY)) == (
        f"checkpoint 1: its MAC is by key {OLD_KEY.id}, which was not given: forged without the key, or made with "
        "an older key (pass that key with --seal-key-env)"
    )
    report = await verified(migrated_copy, KEY, OLD_KEY)
    assert report.intact, report.fault
    assert report.seals is not None
    assert report.seals.seals == 4


def test_a_seal_key_shows_its_id_and_never_its_secret() -> None:
    """Our choice: the key may end up in a log line or a traceback as an object; its bytes never do."""
    assert repr(KEY) == f"SealKey(id='{KEY.id}')"
    assert len(KEY.id) == 16
    assert OLD_KEY.id != KEY.id


async def test_the_database_refuses_changing_seals_and_unsealed_prunes_of_sealed_rows(
    migrated_copy: AsyncEngine,
) -> None:
    """Threat T24: seals are append-only like the rows; only a checkpoint with a MAC may cover them, so a prune
    without the key cannot remove what vouches for the rows it deletes."""
    await sealed(migrated_copy, 10)
    statements = [
        "UPDATE audit_seals SET last_hash = 'x'",
        "DELETE FROM audit_seals WHERE id = 1",
        "UPDATE audit_checkpoints SET mac = NULL",
    ]
    if migrated_copy.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_seals")
    assert await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=2), seal_key=KEY) == 2
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"):
            async with migrated_copy.begin() as connection:
                await connection.execute(text(statement))
    with pytest.raises(DBAPIError, match="append-only: DELETE on audit_seals refused"):
        await AuditChainStore(migrated_copy).prune_before(T0 + timedelta(seconds=8))
    assert (await verified(migrated_copy, KEY)).intact
    assert await AuditChainStore(migrated_copy).is_sealed()


async def test_concurrent_sealing_writers_on_two_engines_leave_one_run_of_seals(
    migrated_url: str, migrated_copy: AsyncEngine
) -> None:
    """Threat T24 with replicas: each batch is sealed under the chain's lock in its own transaction, so the seals
    of two interleaving writers cover the chain without a gap or an overlap."""
    second = create_engine(migrated_url)
    try:
        writers = [
            AuditWriter(AuditStore(engine), batch_size=3, flush_interval_ms=5, queue_size=100, seal_key=KEY)
            for engine in (migrated_copy, second)
        ]

        async def record(writer: AuditWriter, offset: int) -> None:
            async with writer.running():
                for n in range(30):
                    await writer.record(event(offset + n))
                    if n % 4 == 0:
                        await anyio.lowlevel.checkpoint()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(record, writers[0], 0)
                group.start_soon(record, writers[1], 1000)
        report = await verified(migrated_copy, KEY)
        assert report.intact, report.fault
        assert report.seals is not None
        assert (report.seals.sealed_rows, report.seals.unsealed_after) == (60, 0)
        async with migrated_copy.connect() as connection:
            ranges = (await connection.execute(select(AuditSeal.first_id, AuditSeal.last_id))).all()
        assert sorted(ranges)[0][0] == 1
        assert all(a[1] + 1 == b[0] for a, b in zip(sorted(ranges), sorted(ranges)[1:], strict=False))
    finally:
        await second.dispose()


__all__ = ["migrated_copy", "migrated_template", "migrated_url"]  # fixtures
