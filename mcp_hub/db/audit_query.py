"""`AuditQueryStore`: the audit trail as the admin API, the console and `mcp-hub audit` read it (issue 13 §7, §8).

One filter, three reads:

- `AuditFilter`: which rows (every field optional, all of them must hold): `agent` (the agent's name; its calls
  for itself and for any user), `tool` (a public name), `connector` (a connector id), `outcomes` (any of them),
  `method` (`tools/call`, `prompts/get`, ...), `since` (inclusive) and `until` (exclusive), timezone-aware.
  `parse_time` and `parse_outcome` read user input for it (naive times are UTC; bad input is `InvalidInputError`,
  which the API answers 400 and the CLI exits 2 on).
- `AuditQueryStore.page(filter, cursor=None, limit=50, order=NEWEST_FIRST)` → `AuditPage`: `records` (each an
  `AuditRecord`: the row's `id`, its fields and its chain hashes `prev_hash`/`row_hash`) and `next_cursor`,
  an opaque string to pass back for the next page (None on the last). Keyset paging on the row id: stable
  while rows are appended, no offsets. A cursor this store did not issue is `InvalidInputError`.
- `AuditQueryStore.export(filter)` → async iterator of `AuditRecord`s, oldest first, read `EXPORT_CHUNK` rows per
  short transaction (bounded memory for any range); `json_line(record)` is one line of JSON lines export
  (`AuditRecord.to_json()` is the dict the API returns).
- `AuditQueryStore.usage(since=, until=, agent=)` → `UsageDay`s: per agent and UTC day, calls (every row that is a
  request, not an approval or review transition, nor an admin change: its client is an admin, not an agent),
  errors (calls that failed at the tool, the downstream or the hub: `FAILURE_OUTCOMES`, as the dashboard counts
  them), refusals (calls the hub turned away), the summed downstream time, and approvals requested (held),
  approved, denied and expired. A row whose caller is not an agent (auth off) counts under its client label as
  recorded.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import ColumnElement, Date, case, cast, func, not_, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db._base import Store, record_of, require_aware
from mcp_hub.db.models import AuditCall
from mcp_hub.domain import (
    ADMIN_METHOD_PREFIX,
    FAILURE_OUTCOMES,
    NOT_CALL_OUTCOMES,
    REFUSAL_OUTCOMES,
    AuditOutcome,
    Clock,
    utc_now,
)
from mcp_hub.errors import InvalidInputError

MAX_PAGE: Final = 500
"""The largest page `page()` returns."""
EXPORT_CHUNK: Final = 1_000
"""Rows `export()` reads per transaction."""

APPROVAL_OUTCOMES: Final = frozenset(outcome for outcome in AuditOutcome if outcome.startswith("approval_"))
REVIEW_OUTCOMES: Final = frozenset(outcome for outcome in AuditOutcome if outcome.startswith("definition_"))
NOT_CALLS: Final = NOT_CALL_OUTCOMES
"""Rows that record a transition (of an approval, of a definition's review), not a request."""


def parse_time(value: str) -> datetime:
    """A filter time from user input (a query string, a command line): ISO 8601 (`2026-12-01`,
    `2026-12-01T10:00:00Z`, `...+01:00`), UTC when it has no offset; anything else is `InvalidInputError`."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInputError(f"{value[:40]!r}: expected an ISO 8601 time, such as 2026-12-01T10:00:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_outcome(value: str) -> AuditOutcome:
    """An outcome from user input; an unknown one is `InvalidInputError`."""
    try:
        return AuditOutcome(value)
    except ValueError:
        raise InvalidInputError(f"{value[:40]!r}: not an audit outcome ({', '.join(AuditOutcome)})") from None


class Order(StrEnum):
    """The order of a page (by row id, which is the chain's order)."""

    NEWEST_FIRST = "newest_first"
    OLDEST_FIRST = "oldest_first"


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which audit rows a read returns; None (or empty `outcomes`) means any."""

    agent: str | None = None
    """An agent's name: its calls for itself (`agent:NAME`) and for any user (`agent:NAME for user:...`)."""
    tool: str | None = None
    """A public name (tool, prompt, or resource URI as the audit records it)."""
    connector: str | None = None
    outcomes: tuple[AuditOutcome, ...] = ()
    method: str | None = None
    since: datetime | None = None
    """Inclusive."""
    until: datetime | None = None
    """Exclusive."""

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value: datetime | None = getattr(self, name)
            if value is not None:
                require_aware(f"AuditFilter.{name}", value)

    def conditions(self) -> list[ColumnElement[bool]]:
        """The SQL conditions of this filter (for the stores of `mcp_hub.db` only)."""
        conditions: list[ColumnElement[bool]] = []
        if self.agent is not None:
            conditions.append(agent_condition(self.agent))
        if self.tool is not None:
            conditions.append(AuditCall.public_name == self.tool)
        if self.connector is not None:
            conditions.append(AuditCall.connector_id == self.connector)
        if self.outcomes:
            conditions.append(AuditCall.outcome.in_([str(outcome) for outcome in self.outcomes]))
        if self.method is not None:
            conditions.append(AuditCall.method == self.method)
        if self.since is not None:
            conditions.append(AuditCall.at >= self.since)
        if self.until is not None:
            conditions.append(AuditCall.at < self.until)
        return conditions


def agent_condition(agent: str) -> ColumnElement[bool]:
    """Rows of `agent`'s calls, for itself or for a user."""
    label = f"agent:{agent}"
    prefix = f"{label} for "
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return or_(AuditCall.client == label, AuditCall.client.like(f"{escaped}%", escape="\\"))


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit row as read back: its id, its fields, and its place in the hash chain."""

    id: int
    at: datetime
    client: str
    session: str | None
    public_name: str
    connector_id: str | None
    downstream_name: str | None
    outcome: AuditOutcome
    latency_ms: float
    downstream_ms: float | None
    detail: str | None
    method: str
    prev_hash: str
    row_hash: str

    def to_json(self) -> dict[str, Any]:
        """The record as JSON (what the API returns and `export` writes, one per line)."""
        return {
            "id": self.id,
            "at": self.at.astimezone(UTC).isoformat(timespec="microseconds"),
            "client": self.client,
            "session": self.session,
            "public_name": self.public_name,
            "connector_id": self.connector_id,
            "downstream_name": self.downstream_name,
            "outcome": str(self.outcome),
            "latency_ms": self.latency_ms,
            "downstream_ms": self.downstream_ms,
            "detail": self.detail,
            "method": self.method,
            "prev_hash": self.prev_hash,
            "row_hash": self.row_hash,
        }


def json_line(record: AuditRecord) -> bytes:
    """`record` as one line of JSON lines (UTF-8, newline-terminated)."""
    return json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of records, and the cursor of the next page (None: this is the last)."""

    records: tuple[AuditRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class UsageDay:
    """One agent's use of the hub on one UTC day."""

    day: date
    agent: str
    """The agent's name; without auth, the client label the audit recorded."""
    calls: int = 0
    errors: int = 0
    """Calls that failed at the tool, the downstream or the hub (`mcp_hub.domain.FAILURE_OUTCOMES`)."""
    refused: int = 0
    """Calls the hub turned away: unknown names, grants, limits, loops (`mcp_hub.domain.REFUSAL_OUTCOMES`)."""
    downstream_ms: float = 0.0
    approvals_requested: int = 0
    """Calls held for approval."""
    approvals_approved: int = 0
    approvals_denied: int = 0
    approvals_expired: int = 0
    outcomes: dict[str, int] = field(default_factory=dict[str, int])
    """Calls per outcome."""

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "agent": self.agent,
            "calls": self.calls,
            "errors": self.errors,
            "refused": self.refused,
            "downstream_ms": self.downstream_ms,
            "approvals_requested": self.approvals_requested,
            "approvals_approved": self.approvals_approved,
            "approvals_denied": self.approvals_denied,
            "approvals_expired": self.approvals_expired,
            "outcomes": dict(self.outcomes),
        }


_CURSOR_PREFIX: Final = "a"


def _cursor_of(row_id: int) -> str:
    return f"{_CURSOR_PREFIX}{row_id}"


def _id_of(cursor: str) -> int:
    digits = cursor.removeprefix(_CURSOR_PREFIX)
    if not cursor.startswith(_CURSOR_PREFIX) or not digits.isascii() or not digits.isdigit() or len(digits) > 19:
        raise InvalidInputError("invalid audit cursor: pass back the next_cursor of a page")
    return int(digits)


def agent_of(client: str) -> str:
    """The agent a client label names (`agent:NAME` or `agent:NAME for user:ID`), else the label itself."""
    if not client.startswith("agent:"):
        return client
    return client.removeprefix("agent:").split(" for ", 1)[0]


class AuditQueryStore(Store):
    """Filtered, paged, exported and summed reads of the audit trail (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, *, clock: Clock = utc_now) -> None:
        super().__init__(engine, clock=clock)
        self._dialect = engine.dialect.name

    async def page(
        self,
        audit_filter: AuditFilter,
        *,
        cursor: str | None = None,
        limit: int = 50,
        order: Order = Order.NEWEST_FIRST,
    ) -> AuditPage:
        """One page of the rows `audit_filter` selects, after `cursor` (a previous page's `next_cursor`)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInputError(f"limit must be between 1 and {MAX_PAGE}")
        newest_first = order is Order.NEWEST_FIRST
        query = select(AuditCall).where(*audit_filter.conditions())
        if cursor is not None:
            after = _id_of(cursor)
            query = query.where(AuditCall.id < after if newest_first else AuditCall.id > after)
        query = query.order_by(AuditCall.id.desc() if newest_first else AuditCall.id).limit(limit + 1)
        rows = await self._every(query)
        records = tuple(_record(row) for row in rows[:limit])
        more = len(rows) > limit
        return AuditPage(records, _cursor_of(records[-1].id) if more else None)

    async def export(self, audit_filter: AuditFilter) -> AsyncIterator[AuditRecord]:
        """Every row `audit_filter` selects, oldest first, read in chunks (each its own short transaction)."""
        after = 0
        conditions = audit_filter.conditions()
        while True:
            query = (
                select(AuditCall).where(AuditCall.id > after, *conditions).order_by(AuditCall.id).limit(EXPORT_CHUNK)
            )
            rows = await self._every(query)
            for row in rows:
                yield _record(row)
            if len(rows) < EXPORT_CHUNK:
                return
            after = rows[-1].id

    async def usage(
        self, *, since: datetime | None = None, until: datetime | None = None, agent: str | None = None
    ) -> list[UsageDay]:
        """Per agent and UTC day between `since` and `until`, ordered by day then agent (see `UsageDay`)."""
        audit_filter = AuditFilter(agent=agent, since=since, until=until)
        day = self._utc_day()
        is_call = AuditCall.outcome.not_in([str(outcome) for outcome in NOT_CALLS])
        query = (
            select(
                day.label("day"),
                AuditCall.client,
                AuditCall.outcome,
                func.count().label("rows"),
                func.sum(case((is_call, AuditCall.downstream_ms), else_=None)).label("downstream_ms"),
            )
            .where(
                *audit_filter.conditions(),
                AuditCall.outcome.not_in([str(o) for o in REVIEW_OUTCOMES]),
                not_(AuditCall.method.startswith(ADMIN_METHOD_PREFIX, autoescape=True)),
            )
            .group_by(day, AuditCall.client, AuditCall.outcome)
        )
        async with self._reads() as session:
            rows = (await session.execute(query)).all()
        days: dict[tuple[date, str], dict[str, Any]] = {}
        for row in rows:
            on = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
            totals = days.setdefault((on, agent_of(row.client)), {"outcomes": {}})
            _add(totals, str(row.outcome), int(row.rows), float(row.downstream_ms or 0.0))
        return [
            UsageDay(day=on, agent=name, **totals)
            for (on, name), totals in sorted(days.items(), key=lambda item: item[0])
        ]

    def _utc_day(self) -> ColumnElement[Any]:
        if self._dialect == "postgresql":
            return cast(func.timezone("UTC", AuditCall.at), Date)
        # SQLite stores UTC wall-clock text (`UtcDateTime`): its first ten characters are the day.
        return func.substr(AuditCall.at, 1, 10)


def _add(totals: dict[str, Any], outcome: str, count: int, downstream_ms: float) -> None:
    named = {
        AuditOutcome.APPROVAL_REQUESTED: "approvals_requested",
        AuditOutcome.APPROVAL_APPROVED: "approvals_approved",
        AuditOutcome.APPROVAL_DENIED: "approvals_denied",
        AuditOutcome.APPROVAL_EXPIRED: "approvals_expired",
    }
    if outcome in named:
        key = named[AuditOutcome(outcome)]
        totals[key] = totals.get(key, 0) + count
        return
    if outcome in APPROVAL_OUTCOMES:
        return
    totals["calls"] = totals.get("calls", 0) + count
    if outcome in FAILURE_OUTCOMES:
        totals["errors"] = totals.get("errors", 0) + count
    elif outcome in REFUSAL_OUTCOMES:
        totals["refused"] = totals.get("refused", 0) + count
    totals["downstream_ms"] = totals.get("downstream_ms", 0.0) + downstream_ms
    outcomes: dict[str, int] = totals["outcomes"]
    outcomes[outcome] = outcomes.get(outcome, 0) + count


def _record(row: AuditCall) -> AuditRecord:
    return record_of(AuditRecord, row, outcome=AuditOutcome(row.outcome))
