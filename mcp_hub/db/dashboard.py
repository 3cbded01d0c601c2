"""`DashboardStore`: the admin console's reads of the audit trail over a recent window (issue 13 §2).

Read-only, over `audit_calls` (owned by `AuditStore`): calls per minute and their errors, latency percentiles, the
busiest agents and tools. A *call* is a row of `tools/call`, `prompts/get` or `resources/read` that is not an
approval transition; an *error* is a call that failed at the tool, the downstream or the hub, a *refusal* one the
hub turned away (grants, limits, loops): `mcp_hub.domain.FAILURE_OUTCOMES` and `REFUSAL_OUTCOMES`, as usage counts.

Every read is bounded: the minute buckets are grouped in SQL (one row per minute), the percentiles are computed
from at most `LATENCY_SAMPLE` of the window's latest calls, and the top lists are `LIMIT`ed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db._base import Store, require_aware
from mcp_hub.db.models import AuditCall
from mcp_hub.domain import FAILURE_OUTCOMES, REFUSAL_OUTCOMES, AuditOutcome

CALL_METHODS: Final = ("tools/call", "prompts/get", "resources/read")
TRANSITION_OUTCOMES: Final = tuple(outcome.value for outcome in AuditOutcome if outcome.value.startswith("approval_"))
# Sorted: the same IN list, so the same compiled statement, in every process.
_FAILURES: Final = tuple(sorted(FAILURE_OUTCOMES))
_REFUSALS: Final = tuple(sorted(REFUSAL_OUTCOMES))
LATENCY_SAMPLE: Final = 20_000
"""At most this many of the window's latest calls give its latency percentiles."""


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """One minute of the window: its start, its calls and how many of them failed."""

    start: datetime
    calls: int
    errors: int


@dataclass(frozen=True, slots=True)
class Ranked:
    """One of the busiest agents (the audit's client label) or tools, with its calls and errors."""

    name: str
    calls: int
    errors: int


@dataclass(frozen=True, slots=True)
class Traffic:
    """The calls of a window `[since, until)`: per minute (every minute, zeros included), totals, percentiles."""

    since: datetime
    until: datetime
    minutes: tuple[MinuteCount, ...]
    calls: int
    errors: int
    refusals: int
    p50_ms: float | None
    p95_ms: float | None
    sampled: int
    """How many calls the percentiles were computed from (all of them, or the latest `LATENCY_SAMPLE`)."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.calls if self.calls else None

    @property
    def calls_per_minute(self) -> float:
        span = max((self.until - self.since).total_seconds() / 60, 1.0)
        return self.calls / span


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ascending `sorted_values` (`fraction` in [0, 1]); None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def _is_call() -> ColumnElement[bool]:
    return AuditCall.method.in_(CALL_METHODS) & AuditCall.outcome.not_in(TRANSITION_OUTCOMES)


def _error_count() -> ColumnElement[Any]:
    return func.sum(case((AuditCall.outcome.in_(_FAILURES), 1), else_=0))


class DashboardStore(Store):
    """The dashboard's aggregate reads of the audit trail."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._dialect = engine.dialect.name

    def _minute_of(self) -> ColumnElement[Any]:
        """The call's minute as text `YYYY-MM-DD HH:MM` (UTC), grouped by in SQL on either backend."""
        if self._dialect == "postgresql":
            return func.to_char(func.timezone("UTC", AuditCall.at), "YYYY-MM-DD HH24:MI")
        return func.strftime("%Y-%m-%d %H:%M", AuditCall.at)

    async def traffic(self, since: datetime, until: datetime) -> Traffic:
        """The calls between `since` and `until` (aware datetimes; `since` on a minute boundary reads best)."""
        require_aware("since", since)
        require_aware("until", until)
        window = _is_call() & (AuditCall.at >= since) & (AuditCall.at < until)
        minute = self._minute_of().label("minute")
        by_minute = select(minute, func.count(), _error_count()).where(window).group_by(minute)
        refusals = select(func.count()).where(window & AuditCall.outcome.in_(_REFUSALS))
        latencies = (
            select(AuditCall.latency_ms)
            .where(window & AuditCall.outcome.not_in(_REFUSALS))
            .order_by(AuditCall.at.desc())
            .limit(LATENCY_SAMPLE)
        )
        async with self._reads() as session:
            counted = {str(row[0]): (int(row[1]), int(row[2] or 0)) for row in await session.execute(by_minute)}
            refused = int((await session.execute(refusals)).scalar_one())
            sample = sorted(float(value) for value in (await session.scalars(latencies)).all())
        minutes: list[MinuteCount] = []
        start = since.replace(second=0, microsecond=0)
        while start < until:
            calls, errors = counted.get(start.strftime("%Y-%m-%d %H:%M"), (0, 0))
            minutes.append(MinuteCount(start=start, calls=calls, errors=errors))
            start += timedelta(minutes=1)
        return Traffic(
            since=since,
            until=until,
            minutes=tuple(minutes),
            calls=sum(count for count, _ in counted.values()),
            errors=sum(errors for _, errors in counted.values()),
            refusals=refused,
            p50_ms=percentile(sample, 0.50),
            p95_ms=percentile(sample, 0.95),
            sampled=len(sample),
        )

    async def top_agents(self, since: datetime, limit: int = 5) -> list[Ranked]:
        """The audit clients (`agent:NAME`, `agent:NAME for USER`) with the most calls since `since`."""
        return await self._top(AuditCall.client, since, limit)

    async def top_tools(self, since: datetime, limit: int = 5) -> list[Ranked]:
        """The public names called most since `since`."""
        return await self._top(AuditCall.public_name, since, limit)

    async def _top(self, column: Any, since: datetime, limit: int) -> list[Ranked]:
        require_aware("since", since)
        calls = func.count().label("calls")
        query = (
            select(column, calls, _error_count())
            .where(_is_call() & (AuditCall.at >= since))
            .group_by(column)
            .order_by(calls.desc(), column)
            .limit(limit)
        )
        async with self._reads() as session:
            rows = (await session.execute(query)).all()
        return [Ranked(name=str(row[0]), calls=int(row[1]), errors=int(row[2] or 0)) for row in rows]
