"""`AuditRetention`: the background prune of `[audit] retention_days` (issue 13 §7).

Every `prune_interval_seconds` it deletes the rows older than `retention_days` through
`AuditChainStore.prune_before`, which leaves a chained checkpoint per chunk (the anchor: the last deleted row's id,
time and hash; with `[audit] seal_key`, a MAC), so `mcp-hub audit verify` starts from the newest checkpoint and
still verifies. Replicas may all
run it: the prune takes the chain's lock, and a second replica finds nothing left to prune. A failing prune is
logged and tried again at the next interval; it never stops the hub.
"""

from __future__ import annotations

from datetime import timedelta

import anyio
import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.config.settings import AuditSection
from mcp_hub.db.audit_chain import AuditChainStore
from mcp_hub.db.audit_seal import SealKey
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import DatabaseError

_log = structlog.get_logger(__name__)


class AuditRetention:
    """Prunes the audit trail to its retention period, now (`prune_once`) or periodically (`run`)."""

    def __init__(
        self,
        store: AuditChainStore,
        *,
        retention_days: int,
        interval_seconds: float,
        seal_key: SealKey | None = None,
        clock: Clock = utc_now,
    ) -> None:
        if retention_days <= 0:
            raise ValueError("retention_days must be positive (0 means no retention task at all)")
        self._store = store
        self._keep = timedelta(days=retention_days)
        self._interval = interval_seconds
        self._seal_key = seal_key
        self._clock = clock

    @classmethod
    def configured(
        cls, store: AuditChainStore, settings: AuditSection, *, seal_key: SealKey | None
    ) -> AuditRetention | None:
        """The task `[audit]` asks for (its checkpoints sealed with `seal_key`), or None when rows are kept forever."""
        if settings.retention_days == 0:
            return None
        return cls(
            store,
            retention_days=settings.retention_days,
            interval_seconds=settings.prune_interval_seconds,
            seal_key=seal_key,
        )

    async def prune_once(self) -> int:
        """Delete the rows older than the retention period; how many were deleted."""
        pruned = await self._store.prune_before(self._clock() - self._keep, seal_key=self._seal_key)
        if pruned:
            _log.info("audit rows pruned", rows=pruned, retention_days=self._keep.days)
        return pruned

    async def run(self) -> None:
        """Prune now and every interval, until cancelled."""
        while True:
            try:
                await self.prune_once()
            except (SQLAlchemyError, DatabaseError, OSError) as exc:
                _log.warning("audit prune failed; tried again later", error=str(exc), error_type=type(exc).__name__)
            await anyio.sleep(self._interval)
