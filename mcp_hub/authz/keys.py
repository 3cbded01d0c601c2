"""Signing keys for access tokens, and the JWKS that publishes them (RFC 7517; key ids per RFC 7638).

Keys are ES256 (ECDSA P-256, RFC 7518 §3.4) and live in the database, so every replica signs and verifies
with the same set. Rotation (`mcp-hub keys rotate`, threat T03) publishes the new key at once and lets it
sign `publish_ahead` later, so JWKS caches learn it first; the keys it replaces stay published and valid
until the longest token they may have signed has expired.

An unknown `kid` in a presented token triggers at most one reload from the database per
`refetch_interval` (a flood of forged kids costs one query per interval, not one per request), and a
running hub reloads the ring periodically, so a key rotated by `mcp-hub keys rotate` (another process) is
published and starts signing without a restart.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import anyio
from joserfc.jwk import ECKey

from mcp_hub.db.keys import SigningKeyRecord, SigningKeyStore
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import SigningKeyError

ALGORITHM: Final = "ES256"
CURVE: Final = "P-256"
RELOAD_SECONDS: Final = 5.0
"""How soon a running hub picks up a key rotated by another process (well inside the publish-ahead time)."""


@dataclass(frozen=True, slots=True)
class LoadedKey:
    record: SigningKeyRecord
    private: ECKey
    public: ECKey


def _load(record: SigningKeyRecord) -> LoadedKey:
    private = ECKey.import_key(record.private_jwk)
    public = ECKey.import_key(record.public_jwk)
    return LoadedKey(record=record, private=private, public=public)


def generate_key_record(signs_from: datetime, published_at: datetime) -> SigningKeyRecord:
    key = ECKey.generate_key(CURVE, private=True)
    kid = key.thumbprint()
    public = {**key.as_dict(private=False), "kid": kid, "alg": ALGORITHM, "use": "sig"}
    private = {**key.as_dict(private=True), "kid": kid, "alg": ALGORITHM, "use": "sig"}
    return SigningKeyRecord(
        kid=kid,
        algorithm=ALGORITHM,
        private_jwk=private,
        public_jwk=public,
        published_at=published_at,
        signs_from=signs_from,
        retires_at=None,
    )


class KeyRing:
    """The signing keys, cached in memory; reloaded on rotation and (bounded) on unknown kids."""

    def __init__(
        self,
        store: SigningKeyStore,
        *,
        publish_ahead: timedelta,
        longest_token_life: timedelta,
        refetch_interval: timedelta = timedelta(seconds=10),
        clock: Clock = utc_now,
    ) -> None:
        self._store = store
        self._publish_ahead = publish_ahead
        self._longest_token_life = longest_token_life
        self._refetch_interval = refetch_interval
        self._clock = clock
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at: datetime | None = None
        self._reload_lock = anyio.Lock()

    async def load(self) -> None:
        """Load every key; create the first one if there is none (a fresh hub signs at once)."""
        records = await self._store.signing_keys()
        if not records:
            now = self._clock()
            await self._store.add_signing_key(generate_key_record(now, now), retire_others_at=None)
            records = await self._store.signing_keys()
        self._keys = {record.kid: _load(record) for record in records}
        self._loaded_at = self._clock()

    async def rotate(self) -> SigningKeyRecord:
        """Publish a new key now; it signs after `publish_ahead`; the others retire once nothing they signed lives."""
        now = self._clock()
        signs_from = now + self._publish_ahead
        record = generate_key_record(signs_from, now)
        retire_at = signs_from + self._longest_token_life
        await self._store.add_signing_key(record, retire_others_at=retire_at)
        await self.load()
        return record

    def signing_key(self) -> LoadedKey:
        """The newest key that may sign now."""
        now = self._clock()
        usable = [
            key
            for key in self._keys.values()
            if key.record.signs_from <= now and (key.record.retires_at is None or key.record.retires_at > now)
        ]
        if not usable:
            raise SigningKeyError("no signing key is usable now: run `mcp-hub keys rotate`")
        return max(usable, key=lambda key: key.record.signs_from)

    def verification_key(self, kid: str) -> LoadedKey | None:
        """The key a token names, if it is published and not retired."""
        key = self._keys.get(kid)
        if key is None:
            return None
        retires_at = key.record.retires_at
        return key if retires_at is None or retires_at > self._clock() else None

    async def reload_for_unknown_kid(self, kid: str) -> LoadedKey | None:
        """Look again in the database, at most once per refetch interval (another replica may have rotated)."""
        async with self._reload_lock:
            if kid not in self._keys and (
                self._loaded_at is None or self._clock() - self._loaded_at >= self._refetch_interval
            ):
                await self.load()
        return self.verification_key(kid)

    @asynccontextmanager
    async def running(self, reload_seconds: float = RELOAD_SECONDS) -> AsyncGenerator[KeyRing]:
        """Keys loaded, and reloaded every `reload_seconds` while the hub runs, so that keys rotated elsewhere
        (the CLI, another replica) are published and used without a restart."""
        await self.load()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._reload_periodically, reload_seconds)
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()

    async def _reload_periodically(self, interval_seconds: float) -> None:
        while True:
            await anyio.sleep(interval_seconds)
            async with self._reload_lock:
                await self.load()

    def jwks(self) -> dict[str, Any]:
        """RFC 7517 §5: the public half of every published, unretired key."""
        now = self._clock()
        return {
            "keys": [
                key.record.public_jwk
                for key in sorted(self._keys.values(), key=lambda key: key.record.signs_from)
                if key.record.published_at <= now and (key.record.retires_at is None or key.record.retires_at > now)
            ]
        }
