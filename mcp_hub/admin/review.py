"""The catalog's review queue (issue 11 §1-§4): what waits for an admin, and the admin's decision on it.

The same decision `mcp-hub catalog approve|reject` makes (`PinStore.decide`), with the same audit row of each
decided definition (`catalog.sync.audit_decision`, method `catalog/review`), plus the admin change's own row. The
running hubs apply a decision within `[catalog] review_poll_seconds`.
"""

from __future__ import annotations

from mcp_hub.admin.changes import Actor, AdminAudit, RecordAudit
from mcp_hub.catalog.sync import audit_decision
from mcp_hub.db.pins import PinRecord, PinStore
from mcp_hub.domain import AuditOutcome, Clock, utc_now
from mcp_hub.errors import CatalogError, NotFoundError


class CatalogReview:
    """The queue, the history of one name, and approve / reject."""

    def __init__(self, pins: PinStore, audit: AdminAudit, record: RecordAudit, *, clock: Clock = utc_now) -> None:
        self._pins = pins
        self._audit = audit
        self._record = record
        self._clock = clock

    async def waiting(self) -> list[PinRecord]:
        """Pending and refused definitions, sorted by public name."""
        return await self._pins.waiting()

    async def pins(self) -> list[PinRecord]:
        """Every approved definition (the pins the catalog offers), sorted by public name."""
        return sorted(await self._pins.approved(), key=lambda record: record.public_name)

    async def history(self, public_name: str) -> list[PinRecord]:
        """Every definition seen under the name, oldest first; `NotFoundError` if none ever was."""
        history = await self._pins.history(public_name)
        if not history:
            raise NotFoundError(f"no definition was ever seen under {public_name!r}")
        return history

    async def decide(
        self, actor: Actor, public_name: str, *, approve: bool, sha256: str | None = None, reason: str | None = None
    ) -> list[PinRecord]:
        """Approve the newest waiting definition (or the one whose digest starts with `sha256`), or reject every
        waiting one; `NotFoundError` if nothing waits under the name."""
        verb = "catalog.approve" if approve else "catalog.reject"
        async with self._audit.change(actor, verb, public_name) as change:
            now = self._clock()
            try:
                decided = await self._pins.decide(
                    public_name, approve=approve, by=actor.label, reason=reason, sha256=sha256, now=now
                )
            except CatalogError as exc:
                raise NotFoundError(str(exc)) from None
            outcome = AuditOutcome.DEFINITION_APPROVED if approve else AuditOutcome.DEFINITION_REJECTED
            for record in decided:
                await self._record(audit_decision(record, outcome, actor.label, now))
            change.detail = ", ".join(f"{record.kind} sha256={record.sha256}" for record in decided)
            return decided
