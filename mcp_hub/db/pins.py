"""`PinStore`: every definition a connector offered, pinned by its SHA-256, and what was decided about it.

Issue 11 §1, threat T16. A row is one (connector, kind, name, SHA-256). At most one row per name is `approved`
(a partial unique index): that digest is the pin, and the hub offers the name only while the downstream offers
exactly it. Rows are never deleted: a name that disappears and comes back is compared with its pin, so a
re-added name with another definition is a change, not a new tool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_hub.db._base import Store, require_aware
from mcp_hub.db.models import CatalogPin
from mcp_hub.domain import CatalogKind, ConnectorId, PinStatus
from mcp_hub.errors import CatalogError

_LIVE = (PinStatus.PENDING, PinStatus.APPROVED, PinStatus.REJECTED, PinStatus.REFUSED)


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

    async def observe(self, connector_id: str, sightings: Sequence[Sighting], now: datetime) -> list[PinRecord]:
        """Record what the hub saw; returns the rows whose status this changed (to audit), in `sightings` order.

        A `PENDING` sighting of a new digest adds a pending row; of a superseded one makes it pending again (a
        return to an older definition is a change). An `APPROVED` sighting supersedes the name's other pin.
        A digest already decided keeps its decision.
        """
        require_aware("now", now)
        try:
            return await self._observe(connector_id, sightings, now)
        except IntegrityError:
            # Replicas list the same downstream at once: another one recorded this new digest first. Once more,
            # now seeing its row (and keeping its decision), instead of offering nothing new until the next listing.
            return await self._observe(connector_id, sightings, now)

    async def _observe(self, connector_id: str, sightings: Sequence[Sighting], now: datetime) -> list[PinRecord]:
        changed: list[CatalogPin] = []
        async with self._writes.begin() as session:
            # One read of the connector's rows, one flush of what changed: a connector listing 100 new tools is
            # three statements, not three hundred (federating 10,000 tools took a minute of round trips).
            rows = (await session.scalars(select(CatalogPin).where(CatalogPin.connector_id == connector_id))).all()
            by_digest = {(row.kind, row.name, row.sha256): row for row in rows}
            pins = {(row.kind, row.name): row for row in rows if row.status == PinStatus.APPROVED}
            for sighting in sightings:
                digest = (sighting.kind.value, sighting.name, sighting.sha256)
                row = by_digest.get(digest)
                if row is not None and row.status not in (PinStatus.PENDING, PinStatus.SUPERSEDED):
                    continue
                if row is not None and row.status == PinStatus.PENDING and sighting.status is PinStatus.PENDING:
                    row.last_seen = now
                    continue
                if sighting.status is PinStatus.APPROVED:
                    pinned = pins.pop((sighting.kind.value, sighting.name), None)
                    if pinned is not None:
                        pinned.status = PinStatus.SUPERSEDED.value
                        pinned.decided_at = now
                        await session.flush()  # the old pin goes before the new one comes (one approved per name)
                decided = sighting.status is not PinStatus.PENDING
                if row is None:
                    row = CatalogPin(
                        connector_id=connector_id,
                        kind=sighting.kind.value,
                        name=sighting.name,
                        public_name=sighting.public_name,
                        sha256=sighting.sha256,
                        definition=sighting.definition,
                        flags=list(sighting.flags),
                        first_seen=now,
                    )
                    session.add(row)
                    by_digest[digest] = row
                row.status = sighting.status.value
                row.last_seen = now
                row.decided_by = sighting.decided_by if decided else None
                row.decided_at = now if decided else None
                row.reason = sighting.reason
                if sighting.status is PinStatus.APPROVED:
                    pins[(sighting.kind.value, sighting.name)] = row
                changed.append(row)
            await session.flush()
            return [_record(row) for row in changed]

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
