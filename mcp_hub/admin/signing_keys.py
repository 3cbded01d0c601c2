"""The token signing keys (`mcp_hub.authz.keys.KeyRing`): list them, rotate (issue 3 §4; threat T03)."""

from __future__ import annotations

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.authz.keys import KeyRing
from mcp_hub.db.keys import SigningKeyRecord, SigningKeyStore


class KeyAdmin:
    """Published keys (never their private halves) and rotation: a new key, published now, signing after the
    ring's `publish_ahead`; the others retire once no token they signed can live."""

    def __init__(self, ring: KeyRing, store: SigningKeyStore, audit: AdminAudit) -> None:
        self._ring = ring
        self._store = store
        self._audit = audit

    async def list(self) -> list[SigningKeyRecord]:
        return await self._store.signing_keys()

    async def rotate(self, actor: Actor) -> SigningKeyRecord:
        async with self._audit.change(actor, "keys.rotate", "signing-keys") as change:
            record = await self._ring.rotate()
            change.detail = f"kid {record.kid}, signs from {record.signs_from.isoformat()}"
            return record
