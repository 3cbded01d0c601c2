"""`WebSessionStore`: browser sessions of the hub's users (the cookie holds a random id; the row its digest)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete

from mcp_hub.db._base import Store
from mcp_hub.db.models import WebSession
from mcp_hub.domain import UserId


@dataclass(frozen=True, slots=True)
class WebSessionRecord:
    user_id: UserId
    csrf_token: str
    expires_at: datetime


class WebSessionStore(Store):
    """Creates, finds and deletes web sessions; an expired session is not found."""

    async def create_web_session(self, id_sha256: str, user_id: UserId, csrf_token: str, expires_at: datetime) -> None:
        async with self._writes.begin() as session:
            session.add(
                WebSession(
                    id_sha256=id_sha256,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=self._clock(),
                    expires_at=expires_at,
                )
            )

    async def web_session(self, id_sha256: str) -> WebSessionRecord | None:
        async with self._reads() as session:
            row = await session.get(WebSession, id_sha256)
        if row is None or row.expires_at <= self._clock():
            return None
        return WebSessionRecord(user_id=UserId(row.user_id), csrf_token=row.csrf_token, expires_at=row.expires_at)

    async def delete_web_session(self, id_sha256: str) -> None:
        async with self._writes.begin() as session:
            await session.execute(delete(WebSession).where(WebSession.id_sha256 == id_sha256))
