"""The audit trail's hash chain (threat T24, audit tampering): how a row and a checkpoint are hashed, the
chain's head, the checkpoints, the retention prune, and the rows in chain order for `mcp_hub.audit.verify`.

Row hash (version 1): SHA-256, hex, of the RFC 8785 canonical JSON of `{"v": 1, "id": ..., "at": ..., <every
other column of the row>, "prev_hash": ...}`, where `at` is ISO 8601 in UTC with microseconds
(`2026-12-05T22:00:00.000000+00:00`) and `prev_hash` is the previous row's `row_hash` (or, for the first row
after a prune, the newest checkpoint's `anchor_hash`; for the very first row, `GENESIS_HASH`). So each row
commits to its own fields, its id and, through `prev_hash`, to every row before it.

Extending the chain is serialised: `AuditStore.insert_audit` takes `lock_chain` (PostgreSQL: the transaction-level
advisory lock `CHAIN_LOCK_KEY`, which every replica's writer and the prune take; SQLite: the write transaction,
which opens with `BEGIN IMMEDIATE`), reads `chain_head`, and assigns the ids itself (head + 1, + 2, ...): the
sequence is not used, so ids are in chain order and, from migration 0012 on, gapless.

Checkpoints (`audit_checkpoints`) are what the retention prune leaves behind: the id, time and hash of the last
row it deleted (the anchor), how many rows it deleted, and a hash chained over the previous checkpoint's in the
same way (`checkpoint_hash`). The database refuses (by trigger, migration 0012) every UPDATE of `audit_calls` and
every DELETE of a row that no checkpoint covers (`id > max(anchor_id)`), and every UPDATE or DELETE of a
checkpoint: a prune is "write the checkpoint, then delete up to its anchor", in one transaction.

With `[audit] seal_key` (`mcp_hub.db.audit_seal`), the prune also MACs its checkpoint and deletes the seals of the
rows it deleted (the triggers of migration 0014 let only a checkpoint with a MAC cover seals); it refuses to prune
behind a checkpoint without a MAC whose rows were sealed (a forged prune: deleting those seals would hide it). The
reads of the seals for `mcp_hub.audit.verify` are here too.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import rfc8785
from sqlalchemy import delete, exists, insert, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_hub.db._base import Store, advisory_xact_lock, record_of, require_aware
from mcp_hub.db.audit_seal import Seal, SealKey, checkpoint_document
from mcp_hub.db.models import AuditCall, AuditCheckpoint, AuditSeal
from mcp_hub.errors import DatabaseError

GENESIS_HASH: Final = "0" * 64
"""What the first row of a chain commits to as its previous hash."""
CHAIN_VERSION: Final = 1
CHAIN_LOCK_KEY: Final = 0x6D63_7068_7562_0001
"""PostgreSQL advisory lock (transaction level) that serialises extending and pruning the chain."""

HASHED_COLUMNS: Final = (
    "id",
    "at",
    "client",
    "session",
    "public_name",
    "connector_id",
    "downstream_name",
    "outcome",
    "latency_ms",
    "detail",
    "method",
    "downstream_ms",
    "prev_hash",
)
"""The columns of `audit_calls` a row's hash covers: all but `row_hash` itself."""


def canonical_time(at: datetime) -> str:
    """`at` as the chain encodes it: ISO 8601, UTC, microseconds."""
    require_aware("at", at)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


_MAX_EXACT_INTEGER: Final = 2**53
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(_canonical(document)).hexdigest()


