"""`CatalogStore` and `AuditStore` on SQLite and PostgreSQL: connectors, catalog synchronisation, the audit trail."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.catalog import CatalogDiff, CatalogStore, ConnectorRecord, ConnectorStatus, ToolRecord
from mcp_hub.db.engine import create_engine, upgrade
from mcp_hub.domain import AuditOutcome, ConnectorId, Health
from mcp_hub.errors import CatalogError, DatabaseError

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def tool(public_name: str, downstream_name: str, description: str = "") -> ToolRecord:
    definition: dict[str, Any] = {
        "name": downstream_name,
        "description": description,
        "inputSchema": {"type": "object"},
    }
    digest = hashlib.sha256(json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return ToolRecord(public_name=public_name, downstream_name=downstream_name, definition=definition, sha256=digest)


def connector(connector_id: str, *, enabled: bool = True, sha: str = "a") -> ConnectorRecord:
    return ConnectorRecord(
        id=ConnectorId(connector_id), transport="stdio", protocol="auto", enabled=enabled, config_sha256=sha * 64
    )


def audit_event(
    *, at: datetime = T0, connector_id: str | None = "time", detail: str | None = None, outcome: str = "ok"
) -> AuditEvent:
    # `outcome` stays a plain string here: one test hands the event a value outside `AuditOutcome` on purpose.
    return AuditEvent(
        at=at,
        client="test-client",
        session=None,
        public_name="time__now",
        connector_id=connector_id,
        downstream_name="now",
        outcome=cast("AuditOutcome", outcome),
        latency_ms=1.5,
        detail=detail,
    )


async def test_registered_connectors_are_listed_sorted_with_their_configuration(store: CatalogStore) -> None:
    """Our choice: new connectors start `connecting` (or `disabled`), listed by id."""
    await store.register_connectors([connector("time"), connector("fetch", enabled=False)])

    listed = await store.list_connectors()

    assert [(c.id, c.enabled, c.health, c.tool_count, c.era) for c in listed] == [
        ("fetch", False, "disabled", 0, None),
        ("time", True, "connecting", 0, None),
    ]
    assert all(c.registered_at.tzinfo is UTC and c.registered_at == c.updated_at for c in listed)


async def test_reregistering_updates_changed_connectors_and_disables_unconfigured_ones(
    store: CatalogStore, engine: AsyncEngine
) -> None:
    """Our choice: connectors that leave the configuration keep their row (history), disabled."""
    clock = iter([T0, T0 + timedelta(minutes=1)])
    store = CatalogStore(engine, clock=lambda: next(clock))
    await store.register_connectors([connector("time"), connector("fetch"), connector("git")])

    await store.register_connectors([connector("time"), connector("fetch", sha="b")])

    by_id: dict[str, ConnectorStatus] = {c.id: c for c in await store.list_connectors()}
    assert by_id["time"].updated_at == T0  # unchanged: not touched
    assert (by_id["fetch"].config_sha256, by_id["fetch"].updated_at) == ("b" * 64, T0 + timedelta(minutes=1))
    assert (by_id["git"].enabled, by_id["git"].health, by_id["git"].registered_at) == (False, "disabled", T0)


async def test_replicas_registering_the_same_new_connectors_at_once_both_succeed(
    migrated: AsyncEngine, database_url: str
) -> None:
    """Issue 12 §4 (replicas start without failing each other): two processes starting together each register
    the configured connectors; neither may fail on the other's fresh row (a CI run saw a replica exit on
    `pk_connectors`)."""
    other = create_engine(database_url)
    try:
        stores = [CatalogStore(migrated), CatalogStore(other)]
        for round_ in range(15):
            records = [connector(f"c{index}") for index in range(round_ + 1)]
            async with anyio.create_task_group() as group:
                for store in stores:
                    group.start_soon(store.register_connectors, records)
        assert [c.id for c in await stores[0].list_connectors()] == sorted(f"c{index}" for index in range(15))
    finally:
        await other.dispose()


async def test_a_connector_enabled_again_goes_back_to_connecting(store: CatalogStore) -> None:
    """Our choice: re-enabling a disabled connector resets its health to `connecting`."""
    await store.register_connectors([connector("time", enabled=False)])
    await store.register_connectors([connector("time")])

    [status] = await store.list_connectors()
    assert (status.enabled, status.health) == (True, "connecting")


async def test_recorded_health_is_listed_and_ready_sets_last_ready_at(store: CatalogStore, engine: AsyncEngine) -> None:
    """Our choice: `last_ready_at` remembers the last time the connector was ready, across later failures."""
    times = iter([T0, T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)])
    store = CatalogStore(engine, clock=lambda: next(times))
    await store.register_connectors([connector("time")])

    await store.record_health("time", Health.READY, None, "2026-07-28", tool_count=2)
    await store.record_health("time", Health.DOWN, "process exited with status 1", None)

    [status] = await store.list_connectors()
    assert (status.health, status.health_detail, status.era, status.tool_count) == (
        "down",
        "process exited with status 1",
        None,
        2,
    )
    assert (status.last_ready_at, status.updated_at) == (T0 + timedelta(seconds=1), T0 + timedelta(seconds=2))


async def test_health_of_an_unknown_connector_or_an_unknown_state_is_refused(store: CatalogStore) -> None:
    """Our choice: programming errors surface instead of writing rows nobody can interpret."""
    with pytest.raises(DatabaseError, match="not registered"):
        await store.record_health("nope", Health.READY, None, None)
    await store.register_connectors([connector("time")])
    with pytest.raises(ValueError, match="unknown health"):
        await store.record_health("time", cast("Health", "sleepy"), None, None)


async def test_sync_catalog_reports_added_changed_and_removed_tools_over_a_lifecycle(store: CatalogStore) -> None:
    """Our choice: the diff is what a client sees change; removed tools keep their row and can come back."""
    await store.register_connectors([connector("time")])
    now_v1, convert_v1, extra = tool("time__now", "now"), tool("time__convert", "convert"), tool("time__x", "x")

    first = await store.sync_catalog("time", [now_v1, convert_v1, extra], T0)
    assert first == CatalogDiff(added=["time__convert", "time__now", "time__x"], changed=[], removed=[])

    same = await store.sync_catalog("time", [now_v1, convert_v1, extra], T0 + timedelta(minutes=1))
    assert same.is_empty

    convert_v2 = tool("time__convert", "convert", description="now with time zones")
    second = await store.sync_catalog("time", [now_v1, convert_v2], T0 + timedelta(minutes=2))
    assert second == CatalogDiff(added=[], changed=["time__convert"], removed=["time__x"])

    third = await store.sync_catalog("time", [now_v1, convert_v2, extra], T0 + timedelta(minutes=3))
    assert third == CatalogDiff(added=["time__x"], changed=[], removed=[])

    rows = {row.public_name: row for row in await store.catalog()}
    assert rows["time__convert"].definition == convert_v2.definition
    assert rows["time__convert"].sha256 == convert_v2.sha256
    assert (rows["time__x"].first_seen, rows["time__x"].last_seen, rows["time__x"].removed_at) == (
        T0,
        T0 + timedelta(minutes=3),
        None,
    )
    assert rows["time__now"].first_seen == T0
    assert [status.tool_count for status in await store.list_connectors()] == [3]


async def test_removed_tools_are_listed_only_when_asked(store: CatalogStore) -> None:
    """Our choice: `catalog()` lists live tools; history is available with `include_removed`."""
    await store.register_connectors([connector("time")])
    await store.sync_catalog("time", [tool("time__now", "now"), tool("time__old", "old")], T0)
    await store.sync_catalog("time", [tool("time__now", "now")], T0 + timedelta(hours=1))

    assert [row.public_name for row in await store.catalog()] == ["time__now"]
    every = await store.catalog(include_removed=True)
    assert [(row.public_name, row.removed_at) for row in every] == [
        ("time__now", None),
        ("time__old", T0 + timedelta(hours=1)),
    ]


async def test_removal_time_is_kept_when_a_tool_stays_removed(store: CatalogStore) -> None:
    """Our choice: `removed_at` records when the tool went away, not the latest sync."""
    await store.register_connectors([connector("time")])
    await store.sync_catalog("time", [tool("time__old", "old")], T0)
    await store.sync_catalog("time", [], T0 + timedelta(hours=1))
    diff = await store.sync_catalog("time", [], T0 + timedelta(hours=2))

    assert diff.is_empty
    [row] = await store.catalog(include_removed=True)
    assert row.removed_at == T0 + timedelta(hours=1)


async def test_catalogs_of_different_connectors_are_independent(store: CatalogStore) -> None:
    """Our choice: syncing one connector never marks another connector's tools removed."""
    await store.register_connectors([connector("time"), connector("git")])
    await store.sync_catalog("time", [tool("time__now", "now")], T0)
    await store.sync_catalog("git", [tool("git__log", "log")], T0)
    await store.sync_catalog("git", [], T0 + timedelta(minutes=1))

    assert [row.public_name for row in await store.catalog()] == ["time__now"]


