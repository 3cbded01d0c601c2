"""`SealingStore`: symmetric keys every replica shares, and the single-use record of what they sealed.

The hub seals the `requestState` it hands to 2026-07-28 clients (multi-round-trip requests); any replica may
receive the client's retry, so the key lives in the database. The first replica that needs it creates it:
an INSERT that only one of several racing replicas wins, after which every one reads the same row.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from mcp_hub.db._base import Store
from mcp_hub.db.models import HubSecret, UsedRequestState

SECRET_BYTES = 32


class SealingStore(Store):
    """`hub_secrets` and `used_request_states`."""

    async def shared_secret(self, name: str) -> bytes:
        """The secret called `name`, created (32 random bytes) by whichever replica asks first."""
        existing = await self._get(HubSecret, name)
        if existing is None:
            value = base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()
            try:
                async with self._writes.begin() as session:
                    session.add(HubSecret(name=name, value=value, created_at=self._clock()))
            except IntegrityError:
                pass  # another replica created it first: use theirs
            existing = await self._get(HubSecret, name)
            if existing is None:  # pragma: no cover - a row that vanished between insert and read
                raise RuntimeError(f"the shared secret {name!r} could not be stored")
        return base64.b64decode(existing.value)

    async def use_request_state_once(self, key: str, expires_at: datetime) -> bool:
        """Record the use of the sealed state `key` until `expires_at`; False if it was used before (a replay).

        A plain INSERT keyed by `key`: of N concurrent uses on any replica exactly one commits. Expired rows are
        purged on the way.
        """
        now = self._clock()
        try:
            async with self._writes.begin() as session:
                await session.execute(delete(UsedRequestState).where(UsedRequestState.expires_at <= now))
                session.add(UsedRequestState(key=key, used_at=now, expires_at=expires_at))
        except IntegrityError:
            return False
        return True
