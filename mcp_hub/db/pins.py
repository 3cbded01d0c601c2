"""`PinStore`: every definition a connector offered, pinned by its SHA-256, and what was decided about it.

Issue 11 §1, threat T16. A row is one (connector, kind, name, SHA-256). At most one row per name is `approved`
(a partial unique index): that digest is the pin, and the hub offers the name only while the downstream offers
exactly it. Rows are never deleted: a name that disappears and comes back is compared with its pin, so a
re-added name with another definition is a change, not a new tool.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_hub.db._base import Store, require_aware
from mcp_hub.db.models import CatalogPin
from mcp_hub.domain import CatalogKind, ConnectorId, PinStatus
from mcp_hub.errors import CatalogError

_LIVE = (PinStatus.PENDING, PinStatus.APPROVED, PinStatus.REJECTED, PinStatus.REFUSED)

Decisions = dict[tuple[CatalogKind, str, str], PinStatus]
"""What was decided about a connector's definitions, by (kind, name, SHA-256)."""


@dataclass(frozen=True, slots=True)
class PinRecord:
    """A stored pin row."""

    id: int
    connector_id: ConnectorId
    kind: CatalogKind
    name: str
    public_name: str
    sha256: str
    definition: dict[str, Any] = field(hash=False)
    flags: tuple[str, ...]
    status: PinStatus
    first_seen: datetime
    last_seen: datetime
    decided_by: str | None
    decided_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class Sighting:
    """A definition the hub saw and what it makes of it: `PENDING` (waits), `APPROVED` (accepted by `decided_by`:
    `auto` or `lock`), or `REFUSED` (with `reason`)."""

    kind: CatalogKind
    name: str
    public_name: str
    sha256: str
    definition: dict[str, Any] = field(hash=False)
    flags: tuple[str, ...]
    status: PinStatus
    decided_by: str | None = None
    reason: str | None = None