def _canonical(document: Mapping[str, Any]) -> bytes:
    """The RFC 8785 text of a flat document (an audit row or a checkpoint): the standard library's compact, sorted
    JSON where that is the JCS text byte for byte, else `rfc8785` (pure Python: a tenth of the hub's CPU per call
    went to hashing audit rows with it). Equal where it matters, by construction and by a property test:
    - a float whose `repr` has no exponent (from 1e-4 to below 1e16) is written as `repr` writes it, ECMAScript's
      shortest round-trip digits too, and a whole one as that integer (JCS: `5`, not `5.0`; below 1e16 the
      doubles are at most 2 apart, so the shortest digits padded with zeros are the value itself); a float with an
      exponent (where the two notations differ) takes the slow way;
    - strings: the same escapes (quote, backslash, the named controls, others as lowercase `\\u00xx`), the rest
      as is; a lone surrogate takes the slow way. The keys are column names (ASCII): the two key orders agree."""
    values: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, float):
            if "e" in repr(value) or not math.isfinite(value):
                return rfc8785.dumps(dict(document))
            if value.is_integer():
                value = int(value)
        elif isinstance(value, str) and _SURROGATE.search(value) is not None:
            return rfc8785.dumps(dict(document))
        elif isinstance(value, int) and abs(value) >= _MAX_EXACT_INTEGER:
            return rfc8785.dumps(dict(document))  # which refuses it, as it always did
        values[key] = value
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def row_hash(values: Mapping[str, Any]) -> str:
    """The hash of an `audit_calls` row from its column values (`HASHED_COLUMNS`, `prev_hash` included)."""
    document: dict[str, Any] = {"v": CHAIN_VERSION}
    for column in HASHED_COLUMNS:
        value = values[column]
        document[column] = canonical_time(value) if column == "at" else value
    return _digest(document)


@dataclass(frozen=True, slots=True)
class ChainLink:
    """Where the chain ends: the id and hash the next row follows (id 0 and `GENESIS_HASH` for an empty chain)."""

    id: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a prune left behind: rows up to `anchor_id` (whose hash was `anchor_hash`) were deleted."""

    id: int
    at: datetime
    anchor_id: int
    anchor_at: datetime
    anchor_hash: str
    pruned_rows: int
    prev_hash: str
    checkpoint_hash: str
    mac_key_id: str | None
    """The seal key whose MAC `mac` is; None: pruned without a seal key."""
    mac: str | None
    sealing_began: bool | None
    """Whether every row after the anchor must be sealed (covered by `mac`)."""

    def mac_document(self) -> dict[str, Any]:
        """What `mac` authenticates (`mcp_hub.db.audit_seal`)."""
        return checkpoint_document(checkpoint_hash=self.checkpoint_hash, sealing_began=bool(self.sealing_began))

    def expected_hash(self) -> str:
        """The hash this checkpoint's fields and `prev_hash` must have."""
        return checkpoint_hash(
            at=self.at,
            anchor_id=self.anchor_id,
            anchor_at=self.anchor_at,
            anchor_hash=self.anchor_hash,
            pruned_rows=self.pruned_rows,
            prev_hash=self.prev_hash,
        )


def checkpoint_hash(
    *, at: datetime, anchor_id: int, anchor_at: datetime, anchor_hash: str, pruned_rows: int, prev_hash: str
) -> str:
    """The hash of a checkpoint: its fields and the previous checkpoint's hash (or `GENESIS_HASH`)."""
    return _digest(
        {
            "v": CHAIN_VERSION,
            "kind": "checkpoint",
            "at": canonical_time(at),
            "anchor_id": anchor_id,
            "anchor_at": canonical_time(anchor_at),
            "anchor_hash": anchor_hash,
            "pruned_rows": pruned_rows,
            "prev_hash": prev_hash,
        }
    )


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One `audit_calls` row with every column, as the verifier reads it."""

    id: int
    at: datetime
    client: str
    session: str | None
    public_name: str
    connector_id: str | None
    downstream_name: str | None
    outcome: str
    latency_ms: float
    detail: str | None
    method: str
    downstream_ms: float | None
    prev_hash: str
    row_hash: str

    def expected_hash(self) -> str:
        """The hash this row's fields must have."""
        return row_hash({column: getattr(self, column) for column in HASHED_COLUMNS})


