"""What every store shares: a writing and a read-only session factory over one engine, and one clock.

Stores hand out frozen dataclasses, never ORM objects, and each method is one transaction. Writes open with
`BEGIN IMMEDIATE` on SQLite (see `mcp_hub.db.engine`); reads go through `read_only(engine)`, whose plain
`BEGIN` never waits for, or holds, the single writer's lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from mcp_hub.db.engine import read_only
from mcp_hub.domain import Clock, utc_now


class Store:
    """Base of the stores: `_writes` for transactions that write, `_reads` for those that only read."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        self._writes = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = async_sessionmaker(read_only(engine), expire_on_commit=False)
        self._clock = clock


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (every DML statement returns a `CursorResult`)."""
    return cast("CursorResult[Any]", result).rowcount


def require_aware(name: str, value: datetime) -> None:
    """Guard: the stores take timezone-aware datetimes only (a naive one is a bug)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")
