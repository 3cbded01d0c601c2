"""`AuditQueryStore` on both backends: filters, keyset paging, export and per-agent usage (issue 13 §7, §8)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_query import (
    AuditFilter,
    AuditQueryStore,
    Order,
    UsageDay,
    json_line,
    parse_outcome,
    parse_time,
)
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import InvalidInputError
from tests.db.migrated_copies import migrated_copy, migrated_template, migrated_url

DAY1 = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
DAY2 = datetime(2026, 12, 2, 0, 30, tzinfo=UTC)


def call(
    at: datetime,
    client: str,
    tool: str = "time__now",
    outcome: AuditOutcome = AuditOutcome.OK,
    *,
    downstream_ms: float | None = 2.0,
    method: str = "tools/call",
) -> AuditEvent:
    return AuditEvent(
        at=at,
        client=client,
        session=None,
        public_name=tool,
        connector_id=tool.split("__", 1)[0],
        downstream_name=tool.split("__", 1)[-1],
        outcome=outcome,
        latency_ms=3.0,
        detail=None,
        method=method,
        downstream_ms=downstream_ms,
    )


@pytest.fixture
async def query(migrated_copy: AsyncEngine) -> AuditQueryStore:
    """A store over a trail of calls by two agents (one of them also for a user) on two UTC days."""
    await AuditStore(migrated_copy).insert_audit(
        [
            call(DAY1, "agent:alpha"),
            call(DAY1, "agent:alpha for user:u1", "files__read", AuditOutcome.TOOL_ERROR, downstream_ms=5.0),
            call(DAY1, "agent:alpha", "files__write", AuditOutcome.APPROVAL_REQUESTED, downstream_ms=None),
            call(DAY1, "agent:alpha", "files__write", AuditOutcome.APPROVAL_DENIED, downstream_ms=None),
            call(DAY1, "agent:alphabet", "time__now", AuditOutcome.RATE_LIMITED, downstream_ms=None),
            call(DAY2, "agent:alpha", "time__now"),
            call(DAY2, "agent:beta", "time__now", AuditOutcome.TIMEOUT, downstream_ms=30.0),
            call(DAY2, "agent:beta", "docs", AuditOutcome.OK, method="prompts/get"),
        ]
    )
    return AuditQueryStore(migrated_copy)


async def test_each_filter_selects_only_its_rows(query: AuditQueryStore) -> None:
    """Our choice: the filters the admin API, console and CLI share; all given fields must hold."""

    async def ids(audit_filter: AuditFilter) -> list[int]:
        page = await query.page(audit_filter, order=Order.OLDEST_FIRST)
        return [record.id for record in page.records]

    assert await ids(AuditFilter()) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert await ids(AuditFilter(agent="alpha")) == [1, 2, 3, 4, 6]  # for itself and for a user, not "alphabet"
    assert await ids(AuditFilter(agent="alpha_")) == []  # LIKE wildcards in a name match only themselves
    assert await ids(AuditFilter(tool="files__write")) == [3, 4]
    assert await ids(AuditFilter(connector="files")) == [2, 3, 4]
    assert await ids(AuditFilter(outcomes=(AuditOutcome.TIMEOUT, AuditOutcome.TOOL_ERROR))) == [2, 7]
    assert await ids(AuditFilter(method="prompts/get")) == [8]
    assert await ids(AuditFilter(since=DAY2)) == [6, 7, 8]
    assert await ids(AuditFilter(until=DAY2)) == [1, 2, 3, 4, 5]
    assert await ids(AuditFilter(agent="beta", since=DAY2, until=DAY2 + timedelta(hours=1), tool="time__now")) == [7]


async def test_pages_follow_the_cursor_newest_first_without_overlap_or_gap(query: AuditQueryStore) -> None:
    """Our choice: keyset paging on the row id, stable while rows are appended."""
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await query.page(AuditFilter(), cursor=cursor, limit=3)
        seen += [record.id for record in page.records]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [8, 7, 6, 5, 4, 3, 2, 1]
    assert pages == 3
    first = (await query.page(AuditFilter(), limit=1)).records[0]
    assert len(first.row_hash) == 64
    assert first.prev_hash != first.row_hash


async def test_a_cursor_or_limit_the_store_did_not_issue_is_refused(query: AuditQueryStore) -> None:
    """Our choice: bad paging input is the caller's error (400 in the API, exit 2 in the CLI), never a 500."""
    for cursor in ("", "12", "a-1", "a1x", "a" + "9" * 40, "a\u0661"):
        with pytest.raises(InvalidInputError, match="cursor"):
            await query.page(AuditFilter(), cursor=cursor)
    with pytest.raises(InvalidInputError, match="limit"):
        await query.page(AuditFilter(), limit=0)
    assert parse_time("2026-12-01") == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_time("2026-12-01T10:00:00+01:00") == datetime(2026, 12, 1, 9, tzinfo=UTC)
    for bad in ("yesterday", "2026-13-01"):
        with pytest.raises(InvalidInputError, match="ISO 8601"):
            parse_time(bad)
    with pytest.raises(InvalidInputError, match="not an audit outcome"):
        parse_outcome("fine")