async def lock_chain(session: AsyncSession) -> None:
    """Serialise chain extension with every other writer until `session`'s transaction ends."""
    await advisory_xact_lock(session, CHAIN_LOCK_KEY)


async def chain_head(session: AsyncSession) -> ChainLink:
    """The last link of the chain: its newest row, else the newest checkpoint's anchor, else the genesis."""
    newest = (
        await session.execute(select(AuditCall.id, AuditCall.row_hash).order_by(AuditCall.id.desc()).limit(1))
    ).first()
    if newest is not None:
        return ChainLink(newest.id, newest.row_hash)
    anchor = (
        await session.execute(
            select(AuditCheckpoint.anchor_id, AuditCheckpoint.anchor_hash).order_by(AuditCheckpoint.id.desc()).limit(1)
        )
    ).first()
    if anchor is not None:
        return ChainLink(anchor.anchor_id, anchor.anchor_hash)
    return ChainLink(0, GENESIS_HASH)


def chain_values(head: ChainLink, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (column values without id and hashes) as the next links after `head`: ids, `prev_hash`, `row_hash`."""
    chained: list[dict[str, Any]] = []
    previous = head
    for row in rows:
        values = {**row, "id": previous.id + 1, "prev_hash": previous.hash}
        values["row_hash"] = row_hash(values)
        chained.append(values)
        previous = ChainLink(previous.id + 1, values["row_hash"])
    return chained


class AuditChainStore(Store):
    """Reads the chain and its seals for verification; writes checkpoints and prunes (the only deletion of audit
    rows and seals)."""

    async def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first (there is one per pruned chunk, so they stay few)."""
        rows = await self._every(select(AuditCheckpoint).order_by(AuditCheckpoint.id))
        return [record_of(Checkpoint, row) for row in rows]

    async def rows_after(self, after_id: int, limit: int) -> list[ChainRow]:
        """Up to `limit` rows with ids above `after_id`, in chain (id) order."""
        query = select(AuditCall).where(AuditCall.id > after_id).order_by(AuditCall.id).limit(limit)
        return [record_of(ChainRow, row) for row in await self._every(query)]

    async def head(self) -> ChainLink:
        """The chain's last link now."""
        async with self._reads() as session:
            return await chain_head(session)

    async def seals_after(self, after: tuple[int, int], limit: int) -> list[Seal]:
        """Up to `limit` seals after `after` (a last row's id and a seal's id), in the order of their last rows."""
        query = (
            select(AuditSeal)
            .where(tuple_(AuditSeal.last_id, AuditSeal.id) > tuple_(*after))
            .order_by(AuditSeal.last_id, AuditSeal.id)
            .limit(limit)
        )
        return [record_of(Seal, row) for row in await self._every(query)]

    async def seal_within(self, after_id: int, up_to_id: int) -> Seal | None:
        """A seal of any row with an id above `after_id` and at most `up_to_id`, if there is one."""
        query = (
            select(AuditSeal)
            .where(AuditSeal.first_id <= up_to_id, AuditSeal.last_id > after_id)
            .order_by(AuditSeal.last_id)
            .limit(1)
        )
        row = await self._first(query)
        return None if row is None else record_of(Seal, row)

    async def is_sealed(self) -> bool:
        """Whether the trail holds a seal, or a checkpoint with a MAC: then rows must not be written without a key."""
        query = select(
            or_(
                exists(select(AuditSeal.id)), exists(select(AuditCheckpoint.id).where(AuditCheckpoint.mac.is_not(None)))
            )
        )
        async with self._reads() as session:
            return bool(await session.scalar(query))

    async def prune_before(self, cutoff: datetime, *, chunk: int = 5_000, seal_key: SealKey | None = None) -> int:
        """Delete the oldest rows, up to the first row at or after `cutoff`, in chunks of at most `chunk` rows,
        each behind a checkpoint (with `seal_key`, a checkpoint with a MAC, and the seals of the deleted rows are
        deleted too); how many rows were deleted."""
        require_aware("cutoff", cutoff)
        if chunk <= 0:
            raise ValueError("chunk must be positive")
        pruned = 0
        while True:
            deleted = await self._prune_chunk(cutoff, chunk, seal_key)
            if deleted == 0:
                return pruned
            pruned += deleted

    async def _prune_chunk(self, cutoff: datetime, chunk: int, seal_key: SealKey | None) -> int:
        async with self._writes.begin() as session:
            await lock_chain(session)
            # The pruned rows are a prefix of the chain: they stop before the first row at or after the cutoff
            # (rows are in chain order, their times only roughly so).
            # Walked in id order from the oldest row: it reads about as many rows as it will prune.
            first_kept = await session.scalar(
                select(AuditCall.id).where(AuditCall.at >= cutoff).order_by(AuditCall.id).limit(1)
            )
            candidates = select(AuditCall.id, AuditCall.at, AuditCall.row_hash).order_by(AuditCall.id).limit(chunk)
            if first_kept is not None:
                candidates = candidates.where(AuditCall.id < first_kept)
            rows = (await session.execute(candidates)).all()
            if not rows:
                return 0
            anchor = rows[-1]
            previous = (
                await session.execute(
                    select(
                        AuditCheckpoint.id,
                        AuditCheckpoint.anchor_id,
                        AuditCheckpoint.checkpoint_hash,
                        AuditCheckpoint.mac,
                        AuditCheckpoint.sealing_began,
                    )
                    .order_by(AuditCheckpoint.id.desc())
                    .limit(1)
                )
            ).first()
            if seal_key is not None and previous is not None and previous.mac is None:
                await _refuse_to_bury_a_forged_prune(session, previous.id, previous.anchor_id)
            fields: dict[str, Any] = {
                "at": self._clock(),
                "anchor_id": anchor.id,
                "anchor_at": anchor.at,
                "anchor_hash": anchor.row_hash,
                "pruned_rows": len(rows),
                "prev_hash": GENESIS_HASH if previous is None else previous.checkpoint_hash,
            }
            values = {**fields, "checkpoint_hash": checkpoint_hash(**fields)}
            if seal_key is not None:
                reaches_a_seal = await session.scalar(select(exists().where(AuditSeal.first_id <= anchor.id)))
                began = bool(reaches_a_seal) or (previous is not None and bool(previous.sealing_began))
                mac = seal_key.mac(checkpoint_document(checkpoint_hash=values["checkpoint_hash"], sealing_began=began))
                values |= {"mac_key_id": seal_key.id, "mac": mac, "sealing_began": began}
            await session.execute(insert(AuditCheckpoint), [values])
            await session.execute(delete(AuditCall).where(AuditCall.id <= anchor.id))
            # Without a MAC on the checkpoint the triggers refuse this if it would delete a seal: an unsealed
            # prune of a sealed trail fails instead of removing what vouches for it.
            await session.execute(delete(AuditSeal).where(AuditSeal.last_id <= anchor.id))
            return len(rows)


async def _refuse_to_bury_a_forged_prune(session: AsyncSession, checkpoint_id: int, anchor_id: int) -> None:
    """A checkpoint without a MAC whose rows were sealed is a prune forged without the key; the seals it left are
    what shows it (`verify`). A prune with the key would delete them, and its checkpoint would let anyone delete
    them (the triggers of migration 0014), so it refuses."""
    betraying = await session.scalar(
        select(AuditSeal.id).where(AuditSeal.first_id <= anchor_id).order_by(AuditSeal.last_id).limit(1)
    )
    if betraying is not None:
        raise DatabaseError(
            f"audit prune refused: checkpoint {checkpoint_id} has no MAC, but rows it pruned were sealed (seal "
            f"{betraying}): a prune forged without the seal key, which pruning behind it would hide (mcp-hub audit "
            "verify names it)"
        )
