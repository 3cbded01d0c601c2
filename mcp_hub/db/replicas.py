"""`ReplicaStore`: the leases of the hub's replicas (issue 12 §4).

A replica renews its lease (`hub_replicas.expires_at`) while it runs; a replica whose lease expired is gone, and
the approved calls it was running (`approval_actions.executing_replica`) may be failed by another. Times are the
renewing replica's clock: leases are tens of seconds, so ordinary clock skew between hosts does not matter.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from mcp_hub.db._base import Store, rowcount
from mcp_hub.db.models import HubReplica


class ReplicaStore(Store):
    """`hub_replicas`."""

    async def renew(self, replica: str, lease: timedelta, *, started: bool = False) -> datetime:
        """Take or extend `replica`'s lease until now + `lease` (`started`: a new incarnation); its expiry."""
        now = self._clock()
        expires = now + lease
        async with self._writes.begin() as session:
            values: dict[str, datetime] = {"renewed_at": now, "expires_at": expires}
            if started:
                values["started_at"] = now
            result = await session.execute(update(HubReplica).where(HubReplica.id == replica).values(**values))
            if not rowcount(result):
                session.add(HubReplica(id=replica, started_at=now, renewed_at=now, expires_at=expires))
        return expires

    async def release(self, replica: str) -> None:
        """A clean stop: the lease ends now (nothing of this replica's is left running)."""
        now = self._clock()
        await self._change(update(HubReplica).where(HubReplica.id == replica).values(renewed_at=now, expires_at=now))

    async def live(self) -> list[str]:
        """The replicas whose lease has not expired, by id."""
        rows = await self._every(
            select(HubReplica).where(HubReplica.expires_at > self._clock()).order_by(HubReplica.id)
        )
        return [row.id for row in rows]
