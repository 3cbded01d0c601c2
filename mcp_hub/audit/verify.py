"""`verify_chain`: does the audit trail still hold what was written (threat T24, audit tampering)?

The walk (what `mcp-hub audit verify` runs; the encoding is `mcp_hub.db.audit_chain`'s):

1. The checkpoints, oldest first: each must follow the previous one (`prev_hash`), match its own hash, and
   anchor further along the chain than the one before.
2. The rows after the newest checkpoint's anchor (or from the start), in id order, `chunk` per read: each must
   follow the link before it (`prev_hash` = the previous row's `row_hash`, or the checkpoint's `anchor_hash`),
   and its columns must match its `row_hash`. No row may remain at or below the newest anchor.
3. With `expected_head` (an id and hash recorded elsewhere, such as by a sink), that row must be in the chain
   with that hash: so deleting the newest rows, or rewriting the whole chain, is detected too.
4. With `seal_keys` (`[audit] seal_key` and older keys; the MACs of `mcp_hub.db.audit_seal`), `_SealWalk`:
   - every checkpoint with a MAC must verify with the key its id names (a MAC without a key id, or a key id
     without a MAC, is forged); one without either was pruned without the key, and is taken as one from before
     sealing began only if no checkpoint before it has a MAC and no seal is left among the rows it pruned (the
     triggers let only a checkpoint with a MAC remove seals);
   - along the rows: every seal must verify, seals must not overlap, and the row a seal ends at must have the
     hash it sealed. Once sealing has begun (at the first seal, or from a newest checkpoint with `sealing_began`)
     every row must lie in a seal: a row outside every seal but before a later one was appended by a writer
     without the key. The rows after the newest seal are counted, not faulted: a replica or command without the
     key may have written them, or someone appended them since (a warning). Rows before the first seal were
     written before sealing began;
   - a seal beyond the chain's last row: sealed rows were deleted.

The first fault ends the walk and names the row (or checkpoint) where the chain stops holding:

- an edited row: "its columns do not match its hash" at that row;
- a row edited and rehashed: the next row "does not follow" it;
- a deleted row: the next row "does not follow" the one before the gap;
- an inserted row: "was inserted" at that row (the next row follows the row before it);
- reordered rows: the first moved row "does not follow" its new predecessor;
- a prune beyond its checkpoint: the first remaining row "does not follow the checkpoint's anchor";
- with the keys: a forged prune or seal, "its MAC does not verify" (or "has no MAC") at that checkpoint or seal;
  a forged append between sealed batches, "is in no seal" at that row; a sealed row changed and the chain
  rewritten after it, "is not the one it sealed" at that seal.

A prune that runs during the walk can make rows vanish ahead of it, and the seals of rows it has read: the walk
then starts again from the new checkpoint (a few times at most) before it reports anything.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import takewhile
from typing import Final

from mcp_hub.db.audit_chain import GENESIS_HASH, AuditChainStore, ChainLink, ChainRow, Checkpoint
from mcp_hub.db.audit_seal import Seal, SealKey

DEFAULT_CHUNK: Final = 2_000
_RESTARTS: Final = 3
_FIRST_SEAL_ID: Final = 2**62
"""With a row id, a position before every seal of a later row (seals are read in (last row, seal id) order)."""


@dataclass(frozen=True, slots=True)
class ChainFault:
    """Where the chain stops holding: a row id, a checkpoint id or a seal id, and what is wrong there."""

    problem: str
    row_id: int | None = None
    checkpoint_id: int | None = None
    seal_id: int | None = None

    def __str__(self) -> str:
        if self.row_id is not None:
            where = f"row {self.row_id}"
        elif self.checkpoint_id is not None:
            where = f"checkpoint {self.checkpoint_id}"
        else:
            where = f"seal {self.seal_id}"
        return f"{where}: {self.problem}"


@dataclass(frozen=True, slots=True)
class SealReport:
    """What the seals showed (a walk with the seal keys)."""

    seals: int
    """Seals whose rows were walked and matched."""
    newest: Seal | None
    """The newest of them."""
    sealed_rows: int
    unsealed_before: int
    """Rows before the first seal: written before sealing began."""
    unsealed_after: int
    """Rows after the newest seal (or all, with none): written since without the key. A warning, not a fault."""
    first_unsealed_after: int | None
    unsealed_checkpoints: int
    """Checkpoints without a MAC from before sealing began."""


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
    seals: SealReport | None = None
    """None: walked without the seal keys, so the seals were not checked."""

    @property
    def intact(self) -> bool:
        return self.fault is None


async def verify_chain(
    store: AuditChainStore,
    *,
    expected_head: ChainLink | None = None,
    seal_keys: Sequence[SealKey] = (),
    chunk: int = DEFAULT_CHUNK,
) -> ChainReport:
    """Walk the checkpoints and the rows after the newest one, and with `seal_keys` their seals (see the module
    docstring)."""
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    keys = {key.id: key for key in seal_keys}
    report = await _walk(store, expected_head, keys, chunk)
    for _ in range(_RESTARTS):
        # Even an intact walk: the seals of rows it read may have gone with the prune, their rows counted unsealed.
        if await _start_of(store) == report.start:
            return report
        report = await _walk(store, expected_head, keys, chunk)  # a prune moved the start while we walked
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


async def _walk(
    store: AuditChainStore, expected_head: ChainLink | None, keys: dict[str, SealKey], chunk: int
) -> ChainReport:
    checkpoints = await store.checkpoints()
    start = (
        ChainLink(checkpoints[-1].anchor_id, checkpoints[-1].anchor_hash) if checkpoints else ChainLink(0, GENESIS_HASH)
    )
    seals = _SealWalk(store, keys, start, chunk) if keys else None

    def report(rows: int, head: ChainLink, fault: ChainFault | None) -> ChainReport:
        return ChainReport(
            rows=rows,
            checkpoints=len(checkpoints),
            start=start,
            head=head,
            fault=fault,
            seals=None if seals is None else seals.report(),
        )

    fault = _check_checkpoints(checkpoints)
    if fault is None and seals is not None:
        fault = await seals.check_checkpoints(checkpoints)
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
        if seals is not None:
            seals.rows_read()
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
            if seals is not None and (fault := await seals.check_row(row)) is not None:
                return report(rows, previous, fault)
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
    if seals is not None and (fault := await seals.finish(previous)) is not None:
        return report(rows, previous, fault)
    return report(rows, previous, None)


def _without_mac(checkpoint: Checkpoint) -> bool:
    return checkpoint.mac is None and checkpoint.mac_key_id is None


_OLDER_KEY = "forged without the key, or made with an older key (pass that key with --seal-key-env)"


class _SealWalk:
    """The seal checks of one walk (step 4 of the module docstring), fed the checkpoints and then every row."""

    def __init__(self, store: AuditChainStore, keys: dict[str, SealKey], start: ChainLink, chunk: int) -> None:
        self._store = store
        self._keys = keys
        self._chunk = chunk
        self._upcoming: deque[Seal] = deque()
        self._read_after = (start.id, _FIRST_SEAL_ID)
        self._dry = False
        """The last read found every seal there is of the rows read so far (seals commit with their rows)."""
        self._checked_up_to = (start.id, _FIRST_SEAL_ID)
        self._previous_end: int | None = None
        self._active = False
        """Sealing has begun: every row from here on must lie in a seal."""
        self._seals = 0
        self._newest: Seal | None = None
        self._sealed_rows = 0
        self._unsealed_before = 0
        self._unsealed_after = 0
        self._first_unsealed_after: int | None = None
        self._unsealed_checkpoints = 0

    def report(self) -> SealReport:
        return SealReport(
            seals=self._seals,
            newest=self._newest,
            sealed_rows=self._sealed_rows,
            unsealed_before=self._unsealed_before,
            unsealed_after=self._unsealed_after,
            first_unsealed_after=self._first_unsealed_after,
            unsealed_checkpoints=self._unsealed_checkpoints,
        )

    async def check_checkpoints(self, checkpoints: list[Checkpoint]) -> ChainFault | None:
        unsealed = list(takewhile(_without_mac, checkpoints))
        if unsealed and (fault := await self._check_unsealed(unsealed)) is not None:
            return fault
        self._unsealed_checkpoints = len(unsealed)
        for checkpoint in checkpoints[len(unsealed) :]:
            if _without_mac(checkpoint):
                return ChainFault(
                    "has no MAC, though a checkpoint before it has one: a prune made without the seal key "
                    "(forged, or by a hub without [audit] seal_key)",
                    checkpoint_id=checkpoint.id,
                )
            if checkpoint.mac is None or checkpoint.mac_key_id is None:
                # The triggers let a checkpoint with any MAC cover seals: without its key id, no key of ours made it.
                half = "a MAC but no key id" if checkpoint.mac is not None else "a key id but no MAC"
                return ChainFault(f"has {half}: a prune forged without the seal key", checkpoint_id=checkpoint.id)
            key = self._keys.get(checkpoint.mac_key_id)
            if key is None:
                return ChainFault(
                    f"its MAC is by key {checkpoint.mac_key_id}, which was not given: {_OLDER_KEY}",
                    checkpoint_id=checkpoint.id,
                )
            if not key.verifies(checkpoint.mac_document(), checkpoint.mac):
                return ChainFault(
                    "its MAC does not verify: a prune forged without the seal key", checkpoint_id=checkpoint.id
                )
        newest = checkpoints[-1] if checkpoints else None
        self._active = newest is not None and newest.mac is not None and bool(newest.sealing_began)
        return None

    async def _check_unsealed(self, unsealed: list[Checkpoint]) -> ChainFault | None:
        """The checkpoints without a MAC before every one with a MAC are from before sealing began if they pruned no
        sealed row: no seal is left up to the newest one's anchor (only a checkpoint with a MAC lets seals be
        deleted). One read for all of them (there is one per pruned chunk); a seal found is blamed on the first of
        them that pruned a row of it."""
        seal = await self._store.seal_within(0, unsealed[-1].anchor_id)
        if seal is None:
            return None
        checkpoint = next(checkpoint for checkpoint in unsealed if checkpoint.anchor_id >= seal.first_id)
        return self._forged(seal) or ChainFault(
            f"has no MAC, but the rows it pruned were sealed (seal {seal.id}): a prune forged without the seal key",
            checkpoint_id=checkpoint.id,
        )

    def rows_read(self) -> None:
        """A chunk of rows was read: the seals committed with them may be read now."""
        self._dry = False

    async def check_row(self, row: ChainRow) -> ChainFault | None:
        """`row` (which follows the chain) against the seal that reaches it, if any."""
        seal = await self._next_seal()
        if isinstance(seal, ChainFault):
            return seal
        if seal is not None and seal.last_id < row.id:
            return ChainFault(f"its last row {seal.last_id} is not in the chain", seal_id=seal.id)
        if seal is not None and self._first_unsealed_after is not None:
            # A batch sealed while we walked follows the rows we took for the unsealed tail: they lie before it.
            if self._active:
                return self._between_seals(self._first_unsealed_after, seal)
            self._unsealed_before += self._unsealed_after
            self._unsealed_after, self._first_unsealed_after = 0, None
        if seal is None or row.id < seal.first_id:
            return self._unsealed(row, later_seal=seal)
        self._active = True
        self._sealed_rows += 1
        if row.id == seal.last_id:
            if row.row_hash != seal.last_hash:
                return ChainFault(
                    f"row {row.id}'s hash is not the one it sealed: a sealed row was changed and the chain rewritten "
                    "after it",
                    seal_id=seal.id,
                )
            self._upcoming.popleft()
            self._seals += 1
            self._newest = seal
        return None

    async def finish(self, head: ChainLink) -> ChainFault | None:
        """After the last row (`head`): no seal may reach beyond it."""
        self._dry = False
        seal = await self._next_seal()
        if seal is None or isinstance(seal, ChainFault):
            return seal
        if seal.first_id > head.id and await self._store.rows_after(head.id, 1):
            return None  # a batch stored while we walked: its rows come after the head we report
        return ChainFault(
            f"covers rows up to {seal.last_id}, but the chain ends at row {head.id}: sealed rows were deleted",
            seal_id=seal.id,
        )

    def _unsealed(self, row: ChainRow, *, later_seal: Seal | None) -> ChainFault | None:
        if later_seal is None:
            self._unsealed_after += 1
            if self._first_unsealed_after is None:
                self._first_unsealed_after = row.id
        elif self._active:
            return self._between_seals(row.id, later_seal)
        else:
            self._unsealed_before += 1
        return None

    @staticmethod
    def _between_seals(row_id: int, later_seal: Seal) -> ChainFault:
        return ChainFault(
            f"is in no seal, but seal {later_seal.id} follows it: appended by a writer without the seal key "
            "(forged, or a replica or command without [audit] seal_key)",
            row_id,
        )

    async def _next_seal(self) -> Seal | ChainFault | None:
        """The first seal not yet passed, checked (its MAC; no overlap with the one before), or None."""
        if not self._upcoming and not self._dry:
            read = await self._store.seals_after(self._read_after, self._chunk)
            self._upcoming.extend(read)
            if read:
                self._read_after = (read[-1].last_id, read[-1].id)
            self._dry = len(read) < self._chunk
        if not self._upcoming:
            return None
        seal = self._upcoming[0]
        if (seal.last_id, seal.id) > self._checked_up_to:
            if (fault := self._forged(seal)) is not None:
                return fault
            if self._previous_end is not None and seal.first_id <= self._previous_end:
                return ChainFault("overlaps the seal before it: a seal was copied", seal_id=seal.id)
            self._checked_up_to, self._previous_end = (seal.last_id, seal.id), seal.last_id
        return seal

    def _forged(self, seal: Seal) -> ChainFault | None:
        key = self._keys.get(seal.key_id)
        if key is None:
            return ChainFault(f"its MAC is by key {seal.key_id}, which was not given: {_OLDER_KEY}", seal_id=seal.id)
        if not seal.verifies_with(key):
            return ChainFault("its MAC does not verify: a seal forged without the seal key", seal_id=seal.id)
        return None
