"""Random identifiers and secrets, and the digests the database stores instead of them."""

from __future__ import annotations

import hashlib
import hmac
import secrets


def new_secret(prefix: str = "") -> str:
    """256 bits from the OS CSPRNG, URL-safe; `prefix` makes leaked values recognisable (e.g. `mcphs_`)."""
    return prefix + secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same_digest(value: str, expected_sha256: str | None) -> bool:
    """Constant-time check of `value` against a stored SHA-256 digest."""
    if expected_sha256 is None:
        return False
    return hmac.compare_digest(sha256_hex(value), expected_sha256)
