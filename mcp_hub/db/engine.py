"""Engines, migrations and the schema check.

SQLite (`sqlite+aiosqlite:///abs/path.db`) and PostgreSQL (`postgresql+asyncpg://...`) are supported.
On SQLite every connection enforces foreign keys, uses write-ahead logging
(https://www.sqlite.org/wal.html) and waits for locks instead of failing at once; SQLAlchemy emits
`BEGIN IMMEDIATE` itself (the recipe of SQLAlchemy's "Transactions with SQLite and the sqlite3 driver"),
so a transaction that reads and then writes cannot fail half-way with SQLITE_BUSY when another
connection wrote in between. Read-only work goes through `read_only(engine)`, whose transactions open
with a plain `BEGIN`: in WAL mode readers never wait for the single writer, and they must not hold its
lock either, or every read would queue behind every write.

Migrations are Alembic's, run on a connection of the caller's event loop through
`AsyncConnection.run_sync`; `require_current_schema` is what `mcp-hub serve` calls before touching
the database, so a stale schema stops the hub with an instruction instead of a SQL error.

Every engine hides statement parameters (`hide_parameters=True`): they hold signing keys, CSRF tokens and stored
arguments, and must not reach an error message or a log line (threat T29; `mcp_hub.logs` also keeps the
SQLAlchemy and driver loggers at WARNING).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

import mcp_hub
from mcp_hub.errors import DatabaseError, SchemaOutOfDateError

SQLITE_BUSY_TIMEOUT_MS = 5_000
"""How long a SQLite connection waits for another connection's write lock before failing."""

_FILE_TEMPLATE = "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s"
"""New revision files are named like `2026_11_23_0001_initial.py` (use `--rev-id 0002_<slug>`)."""


def migrations_dir() -> Path:
    """The Alembic script directory: `mcp_hub/_migrations` in a wheel, `migrations/` in a checkout."""
    package = Path(mcp_hub.__file__).parent
    shipped = package / "_migrations"
    return shipped if shipped.is_dir() else package.parent / "migrations"


READ_ONLY_OPTION = "mcp_hub_read_only"
"""Execution option marking an engine whose transactions only read (see `read_only`)."""


def read_only(engine: AsyncEngine) -> AsyncEngine:
    """`engine` for transactions that never write: same pool, but no write lock taken on SQLite."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def display_url(url: str | URL) -> str:
    """`url` with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


POSTGRES_CONNECT_SECONDS = 10
POSTGRES_COMMAND_SECONDS = 30


