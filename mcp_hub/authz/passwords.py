"""Password hashing for the hub's human users: Argon2id (RFC 9106), memory-hard, via argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2-cffi's defaults follow RFC 9106's second recommended option
_MIN_LENGTH = 12


def hash_password(password: str) -> str:
    if len(password) < _MIN_LENGTH:
        raise ValueError(f"a password needs at least {_MIN_LENGTH} characters")
    return _HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# A hash to verify against when the user does not exist, so that a login takes as long either way.
DUMMY_HASH = _HASHER.hash("not a real password, only for timing")
