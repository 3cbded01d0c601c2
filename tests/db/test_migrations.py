"""Migrations, the schema check and engine setup, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db import (
    create_engine,
    display_url,
    downgrade,
    metadata,
    require_current_schema,
    schema_status,
    upgrade,
)
from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.identities import IdentityStore
from mcp_hub.db.models import ApprovalAction, AuditCall, RevokedToken
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.domain import ActionId, ActionStatus, AgentId, ClientAuthMethod, ConnectorId
from mcp_hub.errors import SchemaOutOfDateError
from tests.db.conftest import new_client

HUB_TABLES = {"connectors", "catalog_tools", "audit_calls"}

HEAD = "0015_dpop_refresh_binding"
"""The newest migration: a new one changes this line."""


async def _tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        names = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)


async def test_an_empty_database_upgrades_to_head_downgrades_to_base_and_upgrades_again(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice (style.md §10): every migration is reversible, checked on both backends."""
    assert not (await _tables(engine)) & HUB_TABLES

    await upgrade(database_url)
    assert await _tables(engine) >= HUB_TABLES

    await downgrade(database_url, "base")
    assert not (await _tables(engine)) & HUB_TABLES
    assert (await schema_status(engine)).current is None

    await upgrade(database_url)
    assert await _tables(engine) >= HUB_TABLES
    assert (await schema_status(engine)).is_current


async def test_concurrent_upgrades_of_an_empty_database_all_succeed(database_url: str, engine: AsyncEngine) -> None:
    """Replicas starting together each run `mcp-hub migrate`: on PostgreSQL an advisory lock serialises them
    (without it two of three failed on duplicate type names); SQLite's writer lock does the same."""
    await asyncio.gather(*(upgrade(database_url) for _ in range(3)))
    await require_current_schema(engine)


async def test_the_models_match_what_the_migrations_create(database_url: str, engine: AsyncEngine) -> None:
    """Our choice: the ORM models and the hand-written migrations describe the same schema."""
    await upgrade(database_url)

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as connection:
        assert await connection.run_sync(differences) == []


def _predicate(clause: object) -> str:
    """An index's WHERE clause as comparable text: PostgreSQL reflects it with added parentheses."""
    return " ".join(str(clause).replace("(", " ").replace(")", " ").lower().split())