def create_engine(url: str, *, foreign_keys: bool = True) -> AsyncEngine:
    """An async engine for `url`, configured for the hub (see the module docstring).

    `foreign_keys=False` is for migrations only: SQLite table rebuilds must not cascade.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, foreign_keys=foreign_keys)
    if parsed.get_backend_name() == "postgresql":
        return create_async_engine(
            parsed,
            hide_parameters=True,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            pool_recycle=1800,
            # Bounds on every connect and statement: a store's transaction is never cancelled halfway (db/_base.py).
            connect_args={"timeout": POSTGRES_CONNECT_SECONDS, "command_timeout": POSTGRES_COMMAND_SECONDS},
        )
    raise DatabaseError(f"unsupported database URL {display_url(parsed)}: use sqlite+aiosqlite or postgresql+asyncpg")


def _sqlite_engine(url: URL, *, foreign_keys: bool) -> AsyncEngine:
    database = url.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, hide_parameters=True)
    pragmas = (
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
        "PRAGMA journal_mode=WAL",
        f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    )

    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the driver (see on_begin); the pragmas then run outside any transaction,
        # where `foreign_keys` must be set to take effect.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in pragmas:
                cursor.execute(pragma)
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        read_only_work = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only_work else "BEGIN IMMEDIATE")

    event.listen(engine.sync_engine, "connect", on_connect)
    event.listen(engine.sync_engine, "begin", on_begin)
    return engine


def alembic_config(url: str) -> Config:
    """An Alembic `Config` for `url`, built in code (no `alembic.ini` needed)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("file_template", _FILE_TEMPLATE)
    config.set_main_option("timezone", "UTC")
    config.set_main_option("path_separator", "os")
    # ConfigParser interpolates `%`, which percent-encoded passwords contain.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["url"] = url
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` up to `revision`."""
    await _migrate(url, lambda config: command.upgrade(config, revision))


async def downgrade(url: str, revision: str) -> None:
    """Migrate the database at `url` down to `revision` (`"base"` drops every table)."""
    await _migrate(url, lambda config: command.downgrade(config, revision))


_MIGRATION_LOCK_KEY = 0x6D63_7068_7562  # "mcphub": the advisory lock every `mcp-hub migrate` takes on PostgreSQL


async def _migrate(url: str, run: Callable[[Config], None]) -> None:
    config = alembic_config(url)
    engine = create_engine(url, foreign_keys=False)
    try:
        async with engine.begin() as connection:

            def in_transaction(sync_connection: Connection) -> None:
                if sync_connection.dialect.name == "postgresql":
                    # Replicas (or a compose `up`) may migrate at once: the others wait here, then find the
                    # schema at head, instead of colliding on CREATE TYPE/TABLE. Released at commit.
                    sync_connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
                config.attributes["connection"] = sync_connection
                try:
                    run(config)
                except (CommandError, RevisionError) as exc:
                    raise DatabaseError(f"cannot migrate {display_url(url)}: {exc}") from exc
                if sync_connection.dialect.name == "sqlite":
                    _check_foreign_keys(sync_connection, url)

            await connection.run_sync(in_transaction)
    finally:
        await engine.dispose()


def _check_foreign_keys(connection: Connection, url: str) -> None:
    # Foreign keys are off while migrating SQLite; check before commit that no migration broke them.
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if violations:
        raise DatabaseError(f"migrating {display_url(url)} left rows violating foreign keys: {violations[:5]}")


@dataclass(frozen=True)
class SchemaStatus:
    """The database's schema revision against the code's migration head."""

    current: str | None
    head: str

    @property
    def is_current(self) -> bool:
        return self.current == self.head


def _script_directory(url: str) -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(url))


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    """Where the database of `engine` stands (`current` is None on an empty database)."""
    url = engine.url.render_as_string(hide_password=False)
    head = _script_directory(url).get_current_head()
    if head is None:
        raise DatabaseError(f"no migrations found in {migrations_dir()}")
    async with engine.connect() as connection:
        current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_revision())
    return SchemaStatus(current=current, head=head)


async def require_current_schema(engine: AsyncEngine) -> None:
    """Raise `SchemaOutOfDateError` unless the database of `engine` is exactly at the migration head."""
    status = await schema_status(engine)
    if status.is_current:
        return
    where = f"the database at {display_url(engine.url)}"
    if status.current is None:
        raise SchemaOutOfDateError(
            f"{where} is at schema revision None (empty), this mcp-hub expects {status.head}: run `mcp-hub migrate`"
        )
    script = _script_directory(engine.url.render_as_string(hide_password=False))
    if _is_known(script, status.current):
        raise SchemaOutOfDateError(
            f"{where} is at schema revision {status.current}, this mcp-hub expects {status.head}: run `mcp-hub migrate`"
        )
    raise SchemaOutOfDateError(
        f"{where} is at schema revision {status.current}, which this mcp-hub (expecting {status.head}) does not "
        "know: it was migrated by a newer mcp-hub; run that version, or restore a backup taken before it migrated"
    )


def _is_known(script: ScriptDirectory, revision: str) -> bool:
    try:
        script.get_revision(revision)
    except (CommandError, RevisionError):
        return False
    return True


@asynccontextmanager
async def current_database(url: str) -> AsyncGenerator[AsyncEngine]:
    """An engine on the database at `url`, which must be at the migration head; disposed on exit."""
    engine = create_engine(url)
    try:
        await require_current_schema(engine)
        yield engine
    finally:
        await engine.dispose()