class PinStore(Store):
    """Pins and review decisions."""

    async def pins_of(self, connector_id: str) -> list[PinRecord]:
        """Every row of `connector_id` but superseded ones: what decides what it may offer now."""
        query = select(CatalogPin).where(
            CatalogPin.connector_id == connector_id, CatalogPin.status.in_([status.value for status in _LIVE])
        )
        return [_record(row) for row in await self._every(query)]

    async def decisions(self, connector_ids: Collection[str]) -> dict[ConnectorId, Decisions]:
        """Per connector of `connector_ids`, the status of each (kind, name, SHA-256) but superseded ones: what
        `pins_of` says, without reading the definitions (one statement for a whole batch of connectors)."""
        query = select(
            CatalogPin.connector_id, CatalogPin.kind, CatalogPin.name, CatalogPin.sha256, CatalogPin.status
        ).where(
            CatalogPin.connector_id.in_(sorted(set(connector_ids))),
            CatalogPin.status.in_([status.value for status in _LIVE]),
        )
        found: dict[ConnectorId, Decisions] = {ConnectorId(connector_id): {} for connector_id in connector_ids}
        async with self._reads() as session:
            for connector_id, kind, name, sha256, status in await session.execute(query):
                found[ConnectorId(connector_id)][(CatalogKind(kind), name, sha256)] = PinStatus(status)
        return found

    async def observe(self, connector_id: str, sightings: Sequence[Sighting], now: datetime) -> list[PinRecord]:
        """Record what the hub saw; returns the rows whose status this changed (to audit), in `sightings` order.

        A `PENDING` sighting of a new digest adds a pending row; of a superseded one makes it pending again (a
        return to an older definition is a change). An `APPROVED` sighting supersedes the name's other pin.
        A digest already decided keeps its decision.
        """
        return await self.observe_many({connector_id: sightings}, now)

    async def observe_many(self, sightings: Mapping[str, Sequence[Sighting]], now: datetime) -> list[PinRecord]:
        """`observe` for several connectors in one transaction; the changed rows connector by connector."""
        require_aware("now", now)
        try:
            return await self._observe(sightings, now)
        except IntegrityError:
            # Replicas list the same downstream at once: another one recorded this new digest first. Once more,
            # now seeing its row (and keeping its decision), instead of offering nothing new until the next listing.
            return await self._observe(sightings, now)

    async def _observe(self, sightings: Mapping[str, Sequence[Sighting]], now: datetime) -> list[PinRecord]:
        if not any(sightings.values()):
            return []
        # One read of the connectors' rows (their definitions left out), then one executemany per kind of write:
        # a connector listing 100 new tools is a handful of statements, not three hundred, and no ORM unit of
        # work (federating 10,000 tools spent most of its time in one).
        light = [column for column in CatalogPin.__table__.columns if column.name != "definition"]
        async with self._writes.begin() as session:
            result = await session.execute(select(*light).where(CatalogPin.connector_id.in_(sorted(sightings))))
            rows = [_Pin(dict(row)) for row in result.mappings()]
            by_digest = {row.digest: row for row in rows}
            pins = {row.digest[:3]: row for row in rows if row.values["status"] == PinStatus.APPROVED}
            changed: list[_Pin] = []
            for connector_id, seen in sightings.items():
                for sighting in seen:
                    digest = (connector_id, sighting.kind.value, sighting.name, sighting.sha256)
                    row = by_digest.get(digest)
                    status = None if row is None else row.values["status"]
                    if row is not None and status not in (PinStatus.PENDING, PinStatus.SUPERSEDED):
                        continue
                    if row is not None and status == PinStatus.PENDING and sighting.status is PinStatus.PENDING:
                        row.set(last_seen=now)
                        continue
                    if sighting.status is PinStatus.APPROVED:
                        pinned = pins.pop(digest[:3], None)
                        if pinned is not None:
                            pinned.set(status=PinStatus.SUPERSEDED.value, decided_at=now)
                    if row is None:
                        row = _Pin.new(connector_id, sighting, now)
                        by_digest[digest] = row
                    decided = sighting.status is not PinStatus.PENDING
                    row.set(
                        status=sighting.status.value,
                        last_seen=now,
                        decided_by=sighting.decided_by if decided else None,
                        decided_at=now if decided else None,
                        reason=sighting.reason,
                    )
                    if sighting.status is PinStatus.APPROVED:
                        pins[digest[:3]] = row
                    changed.append(row)
            await _write(session, [row for row in by_digest.values() if row.dirty])
            definitions = await _definitions(session, [row for row in changed if row.definition is None])
            return [row.record(definitions) for row in changed]

    async def decide(
        self, public_name: str, *, approve: bool, by: str, reason: str | None, sha256: str | None, now: datetime
    ) -> list[PinRecord]:
        """Approve (the newest pending digest of each name, or the one whose digest starts with `sha256`) or
        reject (every pending digest) what waits under `public_name`; `CatalogError` if nothing waits."""
        require_aware("now", now)
        async with self._writes.begin() as session:
            query = select(CatalogPin).where(
                CatalogPin.public_name == public_name, CatalogPin.status == PinStatus.PENDING.value
            )
            waiting = list(
                (await session.scalars(query.order_by(CatalogPin.last_seen.desc(), CatalogPin.id.desc()))).all()
            )
            if sha256 is not None:
                waiting = [row for row in waiting if row.sha256.startswith(sha256.lower())]
            if not waiting:
                raise CatalogError(f"nothing waits for review under {public_name!r} (mcp-hub catalog review)")
            chosen: list[CatalogPin] = []
            if approve:
                names: set[tuple[str, str, str]] = set()
                for row in waiting:
                    if (row.connector_id, row.kind, row.name) not in names:
                        names.add((row.connector_id, row.kind, row.name))
                        chosen.append(row)
            else:
                chosen = waiting
            for row in chosen:
                if approve:
                    await _supersede(session, row.connector_id, CatalogKind(row.kind), row.name, now)
                row.status = (PinStatus.APPROVED if approve else PinStatus.REJECTED).value
                row.decided_by = by
                row.decided_at = now
                row.reason = reason
            await session.flush()
            return [_record(row) for row in chosen]

    async def waiting(self) -> list[PinRecord]:
        """What waits for an admin, and what the hub refused, sorted by public name."""
        query = select(CatalogPin).where(CatalogPin.status.in_([PinStatus.PENDING.value, PinStatus.REFUSED.value]))
        return [_record(row) for row in await self._every(query.order_by(CatalogPin.public_name, CatalogPin.id))]

    async def approved(self) -> list[PinRecord]:
        """Every pin (approved row), sorted by connector, kind and name."""
        query = select(CatalogPin).where(CatalogPin.status == PinStatus.APPROVED.value)
        order = (CatalogPin.connector_id, CatalogPin.kind, CatalogPin.name)
        return [_record(row) for row in await self._every(query.order_by(*order))]

    async def history(self, public_name: str) -> list[PinRecord]:
        """Every row under `public_name`, oldest first."""
        query = select(CatalogPin).where(CatalogPin.public_name == public_name).order_by(CatalogPin.id)
        return [_record(row) for row in await self._every(query)]

    async def generations(self) -> dict[ConnectorId, tuple[int, datetime | None]]:
        """Per connector, the count of its decided rows and its latest decision: changes whenever a decision about
        one of its definitions is made anywhere (so a watcher re-applies that connector alone)."""
        async with self._reads() as session:
            rows = await session.execute(
                select(CatalogPin.connector_id, func.count(CatalogPin.id), func.max(CatalogPin.decided_at))
                .where(CatalogPin.decided_at.is_not(None))
                .group_by(CatalogPin.connector_id)
            )
            return {ConnectorId(row[0]): (int(row[1]), row[2]) for row in rows}


