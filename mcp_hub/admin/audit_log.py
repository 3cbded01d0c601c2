"""The audit trail as an admin reads it (issue 13 §1, §8): filtered pages, JSON lines export, usage per day.

Over the audit query layer (`mcp_hub.db.audit_query`). Reading is not a change, but an export copies the whole
trail out of the hub: each one is itself an audit row (`admin/audit.export`) naming the admin and the filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.db.audit_query import AuditFilter, AuditPage, AuditQueryStore, AuditRecord, Order, UsageDay


class AuditLog:
    """Pages, exports and usage of the audit trail."""

    def __init__(self, query: AuditQueryStore, audit: AdminAudit) -> None:
        self._query = query
        self._audit = audit

    async def page(
        self, audit_filter: AuditFilter, *, cursor: str | None, limit: int, order: Order = Order.NEWEST_FIRST
    ) -> AuditPage:
        return await self._query.page(audit_filter, cursor=cursor, limit=limit, order=order)

    async def export(self, actor: Actor, audit_filter: AuditFilter) -> AsyncIterator[AuditRecord]:
        """Every record the filter selects, oldest first; the export is audited before the first record."""
        shown = {name: value for name, value in asdict(audit_filter).items() if value not in (None, ())}
        async with self._audit.change(actor, "audit.export", "audit") as change:
            change.detail = f"filter {shown}" if shown else "everything"
        async for record in self._query.export(audit_filter):
            yield record

    async def usage(self, audit_filter: AuditFilter) -> list[UsageDay]:
        """Per agent and UTC day (only `agent`, `since` and `until` of the filter apply)."""
        return await self._query.usage(since=audit_filter.since, until=audit_filter.until, agent=audit_filter.agent)
