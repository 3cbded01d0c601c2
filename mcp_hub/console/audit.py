"""The audit viewer and the usage page (issue 13 §2, §8), over `mcp_hub.db.audit_query.AuditQueryStore`.

- `GET /admin/audit?agent=&tool=&connector=&outcome=&since=&until=&cursor=`: the audit trail, newest first,
  `PAGE_SIZE` rows a page, filtered by agent, tool (public name), connector, outcome and time (UTC, `since`
  inclusive, `until` exclusive). Paging is by keyset (`cursor`: the last row's id), so a page never shifts when
  rows arrive. A filter that does not parse is shown next to its field (400), and nothing is read.
- `GET /admin/usage?days=N&agent=`: per agent and UTC day, the calls, errors, downstream time and approvals of
  the last N days (1-90; 7 by default). Rows of other clients (an admin's changes, refused sign-ins) are not
  agents' usage and are left out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.console.base import ConsolePage, FieldErrors
from mcp_hub.console.charts import shares
from mcp_hub.db.audit_query import AuditFilter, AuditQueryStore, UsageDay, parse_outcome, parse_time
from mcp_hub.domain import AuditOutcome, utc_now
from mcp_hub.errors import InvalidInputError
from mcp_hub.web.sessions import WebSession

AUDIT_PATH: Final = "/admin/audit"
USAGE_PATH: Final = "/admin/usage"
PAGE_SIZE: Final = 50
DEFAULT_DAYS: Final = 7
MAX_DAYS: Final = 90
_MAX_VALUE: Final = 300
_MAX_DAYS_TEXT: Final = 8
_WHOLE_NUMBER: Final = re.compile(r"[0-9]+")
_FILTERS: Final = ("agent", "tool", "connector", "outcome", "since", "until")


def parse_filter(values: dict[str, str]) -> AuditFilter | FieldErrors:
    """The filter the form's `values` describe, or what is wrong with them, by field (read by the audit query
    layer's own `parse_time` and `parse_outcome`, as the admin API and the CLI read theirs)."""
    errors: FieldErrors = {}
    outcome: AuditOutcome | None = None
    if values.get("outcome"):
        try:
            outcome = parse_outcome(values["outcome"])
        except InvalidInputError:
            errors["outcome"] = "Choose an outcome from the list."
    moments: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        text = values.get(name, "")
        try:
            moments[name] = parse_time(text) if text else None
        except InvalidInputError:
            errors[name] = "Enter a date and time, e.g. 2026-12-05T21:00."
    since, until = moments.get("since"), moments.get("until")
    if since is not None and until is not None and until <= since:
        errors["until"] = "Must be after the start."
    if errors:
        return errors
    return AuditFilter(
        agent=values.get("agent") or None,
        tool=values.get("tool") or None,
        connector=values.get("connector") or None,
        outcomes=(outcome,) if outcome is not None else (),
        since=since,
        until=until,
    )


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: UsageDay
    share: float
    """The day's calls as a percentage of the busiest row's (the length of its bar)."""


class AuditPages:
    def __init__(self, page: ConsolePage, audit: AuditQueryStore) -> None:
        self._page = page
        self._audit = audit

    async def audit(self, request: Request, viewer: WebSession) -> Response:
        values = {name: request.query_params.get(name, "").strip()[:_MAX_VALUE] for name in _FILTERS}
        parsed = parse_filter(values)
        cursor = request.query_params.get("cursor") or None
        errors: FieldErrors = parsed if isinstance(parsed, dict) else {}
        records: tuple[object, ...] = ()
        next_cursor: str | None = None
        if isinstance(parsed, AuditFilter):
            try:
                page = await self._audit.page(parsed, cursor=cursor, limit=PAGE_SIZE)
            except InvalidInputError as exc:
                errors = {"cursor": str(exc)}
            else:
                records, next_cursor = page.records, page.next_cursor
        kept = {name: value for name, value in values.items() if value}
        context: dict[str, object] = {
            "records": records,
            "next_cursor": next_cursor,
            "first_page": cursor is None,
            "values": values,
            "kept": kept,
            "errors": errors,
            "outcomes": [(member.value, member.value) for member in AuditOutcome],
            "page_size": PAGE_SIZE,
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "audit.html", context, section="audit", status=status)

    async def usage(self, request: Request, viewer: WebSession) -> Response:
        errors: FieldErrors = {}
        text = request.query_params.get("days", str(DEFAULT_DAYS)).strip()[:_MAX_DAYS_TEXT]
        # ASCII digits only: str.isdigit() also accepts '²', which int() refuses (a 500, not the field's error).
        days = int(text) if _WHOLE_NUMBER.fullmatch(text) and 1 <= int(text) <= MAX_DAYS else None
        if days is None:
            errors["days"] = f"A whole number of days from 1 to {MAX_DAYS}."
        agent = request.query_params.get("agent", "").strip()[:_MAX_VALUE]
        rows: list[UsageRow] = []
        if days is not None:
            today = utc_now().replace(hour=0, minute=0, second=0, microsecond=0)
            usage = await self._audit.usage(since=today - timedelta(days=days - 1), agent=agent or None)
            agents_only = [day for day in usage if ":" not in day.agent]
            newest_first = sorted(agents_only, key=lambda day: (-day.day.toordinal(), -day.calls, day.agent))
            rows = [
                UsageRow(day, share)
                for day, share in zip(newest_first, shares([day.calls for day in newest_first]), strict=True)
            ]
        context: dict[str, object] = {
            "rows": rows,
            "days": days if days is not None else text,
            "agent": agent,
            "errors": errors,
            "totals": {
                "calls": sum(row.day.calls for row in rows),
                "errors": sum(row.day.errors for row in rows),
                "refused": sum(row.day.refused for row in rows),
                "downstream_ms": sum(row.day.downstream_ms for row in rows),
                "approvals": sum(row.day.approvals_requested for row in rows),
            },
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "usage.html", context, section="usage", status=status)