async def test_the_partial_indexes_of_the_models_have_the_migrations_conditions(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice: Alembic's comparison ignores an index's WHERE clause, so this test compares it."""
    await upgrade(database_url)
    dialect = engine.dialect.name
    declared = {
        index.name: _predicate(index.dialect_options[dialect]["where"])
        for table in metadata.tables.values()
        for index in table.indexes
        if index.dialect_options[dialect]["where"] is not None
    }

    def reflected(connection: Connection) -> dict[str, str]:
        inspector = inspect(connection)
        return {
            str(index["name"]): _predicate(index.get("dialect_options", {}).get(f"{dialect}_where"))
            for table in metadata.tables
            for index in inspector.get_indexes(table)
            if index.get("dialect_options", {}).get(f"{dialect}_where") is not None
        }

    async with engine.connect() as connection:
        found = await connection.run_sync(reflected)
    assert declared  # the open-action indexes of approval_actions, at least
    assert found == declared


async def test_duplicate_open_actions_left_by_0003_are_closed_except_the_newest_when_upgrading(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice (T19): before 0004 two identical first calls could each store an action. Calling again
    found only the newest, so the upgrade closes the older ones instead of failing on them."""
    await upgrade(database_url, "0003_approvals")
    agent = await IdentityStore(engine).create_agent(new_client("agent-a", ClientAuthMethod.NONE))
    store = ApprovalStore(engine)
    t0 = datetime.now(UTC)
    # Stored in this order; the second "a" is the newest by creation time, the last one the oldest. Written as
    # 0003's table had them (no `method` yet: 0007 adds it; nor `hold_reasons`: 0013).
    for action_id, digest, age in (("apv_old", "a", 1), ("apv_new", "a", 0), ("apv_b", "b", 0), ("apv_x", "a", 2)):
        row = asdict(_action(action_id, agent.id, digest * 64, t0 - timedelta(seconds=age)))
        del row["method"], row["hold_reasons"]
        row.update(rules=list(row["rules"]), approvers=list(row["approvers"]), status=str(row["status"]))
        async with engine.begin() as connection:
            await connection.execute(insert(ApprovalAction), [row])

    await upgrade(database_url)

    assert [await _reported(store, action_id) for action_id in ("apv_new", "apv_b")] == [False, False]
    assert [await _reported(store, action_id) for action_id in ("apv_old", "apv_x")] == [True, True]
    assert (await schema_status(engine)).is_current


async def test_actions_stored_before_0013_have_no_record_of_what_held_them_and_the_downgrade_keeps_every_action(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice (issue 13 §3): 0013 adds `approval_actions.hold_reasons`. An action stored before has none (SQL
    NULL: its pages fall back to the rules as they read now); one stored after keeps its record as written. The
    downgrade drops the column and keeps every action, and the partial indexes that allow one open action each."""
    await upgrade(database_url, "0012_audit_chain")
    agent = await IdentityStore(engine).create_agent(new_client("agent-a", ClientAuthMethod.NONE))
    t0 = datetime.now(UTC)
    row = asdict(_action("apv_before", agent.id, "a" * 64, t0))
    del row["hold_reasons"]
    row.update(rules=list(row["rules"]), approvers=list(row["approvers"]), status=str(row["status"]))
    async with engine.begin() as connection:
        await connection.execute(insert(ApprovalAction), [row])
    record = [{"rule": "git-push", "because": ["tool `git__git_push` matches `git__*`", 'argument `x` = "\u202e"']}]

    await upgrade(database_url)
    store = ApprovalStore(engine)
    await store.create(replace(_action("apv_after", agent.id, "b" * 64, t0), hold_reasons=record))
    before, after = await store.get("apv_before"), await store.get("apv_after")
    async with engine.connect() as connection:
        unrecorded = (
            await connection.execute(text("SELECT id FROM approval_actions WHERE hold_reasons IS NULL"))
        ).scalars()
        assert set(unrecorded) == {"apv_before"}
    indexes_at_head = await _partial_indexes(engine, "approval_actions")
    await downgrade(database_url, "0012_audit_chain")
    async with engine.connect() as connection:
        kept = set((await connection.execute(text("SELECT id FROM approval_actions"))).scalars())

    assert before is not None
    assert after is not None
    assert (before.hold_reasons, after.hold_reasons) == (None, record)
    assert kept == {"apv_before", "apv_after"}
    assert await _partial_indexes(engine, "approval_actions") == indexes_at_head
    assert len(indexes_at_head) == 2


async def _partial_indexes(engine: AsyncEngine, table: str) -> dict[str, str]:
    """The table's partial indexes by name, with their conditions as comparable text."""
    dialect = engine.dialect.name

    def reflected(connection: Connection) -> dict[str, str]:
        return {
            str(index["name"]): _predicate(index.get("dialect_options", {}).get(f"{dialect}_where"))
            for index in inspect(connection).get_indexes(table)
            if index.get("dialect_options", {}).get(f"{dialect}_where") is not None
        }

    async with engine.connect() as connection:
        return await connection.run_sync(reflected)


async def _reported(store: ApprovalStore, action_id: str) -> bool:
    record = await store.get(action_id)
    assert record is not None
    return record.reported_at is not None


def _action(action_id: str, agent_id: AgentId, digest: str, created_at: datetime) -> ActionRecord:
    return ActionRecord(
        id=ActionId(action_id),
        agent_id=agent_id,
        user_id=None,
        agent_name="agent-a",
        method="tools/call",
        public_name="git__git_push",
        connector_id=ConnectorId("git"),
        downstream_name="git_push",
        definition_sha256="d" * 64,
        description="push",
        arguments={},
        digest=digest,
        rules=("git-push",),
        approvers=("role:approver",),
        status=ActionStatus.PENDING,
        reason=None,
        decided_by=None,
        decided_at=None,
        created_at=created_at,
        expires_at=created_at + timedelta(days=1),
        result=None,
        completed_at=None,
        reported_at=None,
        hold_reasons=None,
    )


async def test_assertion_uses_move_to_their_own_table_and_back_without_a_gap_in_replay_protection(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice (T02, RFC 7523 §3 item 7): 0005 moves the client-assertion uses that 0002-0004 kept in
    `revoked_tokens` under `assertion:<key>` into `used_assertions` under the same key, so an assertion used
    just before the upgrade is still refused after it; revoked access tokens stay where they are; the downgrade
    moves the uses back."""
    await upgrade(database_url, "0004_one_open_action")
    now = datetime.now(UTC)
    later = now + timedelta(minutes=5)
    key = "k" * 54
    async with engine.begin() as connection:
        await connection.execute(
            insert(RevokedToken),
            [
                {"jti": f"assertion:{key}", "revoked_at": now, "expires_at": later},
                {"jti": "an-access-token-jti", "revoked_at": now, "expires_at": later},
            ],
        )

    await upgrade(database_url)
    oauth = OAuthStore(engine)
    replayed = await oauth.use_assertion_once(key, later)
    first_use = await oauth.use_assertion_once("f" * 54, later)
    still_revoked = await oauth.is_access_token_revoked("an-access-token-jti")
    await downgrade(database_url, "0004_one_open_action")
    async with engine.connect() as connection:
        kept = set((await connection.execute(text("SELECT jti FROM revoked_tokens"))).scalars())

    assert (replayed, first_use, still_revoked) == (False, True, True)
    assert kept == {f"assertion:{key}", f"assertion:{'f' * 54}", "an-access-token-jti"}


async def test_an_empty_database_is_refused_with_an_instruction_to_migrate(engine: AsyncEngine) -> None:
    """Our choice: the hub never starts on a schema it was not written for, and says how to fix it."""
    with pytest.raises(SchemaOutOfDateError, match=rf"revision None \(empty\).*{HEAD}.*mcp-hub migrate"):
        await require_current_schema(engine)


async def test_a_database_at_head_passes_the_schema_check(database_url: str, engine: AsyncEngine) -> None:
    """Our choice: after `mcp-hub migrate` the check is silent."""
    await upgrade(database_url)
    await require_current_schema(engine)
    status = await schema_status(engine)
    assert (status.current, status.head, status.is_current) == (HEAD, HEAD, True)


async def test_a_database_migrated_by_a_newer_hub_is_refused_without_suggesting_migrate(
    database_url: str, engine: AsyncEngine
) -> None:
    """Our choice: a newer schema cannot be fixed by migrating, so the message says something else."""
    await upgrade(database_url)
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))

    with pytest.raises(SchemaOutOfDateError, match="newer mcp-hub") as caught:
        await require_current_schema(engine)
    assert "mcp-hub migrate" not in str(caught.value)


def test_database_urls_in_messages_never_show_the_password() -> None:
    """Our choice: database passwords never reach logs or terminals."""
    shown = display_url("postgresql+asyncpg://hub:s3cret@db.example:5432/hub")
    assert "s3cret" not in shown
    assert shown == "postgresql+asyncpg://hub:***@db.example:5432/hub"


async def test_a_sqlite_engine_creates_its_directory_and_enforces_foreign_keys_with_wal(tmp_path: Path) -> None:
    """Our choice: SQLite runs with foreign keys, write-ahead logging and a busy timeout."""
    path = tmp_path / "not" / "yet" / "there" / "hub.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.connect() as connection:
            pragmas = [
                (await connection.exec_driver_sql(f"PRAGMA {name}")).scalar_one()
                for name in ("foreign_keys", "journal_mode", "busy_timeout")
            ]
        assert pragmas == [1, "wal", 5000]
        assert path.is_file()
    finally:
        await engine.dispose()


async def test_sqlite_reads_do_not_queue_behind_a_writer_holding_the_lock(tmp_path: Path) -> None:
    """Our choice: only writers open with BEGIN IMMEDIATE; with WAL a read needs no lock at all.

    Were reads to take the write lock too, this read would wait the busy timeout and fail with
    "database is locked" (seen under load when every store read opened BEGIN IMMEDIATE).
    """
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        catalog, audit = CatalogStore(engine), AuditStore(engine)
        async with engine.begin() as writer:
            row = {"at": datetime.now(UTC), "client": "c", "public_name": "t", "outcome": "ok", "latency_ms": 1.0}
            row |= {"prev_hash": "0" * 64, "row_hash": "1" * 64}  # not a valid chain: only the lock matters here
            await writer.execute(insert(AuditCall), [row])
            assert await catalog.list_connectors() == []
            assert await audit.recent_audit(limit=5) == []  # the writer's row is not committed yet
        assert len(await audit.recent_audit(limit=5)) == 1
    finally:
        await engine.dispose()
