"""Fixtures for the audit test modules, which need many fresh migrated databases: migrate once per module and
backend, then give each test a fresh start in milliseconds instead of the seconds a migration run takes.

SQLite: each test gets a copy of the migrated file. PostgreSQL (where even `CREATE DATABASE ... TEMPLATE` takes
seconds): the tests of a module share its database (they run one after the other in one process, under xdist
too), and each starts with the audit tables emptied; so only tests that touch nothing but `audit_calls`,
`audit_checkpoints` and `audit_seals` may use these fixtures. Import `migrated_template`, `migrated_url` and
`migrated_copy`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from mcp_hub.db import create_engine, upgrade
from tests.db.conftest import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV

_AUDIT_TABLES = ("audit_calls", "audit_checkpoints", "audit_seals")


async def _admin(statement: str) -> None:
    admin = create_async_engine(
        os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": 5},
    )
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(statement)
    finally:
        await admin.dispose()


def _postgres_url(name: str) -> str:
    admin_url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def migrated_template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database migrated to head, once per module and backend (see the module docstring)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('template') / 'hub.db'}"
        anyio.run(upgrade, url)
        yield url
        return
    name = f"mcp_hub_template_{uuid.uuid4().hex[:16]}"
    try:
        anyio.run(_admin, f'CREATE DATABASE "{name}"')
    except (OSError, SQLAlchemyError) as exc:
        reason = f"PostgreSQL is not usable ({exc!r})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests (set {POSTGRES_URL_ENV})")
        pytest.skip(reason)
    try:
        anyio.run(upgrade, _postgres_url(name))
        yield _postgres_url(name)
    finally:
        anyio.run(_admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def migrated_url(migrated_template: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of this test's fresh migrated database (see the module docstring)."""
    if migrated_template.startswith("sqlite"):
        copy = tmp_path / "hub.db"
        shutil.copyfile(migrated_template.removeprefix("sqlite+aiosqlite:///"), copy)
        yield f"sqlite+aiosqlite:///{copy}"
        return
    engine = create_engine(migrated_template)
    try:
        async with engine.begin() as connection:
            for table in _AUDIT_TABLES:  # past their append-only triggers
                await connection.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            await connection.exec_driver_sql(f"TRUNCATE {', '.join(_AUDIT_TABLES)} RESTART IDENTITY")
            for table in _AUDIT_TABLES:
                await connection.exec_driver_sql(f"ALTER TABLE {table} ENABLE TRIGGER USER")
    finally:
        await engine.dispose()
    yield migrated_template


@pytest.fixture
async def migrated_copy(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on this test's fresh migrated database."""
    engine = create_engine(migrated_url)
    try:
        yield engine
    finally:
        await engine.dispose()
