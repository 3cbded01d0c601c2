"""Credentials the hub makes and checks: random secrets, the digests stored instead of them, password hashes.

Secrets (client secrets, refresh tokens, authorization codes, session ids, consent ids) are 256 bits from the
OS CSPRNG; the database keeps only their SHA-256, compared in constant time, so a leaked table yields nothing
usable. Human users' passwords are hashed with Argon2id (RFC 9106), memory-hard, via argon2-cffi.
`sign_delivery` signs what the hub POSTs to webhooks (approval requests, audit records) the one way receivers check.
`seal_key_bytes` reads the audit trail's seal key (`[audit] seal_key`) from its text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from functools import cache
from typing import Any, Final, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mcp_hub.errors import InvalidInputError

MIN_PASSWORD_LENGTH: Final = 12
CLIENT_SECRET_PREFIX: Final = "mcphs_"  # noqa: S105 - a prefix that leaked-secret scanners recognise

_HASHER = PasswordHasher()  # argon2-cffi's defaults follow RFC 9106's second recommended option


def new_secret(prefix: str = "") -> str:
    """256 bits from the OS CSPRNG, URL-safe; `prefix` makes leaked values recognisable (e.g. `mcphs_`)."""
    return prefix + secrets.token_urlsafe(32)


def sign_delivery(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Mcp-Hub-Signature` value of a webhook delivery of `body` sent at `timestamp` (unix seconds, as sent):
    `v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


MIN_SEAL_KEY_BYTES: Final = 32
_MIN_DISTINCT_KEY_BYTES: Final = 16
"""32 random bytes hold ~30 distinct values; fewer than 16 is a placeholder (`AAAA...`), never chance."""
_BASE64: Final = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")


def seal_key_bytes(text: str) -> bytes:
    """The audit seal key that `text` encodes: base64 (either alphabet, padding optional) of at least 32 random
    bytes, as `openssl rand -base64 32` prints. `ValueError` says what is wrong, never the value."""
    text = text.strip()
    if not text:
        raise ValueError("is unset or empty")
    if not _BASE64.fullmatch(text):
        raise ValueError("is not base64 (generate a key with `openssl rand -base64 32`)")
    unpadded = text.rstrip("=").replace("+", "-").replace("/", "_")
    try:
        key = base64.urlsafe_b64decode(unpadded + "=" * (-len(unpadded) % 4))
    except binascii.Error:
        raise ValueError("is not base64 (generate a key with `openssl rand -base64 32`)") from None
    if len(key) < MIN_SEAL_KEY_BYTES:
        raise ValueError(f"decodes to {len(key)} bytes; a seal key needs at least {MIN_SEAL_KEY_BYTES} random bytes")
    if len(set(key)) < _MIN_DISTINCT_KEY_BYTES:
        raise ValueError("is not random (too few distinct bytes): generate one with `openssl rand -base64 32`")
    return key


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def same_digest(value: str, expected_sha256: str | None) -> bool:
    """Constant-time check of `value` against a stored SHA-256 digest."""
    if expected_sha256 is None:
        return False
    return hmac.compare_digest(sha256_hex(value), expected_sha256)


def same_text(submitted: str | None, expected: str) -> bool:
    """Constant-time comparison of a submitted value (a CSRF token) with the expected one."""
    return submitted is not None and hmac.compare_digest(submitted.encode(), expected.encode())


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def dummy_password_hash() -> str:
    """What a sign-in checks against when the user does not exist, so that it takes as long either way."""
    return _HASHER.hash("not a real password, only for timing")


MIN_SCRUBBED_LENGTH: Final = 8
"""Shorter values are not scrubbed: they would blank out ordinary words, and are no real secret anyway."""
SCRUBBED: Final = "[redacted]"


class SecretValues:
    """The hub's own secret values (expanded `${VAR}` references of connectors), to scrub from any text the hub
    relays, stores or logs: a downstream that quotes its credential back must not hand it to an agent (threat T30).
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: tuple[str, ...] = ()
        self.add(*values)

    def add(self, *values: str) -> None:
        # Longest first: a value containing another is replaced whole.
        known = set(self._values) | {value for value in values if len(value) >= MIN_SCRUBBED_LENGTH}
        self._values = tuple(sorted(known, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._values)

    def scrub(self, text: str) -> str:
        """`text` with every known secret value replaced by `[redacted]`."""
        for value in self._values:
            if value in text:
                text = text.replace(value, SCRUBBED)
        return text

    def scrub_json(self, value: Any) -> Any:
        """A JSON value with `scrub` applied to every string in it (keys included); the same object when clean."""
        if not self._values:
            return value
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, list):
            items = cast("list[Any]", value)
            scrubbed = [self.scrub_json(item) for item in items]
            return items if all(a is b for a, b in zip(scrubbed, items, strict=True)) else scrubbed
        if isinstance(value, dict):
            fields = cast("dict[Any, Any]", value)
            pairs = [(self.scrub_json(key), self.scrub_json(item)) for key, item in fields.items()]
            originals = fields.items()
            unchanged = all(
                new_key == key and new is item for (new_key, new), (key, item) in zip(pairs, originals, strict=True)
            )
            return fields if unchanged else dict(pairs)
        return value
