"""The audit trail's seals (threat T24, audit tampering): HMACs under a key the database never holds (`[audit]
seal_key`), over what the hub itself wrote, so that someone who can write the database but lacks the key can
neither append rows nor forge a prune that `mcp-hub audit verify` accepts with the key (docs/audit.md).

HMAC-SHA256 (RFC 2104, FIPS 198-1) of the RFC 8785 canonical JSON of a document whose `kind` keeps the two uses
apart (the documents hold only booleans, integers below 2**53 and ASCII text without escapes, for which the
standard library's sorted compact JSON is the RFC 8785 text; times as the chain writes them):

- a seal (`audit_seals`), one per stored batch, written in the batch's own transaction under the chain's lock:
  `{"v": 1, "kind": "audit-seal", "key_id", "first_id", "last_id", "last_hash", "sealed_at"}`: the batch's id
  range and its last row's hash, which through the chain commits to every row before it. Every batch, not one
  now and then: a seal vouches for whatever the chain held before it, so a row appended between two sealed
  batches would pass as sealed under a later head-only seal; a seal of the batch's own range leaves it outside
  every seal, where `verify` names it;
- a checkpoint (`audit_checkpoints.mac`, `mac_key_id`): `{"v": 1, "kind": "audit-checkpoint", "key_id",
  "checkpoint_hash", "sealing_began"}`; the checkpoint's hash covers its fields and the checkpoint before it.
  `sealing_began`: the prune removed or reached a sealed row (or followed a checkpoint that had), so every row
  after its anchor must be sealed.

A key's id is the first 16 hex digits of HMAC-SHA256(key, "mcp-hub audit seal key id"): stored with each MAC, so
that `verify`, given the old keys after a rotation, checks each MAC with the key that made it. It reveals nothing
of the key. A MAC, not a signature: the hub and whoever verifies share the key; see docs/audit.md for why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from mcp_hub.credentials import MIN_SEAL_KEY_BYTES
from mcp_hub.db._base import require_aware

SEAL_VERSION: Final = 1
KEY_ID_LENGTH: Final = 16
_KEY_ID_LABEL: Final = b"mcp-hub audit seal key id"
_MAX_EXACT_INTEGER: Final = 2**53


def _canonical(document: dict[str, Any]) -> bytes:
    for value in document.values():
        exact = isinstance(value, bool) or (isinstance(value, int) and abs(value) < _MAX_EXACT_INTEGER)
        plain = isinstance(value, str) and value.isascii() and value.isprintable() and not {'"', "\\"} & set(value)
        if not (exact or plain):
            raise ValueError(f"a seal document holds booleans, integers and plain ASCII text, not {value!r}")
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def _time(at: datetime) -> str:
    require_aware("sealed_at", at)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class SealKey:
    """A seal key and its id; the secret never shows in a repr."""

    id: str
    secret: bytes = field(repr=False)

    @classmethod
    def of(cls, secret: bytes) -> SealKey:
        if len(secret) < MIN_SEAL_KEY_BYTES:
            raise ValueError(f"a seal key needs at least {MIN_SEAL_KEY_BYTES} bytes")
        key_id = hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]
        return cls(key_id, secret)

    def mac(self, document: dict[str, Any]) -> str:
        """The hex HMAC-SHA256 of `document` (with the version and this key's id added)."""
        signed = _canonical({**document, "v": SEAL_VERSION, "key_id": self.id})
        return hmac.new(self.secret, signed, hashlib.sha256).hexdigest()

    def verifies(self, document: dict[str, Any], mac: str) -> bool:
        """Whether `mac` is this key's MAC of `document` (in constant time). Both are read from the database, where
        anyone may have written anything: a document no MAC covers, or a MAC that is not ASCII, does not verify."""
        try:
            expected = self.mac(document)
        except ValueError:
            return False
        return mac.isascii() and hmac.compare_digest(expected, mac)


def seal_document(*, first_id: int, last_id: int, last_hash: str, sealed_at: datetime) -> dict[str, Any]:
    """What a batch's seal authenticates: its rows' id range, its last row's hash, when it was sealed."""
    return {
        "kind": "audit-seal",
        "first_id": first_id,
        "last_id": last_id,
        "last_hash": last_hash,
        "sealed_at": _time(sealed_at),
    }


def checkpoint_document(*, checkpoint_hash: str, sealing_began: bool) -> dict[str, Any]:
    """What a checkpoint's MAC authenticates: the checkpoint (through its hash) and whether sealing had begun."""
    return {"kind": "audit-checkpoint", "checkpoint_hash": checkpoint_hash, "sealing_began": sealing_began}


def seal_values(key: SealKey, *, first_id: int, last_id: int, last_hash: str, sealed_at: datetime) -> dict[str, Any]:
    """The `audit_seals` row of the batch of rows `first_id`..`last_id`."""
    mac = key.mac(seal_document(first_id=first_id, last_id=last_id, last_hash=last_hash, sealed_at=sealed_at))
    return {
        "first_id": first_id,
        "last_id": last_id,
        "last_hash": last_hash,
        "sealed_at": sealed_at,
        "key_id": key.id,
        "mac": mac,
    }


@dataclass(frozen=True, slots=True)
class Seal:
    """One `audit_seals` row: rows `first_id`..`last_id` were stored by a holder of key `key_id`."""

    id: int
    sealed_at: datetime
    first_id: int
    last_id: int
    last_hash: str
    key_id: str
    mac: str

    def verifies_with(self, key: SealKey) -> bool:
        document = seal_document(
            first_id=self.first_id, last_id=self.last_id, last_hash=self.last_hash, sealed_at=self.sealed_at
        )
        return key.id == self.key_id and key.verifies(document, self.mac)
