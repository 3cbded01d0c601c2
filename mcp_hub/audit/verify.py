"""`verify_chain`: does the audit trail still hold what was written (threat T24, audit tampering)?

The walk (what `mcp-hub audit verify` runs; the encoding is `mcp_hub.db.audit_chain`'s):

1. The checkpoints, oldest first: each must follow the previous one (`prev_hash`), match its own hash, and
   anchor further along the chain than the one before.
2. The rows after the newest checkpoint's anchor (or from the start), in id order, `chunk` per read: each must
   follow the link before it (`prev_hash` = the previous row's `row_hash`, or the checkpoint's `anchor_hash`),
   and its columns must match its `row_hash`. No row may remain at or below the newest anchor.
3. With `expected_head` (an id and hash recorded elsewhere, such as by a sink), that row must be in the chain
   with that hash: so deleting the newest rows, or rewriting the whole chain, is detected too.

The first fault ends the walk and names the row (or checkpoint) where the chain stops holding:

- an edited row: "its columns do not match its hash" at that row;
- a row edited and rehashed: the next row "does not follow" it;
- a deleted row: the next row "does not follow" the one before the gap;
- an inserted row: "was inserted" at that row (the next row follows the row before it);
- reordered rows: the first moved row "does not follow" its new predecessor;
- a prune beyond its checkpoint: the first remaining row "does not follow the checkpoint's anchor".

A prune that runs during the walk can make rows vanish ahead of it: the walk then starts again from the new
checkpoint (a few times at most) before it reports a fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mcp_hub.db.audit_chain import GENESIS_HASH, AuditChainStore, ChainLink, Checkpoint

DEFAULT_CHUNK: Final = 2_000
_RESTARTS: Final = 3


@dataclass(frozen=True, slots=True)
class ChainFault:
    """Where the chain stops holding: a row id or a checkpoint id, and what is wrong there."""

    problem: str
    row_id: int | None = None
    checkpoint_id: int | None = None

    def __str__(self) -> str:
        where = f"row {self.row_id}" if self.row_id is not None else f"checkpoint {self.checkpoint_id}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The outcome of a walk: how much was checked, where it started and ended, and the first fault if any."""

    rows: int
    checkpoints: int
    start: ChainLink
    """The link the walked rows follow: the newest checkpoint's anchor, or id 0 and `GENESIS_HASH`."""
    head: ChainLink
    """The last row walked (or `start` if there was none)."""
    fault: ChainFault | None

    @property
    def intact(self) -> bool:
        return self.fault is None


async def verify_chain(
    store: AuditChainStore, *, expected_head: ChainLink | None = None, chunk: int = DEFAULT_CHUNK
) -> ChainReport:
    """Walk the checkpoints and the rows after the newest one (see the module docstring)."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    report = await _walk(store, expected_head, chunk)
    for _ in range(_RESTARTS):
        if report.intact or await _start_of(store) == report.start:
            return report
        report = await _walk(store, expected_head, chunk)  # a prune moved the start while we walked
    return report


async def _start_of(store: AuditChainStore) -> ChainLink:
    checkpoints = await store.checkpoints()
    if not checkpoints:
        return ChainLink(0, GENESIS_HASH)
    return ChainLink(checkpoints[-1].anchor_id, checkpoints[-1].anchor_hash)


def _check_checkpoints(checkpoints: list[Checkpoint]) -> ChainFault | None:
    previous_hash, previous_anchor = GENESIS_HASH, 0
    for checkpoint in checkpoints:
        if checkpoint.prev_hash != previous_hash:
            return ChainFault(
                "does not follow the checkpoint before it: a checkpoint was deleted, inserted or reordered",
                checkpoint_id=checkpoint.id,
            )
        if checkpoint.expected_hash() != checkpoint.checkpoint_hash:
            return ChainFault("its columns do not match its hash: it was edited", checkpoint_id=checkpoint.id)
        if checkpoint.anchor_id <= previous_anchor:
            return ChainFault("its anchor is not after the previous checkpoint's", checkpoint_id=checkpoint.id)
        previous_hash, previous_anchor = checkpoint.checkpoint_hash, checkpoint.anchor_id
    return None


async def _walk(store: AuditChainStore, expected_head: ChainLink | None, chunk: int) -> ChainReport:
    checkpoints = await store.checkpoints()
    start = (
        ChainLink(checkpoints[-1].anchor_id, checkpoints[-1].anchor_hash) if checkpoints else ChainLink(0, GENESIS_HASH)
    )

    def report(rows: int, head: ChainLink, fault: ChainFault | None) -> ChainReport:
        return ChainReport(rows=rows, checkpoints=len(checkpoints), start=start, head=head, fault=fault)

    fault = _check_checkpoints(checkpoints)
    if fault is not None:
        return report(0, start, fault)
    first = await store.rows_after(0, 1)
    if first and first[0].id <= start.id:
        return report(
            0, start, ChainFault(f"lies at or before the newest checkpoint's anchor (row {start.id})", first[0].id)
        )

    previous, before_previous = start, None
    rows = 0
    head_seen = expected_head is None or expected_head.id <= start.id
    while True:
        batch = await store.rows_after(previous.id, chunk)
        for row in batch:
            if row.prev_hash != previous.hash:
                if before_previous is not None and row.prev_hash == before_previous.hash:
                    fault = ChainFault(f"was inserted: row {row.id} follows the row before it", previous.id)
                elif previous == start and start.id > 0:
                    fault = ChainFault(
                        f"does not follow the newest checkpoint's anchor (row {start.id}): rows after the anchor "
                        "were deleted, or this row was changed",
                        row.id,
                    )
                elif previous.id == 0:
                    fault = ChainFault(
                        "does not follow the start of the chain: rows before it were deleted, or rows reordered", row.id
                    )
                else:
                    fault = ChainFault(
                        f"does not follow row {previous.id}: that row was changed, a row between them deleted, or "
                        "rows reordered",
                        row.id,
                    )
                return report(rows, previous, fault)
            if row.expected_hash() != row.row_hash:
                return report(rows, previous, ChainFault("its columns do not match its hash: it was edited", row.id))
            if expected_head is not None and row.id == expected_head.id:
                if row.row_hash != expected_head.hash:
                    return report(rows, previous, ChainFault("its hash is not the expected head's", row.id))
                head_seen = True
            before_previous, previous = previous, ChainLink(row.id, row.row_hash)
            rows += 1
        if len(batch) < chunk:
            break
    if not head_seen and expected_head is not None:
        return report(
            rows,
            previous,
            ChainFault(f"the expected head is missing: the chain ends at row {previous.id}", expected_head.id),
        )
    return report(rows, previous, None)
