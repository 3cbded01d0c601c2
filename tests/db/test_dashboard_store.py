"""`DashboardStore` on SQLite and PostgreSQL: the dashboard's minute buckets, error rate, percentiles and rankings
are read from known audit rows exactly. Our choice (issue 13 §2: the dashboard's numbers)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_query import AuditQueryStore
from mcp_hub.db.dashboard import DashboardStore, Ranked, percentile
from mcp_hub.domain import FAILURE_OUTCOMES, NOT_CALL_OUTCOMES, REFUSAL_OUTCOMES, AuditOutcome

pytestmark = pytest.mark.anyio

START = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)


def call(minute: int, client: str, tool: str, outcome: AuditOutcome, latency_ms: float, **extra: object) -> AuditEvent:
    return AuditEvent(
        at=START + timedelta(minutes=minute, seconds=30),
        client=client,
        session=None,
        public_name=tool,
        connector_id="faults",
        downstream_name=tool.removeprefix("faults__"),
        outcome=outcome,
        latency_ms=latency_ms,
        detail=None,
        **extra,  # pyright: ignore[reportArgumentType]
    )


async def test_the_window_is_counted_per_minute_with_errors_refusals_and_percentiles(migrated: AsyncEngine) -> None:
    """Our choice: calls are tools/call, prompts/get, resources/read rows but approval transitions and catalog
    decisions; tool, downstream and hub failures are errors; refusals are counted apart and give no latency."""
    rows = [
        call(0, "agent:a", "faults__echo", AuditOutcome.OK, 10),
        call(0, "agent:a", "faults__echo", AuditOutcome.TOOL_ERROR, 20),
        call(2, "agent:b for alice", "faults__meta", AuditOutcome.OK, 30),
        call(2, "agent:a", "faults__echo", AuditOutcome.TIMEOUT, 1000),
        call(3, "agent:a", "faults__echo", AuditOutcome.FORBIDDEN, 0),
        call(3, "agent:a", "faults__echo", AuditOutcome.APPROVAL_REQUESTED, 0),
        call(3, "user:root", "faults__echo", AuditOutcome.DEFINITION_APPROVED, 0, method="catalog/review"),
        call(61, "agent:a", "faults__echo", AuditOutcome.OK, 5),  # after the window
    ]
    await AuditStore(migrated).insert_audit(rows)

    traffic = await DashboardStore(migrated).traffic(START, START + timedelta(minutes=60))

    assert len(traffic.minutes) == 60
    assert [(m.calls, m.errors) for m in traffic.minutes[:4]] == [(2, 1), (0, 0), (2, 1), (1, 0)]
    assert (traffic.calls, traffic.errors, traffic.refusals) == (5, 2, 1)
    assert traffic.error_rate == pytest.approx(0.4)
    assert (traffic.p50_ms, traffic.p95_ms, traffic.sampled) == (20, 1000, 4)


async def test_the_busiest_agents_and_tools_are_ranked_by_calls(migrated: AsyncEngine) -> None:
    """Our choice: ranked by calls, then by name; each with its errors."""
    rows = [
        *(call(1, "agent:a", "faults__echo", AuditOutcome.OK, 1) for _ in range(3)),
        call(1, "agent:b", "faults__meta", AuditOutcome.TOOL_ERROR, 1),
        call(1, "agent:b", "faults__echo", AuditOutcome.OK, 1),
        call(1, "agent:c", "faults__add", AuditOutcome.OK, 1),
    ]
    await AuditStore(migrated).insert_audit(rows)
    store = DashboardStore(migrated)

    agents = await store.top_agents(START, limit=2)
    tools = await store.top_tools(START)

    assert agents == [Ranked("agent:a", 3, 0), Ranked("agent:b", 2, 1)]
    assert tools == [Ranked("faults__echo", 4, 0), Ranked("faults__add", 1, 0), Ranked("faults__meta", 1, 1)]


def test_percentiles_are_nearest_rank() -> None:
    """Our choice: the nearest-rank method (a value that was measured, never an interpolation)."""
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50.0, 95.0)


async def test_usage_and_the_dashboard_count_the_same_calls_errors_and_refusals(migrated: AsyncEngine) -> None:
    """Our choice: one definition (`mcp_hub.domain.FAILURE_OUTCOMES`, `REFUSAL_OUTCOMES`) behind both views: a
    row of every call outcome gives the same calls, errors and refusals in the dashboard and in usage."""
    # An admin change is not a call (its method is admin/...).
    outcomes = [o for o in AuditOutcome if o not in NOT_CALL_OUTCOMES and o is not AuditOutcome.ADMIN_REFUSED]
    await AuditStore(migrated).insert_audit([call(1, "agent:a", "faults__echo", outcome, 1) for outcome in outcomes])

    traffic = await DashboardStore(migrated).traffic(START, START + timedelta(minutes=60))
    (usage,) = await AuditQueryStore(migrated).usage()

    assert (usage.calls, usage.errors, usage.refused) == (traffic.calls, traffic.errors, traffic.refusals)
    assert (traffic.errors, traffic.refusals) == (len(FAILURE_OUTCOMES), len(REFUSAL_OUTCOMES))
    assert traffic.calls == len(outcomes)