async def _supersede(session: AsyncSession, connector_id: str, kind: CatalogKind, name: str, now: datetime) -> None:
    await session.execute(
        update(CatalogPin)
        .where(
            and_(
                CatalogPin.connector_id == connector_id,
                CatalogPin.kind == kind.value,
                CatalogPin.name == name,
                CatalogPin.status == PinStatus.APPROVED.value,
            )
        )
        .values(status=PinStatus.SUPERSEDED.value, decided_at=now)
    )


class _Pin:
    """A row as one `observe` transaction sees it: its columns (the definition only for a new row) and whether
    they changed."""

    __slots__ = ("definition", "dirty", "values")

    def __init__(self, values: dict[str, Any], definition: dict[str, Any] | None = None) -> None:
        self.values = values
        self.definition = definition
        self.dirty = False

    @classmethod
    def new(cls, connector_id: str, sighting: Sighting, now: datetime) -> _Pin:
        values: dict[str, Any] = {
            "id": None,
            "connector_id": connector_id,
            "kind": sighting.kind.value,
            "name": sighting.name,
            "public_name": sighting.public_name,
            "sha256": sighting.sha256,
            "flags": list(sighting.flags),
            "first_seen": now,
        }
        return cls(values, sighting.definition)

    @property
    def digest(self) -> tuple[str, str, str, str]:
        values = self.values
        return (values["connector_id"], values["kind"], values["name"], values["sha256"])

    def set(self, **values: Any) -> None:
        self.values.update(values)
        self.dirty = True

    def record(self, definitions: Mapping[int, dict[str, Any]]) -> PinRecord:
        values = self.values
        return PinRecord(
            id=values["id"],
            connector_id=ConnectorId(values["connector_id"]),
            kind=CatalogKind(values["kind"]),
            name=values["name"],
            public_name=values["public_name"],
            sha256=values["sha256"],
            definition=self.definition if self.definition is not None else definitions[values["id"]],
            flags=tuple(values["flags"]),
            status=PinStatus(values["status"]),
            first_seen=values["first_seen"],
            last_seen=values["last_seen"],
            decided_by=values["decided_by"],
            decided_at=values["decided_at"],
            reason=values["reason"],
        )


_PINS = cast("Table", CatalogPin.__table__)
_MUTABLE = ("status", "last_seen", "decided_by", "decided_at", "reason")


async def _write(session: AsyncSession, rows: Sequence[_Pin]) -> None:
    """Store what `observe` changed. Rows leaving `approved` go first, then the stored rows it approves, then
    the new rows: at most one `approved` row per name at every step (the partial unique index)."""
    stored = [row for row in rows if row.values["id"] is not None]
    approved = PinStatus.APPROVED.value
    for batch in (
        [row for row in stored if row.values["status"] != approved],
        [row for row in stored if row.values["status"] == approved],
    ):
        if batch:
            await session.execute(
                update(CatalogPin), [{"id": row.values["id"]} | {k: row.values[k] for k in _MUTABLE} for row in batch]
            )
    new = [row for row in rows if row.values["id"] is None]
    if not new:
        return
    # One executemany on the table (Core, no ORM bookkeeping per row), then one read of the new ids: with
    # RETURNING in parameter order, SQLite's driver would run one INSERT per row.
    await session.execute(
        insert(_PINS),
        [{k: v for k, v in row.values.items() if k != "id"} | {"definition": row.definition} for row in new],
    )
    connectors = sorted({row.values["connector_id"] for row in new})
    keys = select(CatalogPin.id, CatalogPin.connector_id, CatalogPin.kind, CatalogPin.name, CatalogPin.sha256)
    ids = {
        (connector_id, kind, name, sha256): row_id
        for row_id, connector_id, kind, name, sha256 in await session.execute(
            keys.where(CatalogPin.connector_id.in_(connectors))
        )
    }
    for row in new:
        row.values["id"] = ids[row.digest]


async def _definitions(session: AsyncSession, rows: Sequence[_Pin]) -> dict[int, dict[str, Any]]:
    """The stored definitions of `rows` (a stored row whose status changed: rare)."""
    if not rows:
        return {}
    query = select(CatalogPin.id, CatalogPin.definition).where(CatalogPin.id.in_([row.values["id"] for row in rows]))
    return {row.id: row.definition for row in await session.execute(query)}


def _record(row: CatalogPin) -> PinRecord:
    return PinRecord(
        id=row.id,
        connector_id=ConnectorId(row.connector_id),
        kind=CatalogKind(row.kind),
        name=row.name,
        public_name=row.public_name,
        sha256=row.sha256,
        definition=row.definition,
        flags=tuple(row.flags),
        status=PinStatus(row.status),
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        reason=row.reason,
    )
