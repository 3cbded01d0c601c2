"""`PinStore` on SQLite and PostgreSQL: what one listing records (issue 11 §1, threat T16), in one read and one
flush, and the per-connector generations the review watcher compares.

A changed definition accepted from a `trust = "auto"` connector supersedes the name's pin, and a return to an
older definition makes that row the pin again: at most one `approved` row per name at every step (the partial
unique index would refuse a flush in the wrong order).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.pins import PinStore, Sighting
from mcp_hub.domain import CatalogKind, ConnectorId, PinStatus

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)


def seen(name: str, sha256: str, status: PinStatus = PinStatus.APPROVED) -> Sighting:
    return Sighting(
        kind=CatalogKind.TOOL,
        name=name,
        public_name=f"svc__{name}",
        sha256=sha256,
        definition={"name": name, "description": sha256},
        flags=(),
        status=status,
        decided_by="auto" if status is PinStatus.APPROVED else None,
    )


async def statuses(pins: PinStore, connector: str = "svc") -> dict[tuple[str, str], PinStatus]:
    rows = [row for name in ("a", "b", "c") for row in await pins.history(f"{connector}__{name}")]
    return {(row.name, row.sha256): row.status for row in rows}


async def test_a_listing_is_recorded_and_a_changed_definition_supersedes_its_pin(migrated: AsyncEngine) -> None:
    pins = PinStore(migrated)
    first = await pins.observe("svc", [seen("a", "1"), seen("b", "1"), seen("c", "1", PinStatus.PENDING)], T0)
    assert [(row.name, row.status) for row in first] == [
        ("a", PinStatus.APPROVED),
        ("b", PinStatus.APPROVED),
        ("c", PinStatus.PENDING),
    ]
    assert all(row.id > 0 for row in first)
    later = T0 + timedelta(minutes=1)
    assert await pins.observe("svc", [seen("a", "1"), seen("c", "1", PinStatus.PENDING)], later) == []
    assert (await pins.history("svc__c"))[0].last_seen == later  # a pending digest seen again is only touched

    changed = await pins.observe("svc", [seen("a", "2"), seen("b", "1")], later)
    assert [(row.name, row.sha256, row.status) for row in changed] == [("a", "2", PinStatus.APPROVED)]
    assert await statuses(pins) == {
        ("a", "1"): PinStatus.SUPERSEDED,
        ("a", "2"): PinStatus.APPROVED,
        ("b", "1"): PinStatus.APPROVED,
        ("c", "1"): PinStatus.PENDING,
    }

    back = await pins.observe("svc", [seen("a", "1")], later + timedelta(minutes=1))  # the older row, pinned again
    assert [(row.name, row.sha256, row.status) for row in back] == [("a", "1", PinStatus.APPROVED)]
    assert (await statuses(pins))[("a", "1")] is PinStatus.APPROVED
    assert (await statuses(pins))[("a", "2")] is PinStatus.SUPERSEDED


async def test_a_decision_moves_only_its_connectors_generation(migrated: AsyncEngine) -> None:
    """The review watcher re-applies the connectors whose generation moved, and only those."""
    pins = PinStore(migrated)
    await pins.observe("svc", [seen("a", "1"), seen("b", "1", PinStatus.PENDING)], T0)
    await pins.observe("other", [seen("a", "1")], T0)
    before = await pins.generations()
    svc, other = ConnectorId("svc"), ConnectorId("other")
    assert set(before) == {svc, other}
    await pins.decide("svc__b", approve=True, by="root", reason=None, sha256=None, now=T0 + timedelta(seconds=1))
    after = await pins.generations()
    assert after[other] == before[other]
    assert after[svc] != before[svc]
