"""What every store shares: a writing and a read-only session factory over one engine, one clock, and the
one-statement transactions most store methods are.

Stores hand out frozen dataclasses, never ORM objects, and each method is one transaction. Writes open with
`BEGIN IMMEDIATE` on SQLite (see `mcp_hub.db.engine`); reads go through `read_only(engine)`, whose plain
`BEGIN` never waits for, or holds, the single writer's lock.

A transaction is never cancelled halfway (the sessions' units of work are shielded): a request whose client went
away, or a connector task stopped at shutdown, finishes the statement it is in, which the database bounds
(`busy_timeout` on SQLite, the connect and command timeouts on PostgreSQL). Cancelling inside one makes
SQLAlchemy hard-close the connection, and with aiosqlite 0.22 that close can wait forever on a worker thread that
has already stopped, which would keep the hub's process from ever exiting (threat T25).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import fields
from datetime import datetime
from typing import Any, TypeVar, cast

import anyio
from sqlalchemy import CursorResult, Delete, Result, Select, Update, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mcp_hub.db.engine import read_only
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import ConflictError

RowT = TypeVar("RowT")
RecordT = TypeVar("RecordT")


class Sessions:
    """Sessions whose units of work cannot be cancelled halfway (see the module docstring)."""

    def __init__(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self._maker = maker

    @asynccontextmanager
    async def __call__(self) -> AsyncGenerator[AsyncSession]:
        with anyio.CancelScope(shield=True):
            async with self._maker() as session:
                yield session

    @asynccontextmanager
    async def begin(self) -> AsyncGenerator[AsyncSession]:
        with anyio.CancelScope(shield=True):
            async with self._maker.begin() as session:
                yield session


class Store:
    """Base of the stores: `_writes` for transactions that write, `_reads` for those that only read."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        self._writes = Sessions(async_sessionmaker(engine, expire_on_commit=False))
        self._reads = Sessions(async_sessionmaker(read_only(engine), expire_on_commit=False))
        self._clock = clock

    async def _first(self, query: Select[RowT]) -> RowT | None:
        """The first row `query` selects, or None."""
        async with self._reads() as session:
            return await session.scalar(query)

    async def _every(self, query: Select[RowT]) -> Sequence[RowT]:
        """Every row `query` selects."""
        async with self._reads() as session:
            return (await session.scalars(query)).all()

    async def _get(self, model: type[RowT], key: object) -> RowT | None:
        """The row of `model` with primary key `key`, or None."""
        async with self._reads() as session:
            return await session.get(model, key)

    async def _add(self, row: object, *, duplicate: str | None = None) -> None:
        """Insert `row`; with `duplicate`, a unique constraint it breaks is `ConflictError(duplicate)`."""
        try:
            async with self._writes.begin() as session:
                session.add(row)
        except IntegrityError:
            if duplicate is None:
                raise
            raise ConflictError(duplicate) from None

    async def _change(self, statement: Update | Delete) -> int:
        """Run one UPDATE or DELETE; how many rows it matched."""
        async with self._writes.begin() as session:
            return rowcount(await session.execute(statement))


def record_of(kind: type[RecordT], row: object, **converted: object) -> RecordT:
    """A record (a frozen dataclass) from an ORM row: each field is the row's attribute of the same name, unless
    `converted` gives it (an enum, a tuple for a JSON list)."""
    names = [field.name for field in fields(cast("Any", kind))]
    return kind(**{name: converted[name] if name in converted else getattr(row, name) for name in names})


def columns_of(record: object, **overrides: object) -> dict[str, Any]:
    """The column values of a row from a record (a dataclass): its fields, with `overrides` on top."""
    values: dict[str, Any] = {field.name: getattr(record, field.name) for field in fields(cast("Any", record))}
    return values | overrides


def mapped(row: RowT | None, record: Callable[[RowT], RecordT]) -> RecordT | None:
    """`record(row)`, or None for no row."""
    return None if row is None else record(row)


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (every DML statement returns a `CursorResult`)."""
    return cast("CursorResult[Any]", result).rowcount


def require_aware(name: str, value: datetime) -> None:
    """Guard: the stores take timezone-aware datetimes only (a naive one is a bug)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")


async def advisory_xact_lock(session: AsyncSession, key: int) -> None:
    """Serialise with every other holder of `key` (any replica) until `session`'s transaction ends.

    PostgreSQL: a transaction-level advisory lock. SQLite needs none: its write transactions begin with
    `BEGIN IMMEDIATE` and hold the database's one write lock.
    """
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
