"""`SigningKeyStore`: the key pairs that sign access tokens, shared by every replica through the database.

Private keys are stored unencrypted (protect the database; encryption with a key from a KMS is future work).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mcp_hub.db._base import Store, columns_of, record_of
from mcp_hub.db.models import SigningKey


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    algorithm: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    published_at: datetime
    signs_from: datetime
    retires_at: datetime | None


def _key(row: SigningKey) -> SigningKeyRecord:
    return record_of(SigningKeyRecord, row)


class SigningKeyStore(Store):
    """Every signing key, published, signing or retired."""

    async def signing_keys(self) -> list[SigningKeyRecord]:
        return [_key(row) for row in await self._every(select(SigningKey).order_by(SigningKey.signs_from))]

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: datetime | None) -> None:
        """Store `key`; with `retire_others_at`, every key not yet retiring retires then (rotation)."""
        async with self._writes.begin() as session:
            if retire_others_at is not None:
                await session.execute(
                    update(SigningKey).where(SigningKey.retires_at.is_(None)).values(retires_at=retire_others_at)
                )
            session.add(SigningKey(**columns_of(key)))