async def test_a_public_name_served_by_another_connector_is_refused(store: CatalogStore) -> None:
    """Our choice: a public name never silently moves between live tools of two connectors."""
    await store.register_connectors([connector("a"), connector("b")])
    await store.sync_catalog("a", [tool("shared", "x")], T0)

    with pytest.raises(CatalogError, match="already served by connector 'a'"):
        await store.sync_catalog("b", [tool("shared", "y")], T0)
    assert [(row.connector_id, row.public_name) for row in await store.catalog()] == [("a", "shared")]


async def test_a_tool_whose_public_name_changes_keeps_its_row(store: CatalogStore) -> None:
    """Our choice: tools are matched on their downstream name; a new public name is a removal plus an addition."""
    await store.register_connectors([connector("time")])
    await store.sync_catalog("time", [tool("time__now", "now")], T0)

    diff = await store.sync_catalog("time", [tool("time__now_h0123", "now")], T0 + timedelta(minutes=1))

    assert diff == CatalogDiff(added=["time__now_h0123"], changed=[], removed=["time__now"])
    [row] = await store.catalog(include_removed=True)
    assert (row.public_name, row.first_seen) == ("time__now_h0123", T0)


async def test_syncing_an_unregistered_connector_or_duplicate_tools_is_refused(store: CatalogStore) -> None:
    """Our choice: inconsistent input raises before anything is written."""
    with pytest.raises(DatabaseError, match="not registered"):
        await store.sync_catalog("nope", [], T0)
    await store.register_connectors([connector("time")])
    with pytest.raises(ValueError, match="public name"):
        await store.sync_catalog("time", [tool("time__a", "a"), tool("time__a", "b")], T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.sync_catalog("time", [], T0.replace(tzinfo=None))


async def test_timestamps_come_back_as_utc_whatever_zone_they_were_written_in(store: CatalogStore) -> None:
    """Our choice (ruff DTZ): every stored time is timezone-aware and normalised to UTC."""
    await store.register_connectors([connector("time")])
    paris = timezone(timedelta(hours=1))
    await store.sync_catalog("time", [tool("time__now", "now")], datetime(2026, 11, 23, 11, 0, tzinfo=paris))

    [row] = await store.catalog()
    assert row.first_seen == T0
    assert row.first_seen.utcoffset() == timedelta(0)


async def test_recent_audit_returns_the_latest_events_newest_first(audit_store: AuditStore) -> None:
    """Our choice: the admin view shows the latest calls first."""
    events = [audit_event(at=T0 + timedelta(seconds=i), detail=str(i)) for i in (3, 1, 4, 0, 2)]
    await audit_store.insert_audit(events)
    await audit_store.insert_audit([])

    recent = await audit_store.recent_audit(limit=3)

    assert [event.detail for event in recent] == ["4", "3", "2"]
    assert recent[0] == events[2]
    assert len(await audit_store.recent_audit()) == 5


async def test_audit_events_with_nul_characters_are_stored(audit_store: AuditStore) -> None:
    """Our choice: PostgreSQL refuses NUL in text, and an audit row must never be refused."""
    await audit_store.insert_audit([audit_event(detail="before\x00after")])

    [event] = await audit_store.recent_audit()
    assert event.detail == "before\ufffdafter"


def test_audit_events_need_an_aware_time_and_a_known_outcome() -> None:
    """Our choice: malformed events fail where they are built, not later in the background writer."""
    with pytest.raises(ValueError, match="timezone-aware"):
        audit_event(at=T0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="unknown audit outcome"):
        audit_event(outcome="meh")


async def test_deleting_a_connector_deletes_its_catalog_but_not_its_audit(
    store: CatalogStore, audit_store: AuditStore, engine: AsyncEngine
) -> None:
    """Our choice: the catalog cascades with its connector (foreign keys are on, SQLite included); the
    audit trail has no foreign key and stays."""
    await store.register_connectors([connector("time")])
    await store.sync_catalog("time", [tool("time__now", "now")], T0)
    await audit_store.insert_audit([audit_event(connector_id="time")])

    async with engine.begin() as connection:
        await connection.execute(text("DELETE FROM connectors WHERE id = 'time'"))

    assert await store.catalog(include_removed=True) == []
    assert [event.connector_id for event in await audit_store.recent_audit()] == ["time"]


async def test_a_write_cancelled_while_it_waits_for_the_database_still_finishes_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    """T25, our choice (db/_base.py): a store's transaction is never cancelled halfway. Here the write waits for
    SQLite's lock, held by another connection, when its task is cancelled: it still finishes once the lock is
    free, and no connection close is left waiting forever (which would keep the hub's process from exiting)."""
    path = tmp_path / "locked.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(url)
    engine = create_engine(url)
    store = CatalogStore(engine)
    await store.register_connectors(
        [ConnectorRecord(id=ConnectorId("c"), transport="stdio", protocol="auto", enabled=True, config_sha256="0")]
    )
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    scopes: list[anyio.CancelScope] = []

    async def write() -> None:
        with anyio.CancelScope() as scope:
            scopes.append(scope)
            await store.record_health("c", Health.DOWN, "cancelled while waiting", None)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(write)
            await anyio.wait_all_tasks_blocked()  # the write waits in SQLite's busy handler
            scopes[0].cancel()
            await anyio.wait_all_tasks_blocked()
            blocker.rollback()
    finally:
        blocker.close()
    statuses = {status.id: status for status in await store.list_connectors()}
    await engine.dispose()

    current = asyncio.current_task()
    assert [task for task in asyncio.all_tasks() if task is not current and "terminate" in repr(task.get_coro())] == []
    assert statuses[ConnectorId("c")].health_detail == "cancelled while waiting"
