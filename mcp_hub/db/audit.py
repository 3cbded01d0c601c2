"""`AuditStore`: the append-only, hash-chained audit trail of calls and approval transitions (written by
`AuditWriter`; the chain in `mcp_hub.db.audit_chain`, the seals in `mcp_hub.db.audit_seal`, the filtered reads in
`mcp_hub.db.audit_query`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

import anyio.to_thread
from sqlalchemy import Table, func, insert, or_, select

from mcp_hub.db._base import Store, record_of, require_aware
from mcp_hub.db.audit_chain import chain_head, chain_values, lock_chain
from mcp_hub.db.audit_query import AuditRecord
from mcp_hub.db.audit_seal import SealKey, seal_values
from mcp_hub.db.models import AuditCall, AuditSeal
from mcp_hub.domain import AuditOutcome, member_of

_HASH_IN_THREAD_FROM = 32
"""Batches of at least this many rows are hashed in a worker thread."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One request through the hub (a tool call, a prompt get, a resource read, ...) or one approval transition;
    `at` is timezone-aware."""

    at: datetime
    client: str
    session: str | None
    public_name: str
    connector_id: str | None
    downstream_name: str | None
    outcome: AuditOutcome
    latency_ms: float
    detail: str | None
    method: str = "tools/call"
    downstream_ms: float | None = None
    """The part of `latency_ms` spent waiting on the downstream server; None when no downstream was called."""

    def __post_init__(self) -> None:
        require_aware("AuditEvent.at", self.at)
        member_of(AuditOutcome, self.outcome, "audit outcome")
        # The chain's canonical JSON (RFC 8785) has no NaN or infinity; a row that cannot be hashed is a bug.
        if not math.isfinite(self.latency_ms) or (
            self.downstream_ms is not None and not math.isfinite(self.downstream_ms)
        ):
            raise ValueError("AuditEvent latencies must be finite numbers")


_AUDIT_CALLS: Final = cast("Table", AuditCall.__table__)
_AUDIT_SEALS: Final = cast("Table", AuditSeal.__table__)


class AuditStore(Store):
    """Appends to the audit trail and reads its latest rows."""

    async def insert_audit(self, events: Sequence[AuditEvent], *, seal_key: SealKey | None = None) -> list[AuditRecord]:
        """Append `events` to the audit trail and its hash chain: one executemany in one transaction, which
        holds the chain's lock (concurrent replicas extend the chain one batch at a time); with `seal_key`, the
        batch's seal in the same transaction. The stored records, with their ids and hashes."""
        if not events:
            return []
        rows = [_audit_values(event) for event in events]
        async with self._writes.begin() as session:
            await lock_chain(session)
            head = await chain_head(session)
            if len(rows) < _HASH_IN_THREAD_FROM:
                chained = chain_values(head, rows)
            else:  # tens of microseconds a row: a big batch is hashed off the event loop the calls share
                chained = await anyio.to_thread.run_sync(chain_values, head, rows)
            # Core's executemany on the table: the ORM's bulk insert walks its attribute machinery for every row.
            await session.execute(insert(_AUDIT_CALLS), chained)
            if seal_key is not None:
                last = chained[-1]
                seal = seal_values(
                    seal_key,
                    first_id=chained[0]["id"],
                    last_id=last["id"],
                    last_hash=last["row_hash"],
                    sealed_at=self._clock(),
                )
                await session.execute(insert(_AUDIT_SEALS), [seal])
        return [_stored_record(values) for values in chained]

    async def recent_audit(self, limit: int = 100) -> list[AuditEvent]:
        """The latest `limit` audit events, newest first."""
        query = select(AuditCall).order_by(AuditCall.at.desc(), AuditCall.id.desc()).limit(limit)
        async with self._reads() as session:
            return [_audit_event(row) for row in (await session.scalars(query)).all()]

    async def count_calls(self, agent_name: str, since: datetime, outcomes: Sequence[AuditOutcome]) -> int:
        """How many `tools/call` rows of the agent (for itself or a user) since `since` have one of `outcomes`."""
        require_aware("since", since)
        query = (
            select(func.count())
            .select_from(AuditCall)
            .where(
                AuditCall.method == "tools/call",
                AuditCall.at >= since,
                AuditCall.outcome.in_([str(outcome) for outcome in outcomes]),
                or_(AuditCall.client == f"agent:{agent_name}", AuditCall.client.startswith(f"agent:{agent_name} for ")),
            )
        )
        async with self._reads() as session:
            return int((await session.execute(query)).scalar_one())

    async def recent_of_agent(self, agent_name: str, limit: int = 10) -> list[AuditEvent]:
        """The agent's latest `limit` rows (its calls, for itself or a user, and its approvals), newest first."""
        query = (
            select(AuditCall)
            .where(
                or_(
                    AuditCall.client == f"agent:{agent_name}",
                    AuditCall.client.startswith(f"agent:{agent_name} for ", autoescape=True),
                )
            )
            .order_by(AuditCall.at.desc(), AuditCall.id.desc())
            .limit(limit)
        )
        async with self._reads() as session:
            return [_audit_event(row) for row in (await session.scalars(query)).all()]


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; an audit row must never be refused, so it is replaced.
    return value.replace("\x00", "\ufffd")


def _optional_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _audit_values(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "client": _text(event.client),
        "session": _optional_text(event.session),
        "public_name": _text(event.public_name),
        "connector_id": _optional_text(event.connector_id),
        "downstream_name": _optional_text(event.downstream_name),
        "outcome": str(event.outcome),
        "latency_ms": event.latency_ms,
        "detail": _optional_text(event.detail),
        "method": event.method,
        "downstream_ms": event.downstream_ms,
    }


def _stored_record(values: dict[str, Any]) -> AuditRecord:
    converted: dict[str, Any] = {**values, "outcome": AuditOutcome(values["outcome"])}
    return AuditRecord(**converted)


def _audit_event(row: AuditCall) -> AuditEvent:
    return record_of(AuditEvent, row, outcome=AuditOutcome(row.outcome))
