"""Alembic environment for mcp-hub (async-capable; SQLite and PostgreSQL).

`mcp_hub.db.engine.upgrade()` hands over an open connection in `config.attributes["connection"]`, so
migrations run inside the caller's event loop (through `AsyncConnection.run_sync`) and in the caller's
transaction. Without one, this file builds its own async engine from `config.attributes["url"]` or
the `sqlalchemy.url` option and runs the migrations through `connection.run_sync`, which is what the
plain `alembic` command line does. SQLite gets `render_as_batch=True`, because it can only alter
tables by copying them (https://alembic.sqlalchemy.org/en/latest/batch.html).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from mcp_hub.db.engine import create_engine
from mcp_hub.db.models import metadata

config = context.config


def _url() -> str:
    url: object = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    if not isinstance(url, str) or not url:
        raise ValueError("no database URL: set config.attributes['url'] or the sqlalchemy.url option")
    return url


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    # Foreign keys off: SQLite's batch mode drops and recreates tables, and a DROP TABLE with foreign
    # keys enforced would run ON DELETE CASCADE on the rows of the tables that refer to it.
    engine = create_engine(url, foreign_keys=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline() -> None:
    url = _url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
elif isinstance(given := config.attributes.get("connection"), Connection):
    _run_with(given)
else:
    asyncio.run(_run_with_own_engine(_url()))