async def test_export_yields_every_selected_row_oldest_first_as_json_lines(query: AuditQueryStore) -> None:
    """Our choice: export is JSON lines, one object per row with its id and chain hashes."""
    lines = [json_line(record) async for record in query.export(AuditFilter(agent="beta"))]
    objects = [json.loads(line) for line in lines]
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in lines)
    assert [item["id"] for item in objects] == [7, 8]
    assert objects[0]["outcome"] == "timeout"
    assert objects[0]["at"] == "2026-12-02T00:30:00.000000+00:00"
    assert set(objects[0]) >= {"id", "row_hash", "prev_hash", "client", "public_name", "downstream_ms"}


async def test_usage_counts_calls_errors_refusals_downstream_time_and_approvals_per_agent_and_utc_day(
    query: AuditQueryStore,
) -> None:
    """Our choice (issue 13 §8): approval transitions are not calls; a call for a user counts for its agent."""
    usage = await query.usage()
    assert [(day.day, day.agent) for day in usage] == [
        (date(2026, 12, 1), "alpha"),
        (date(2026, 12, 1), "alphabet"),
        (date(2026, 12, 2), "alpha"),
        (date(2026, 12, 2), "beta"),
    ]
    alpha_day1 = usage[0]
    assert alpha_day1 == UsageDay(
        day=date(2026, 12, 1),
        agent="alpha",
        calls=2,
        errors=1,
        downstream_ms=7.0,
        approvals_requested=1,
        approvals_denied=1,
        outcomes={"ok": 1, "tool_error": 1},
    )
    assert (usage[1].calls, usage[1].errors, usage[1].refused) == (1, 0, 1)  # rate limited: a refusal, not an error
    assert (usage[3].calls, usage[3].errors, usage[3].downstream_ms) == (2, 1, 32.0)
    assert await query.usage(agent="beta", since=DAY2) == [usage[3]]
    assert await query.usage(until=DAY1) == []


async def test_usage_leaves_out_admin_changes_whose_clients_are_admins_not_agents(
    migrated_copy: AsyncEngine,
) -> None:
    """Our choice (issue 13 §1, §8): usage is per agent; an admin change is audited but is no agent's call."""
    await AuditStore(migrated_copy).insert_audit(
        [
            call(DAY1, "agent:alpha"),
            call(DAY1, "user:alice", "alpha", method="admin/agents.create", downstream_ms=None),
            call(DAY1, "admin-client:ops", "alpha", AuditOutcome.ADMIN_REFUSED, method="admin/agents.update"),
        ]
    )
    usage = await AuditQueryStore(migrated_copy).usage()
    assert [(day.agent, day.calls, day.errors) for day in usage] == [("alpha", 1, 0)]


__all__ = ["migrated_copy", "migrated_template", "migrated_url"]  # fixtures
