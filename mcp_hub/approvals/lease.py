"""A replica's lease, and the approved calls of replicas that stopped without finishing them (issue 12 §4).

Each replica has an id (`[hub] replica_id`, `MCP_HUB_REPLICA_ID`, else `<hostname>:<port>`) and a lease in the
database, renewed every third of `[hub] replica_lease_seconds`. An approved call being executed records its
replica. At start-up a replica fails the executions of its own previous incarnation and of replicas whose lease
expired (never another live replica's); while running, it fails those of replicas whose lease expired since (a
replica that crashed and never came back). A call failed this way is never re-run: it may or may not have taken
effect (docs/approvals.md).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import structlog

from mcp_hub.approvals.service import ApprovalService
from mcp_hub.db.replicas import ReplicaStore

logger = structlog.get_logger(__name__)


class ReplicaLease:
    """Holds this replica's lease while the hub runs, and sweeps up after replicas whose lease expired."""

    def __init__(self, replica: str, store: ReplicaStore, approvals: ApprovalService, *, lease_seconds: float) -> None:
        self.replica = replica
        self._store = store
        self._approvals = approvals
        self._lease = timedelta(seconds=lease_seconds)
        self._renew_every = lease_seconds / 3

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[ReplicaLease]:
        """Recover, take the lease, keep renewing it; a clean stop releases it."""
        await self._approvals.recover()
        await self._store.renew(self.replica, self._lease, started=True)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._renew_forever)
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._store.release(self.replica)

    async def _renew_forever(self) -> None:
        while True:
            await anyio.sleep(self._renew_every)
            try:
                await self._store.renew(self.replica, self._lease)
                await self._approvals.recover_orphans()
            except Exception:  # the database being away must not stop the hub; the next round tries again
                logger.exception("replica lease not renewed", replica=self.replica)
