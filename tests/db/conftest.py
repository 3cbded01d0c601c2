"""Fixtures for the database tests: one fresh database per test, on SQLite and on PostgreSQL.

PostgreSQL is reached at `MCP_HUB_TEST_POSTGRES_URL` (default: the local server, user `postgres`,
trust authentication). Each test gets its own database, dropped afterwards. Without a reachable
server the PostgreSQL cases are skipped, except under CI (`CI` set), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from mcp_hub.db import create_engine, upgrade
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.identities import ClientMetadata, NewAgent
from mcp_hub.domain import AgentSource, ClientAuthMethod, ClientId

POSTGRES_URL_ENV = "MCP_HUB_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def anyio_backend() -> str:
    """SQLAlchemy's asyncio extension and asyncpg run on asyncio only."""
    return "asyncio"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@asynccontextmanager
async def fresh_postgres_database() -> AsyncGenerator[str, None]:
    admin_url = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)
    name = f"mcp_hub_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(
        admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool, connect_args={"timeout": 5}
    )
    try:
        try:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except (OSError, SQLAlchemyError) as exc:
            reason = f"PostgreSQL at {make_url(admin_url).render_as_string()} is not usable ({exc!r})"
            if os.environ.get("CI"):
                pytest.fail(f"{reason}; CI must run the PostgreSQL tests (set {POSTGRES_URL_ENV})")
            pytest.skip(f"{reason}; start it or set {POSTGRES_URL_ENV}")
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as connection:
                await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the (still empty) test database."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def migrated(database_url: str, engine: AsyncEngine) -> AsyncEngine:
    """The engine of a test database migrated to head."""
    await upgrade(database_url)
    return engine


@pytest.fixture
def store(migrated: AsyncEngine) -> CatalogStore:
    """A `CatalogStore` on a test database migrated to head."""
    return CatalogStore(migrated)


@pytest.fixture
def audit_store(migrated: AsyncEngine) -> AuditStore:
    """An `AuditStore` on a test database migrated to head."""
    return AuditStore(migrated)


def new_client(name: str, auth_method: ClientAuthMethod = ClientAuthMethod.CLIENT_SECRET_BASIC) -> NewAgent:
    """An admin-made client named `name` (client id `agt_<name>`), for store tests that need agents to exist."""
    return NewAgent(
        name=name,
        client_id=ClientId(f"agt_{name}"),
        source=AgentSource.ADMIN,
        metadata=ClientMetadata(auth_method=auth_method),
    )
