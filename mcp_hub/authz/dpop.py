"""DPoP proofs: sender-constrained access tokens (RFC 9449), checked at the token endpoint and the resource server.

A client that holds a key pair sends with each request a `DPoP` header: a JWT it signed (the proof) naming the
request (`htm`, `htu`), the moment (`iat`), itself once (`jti`) and, at a resource, the access token (`ath`). The
token endpoint binds the tokens it issues to the proof's key (`cnf.jkt`, its RFC 7638 thumbprint, §6.1); the
resource server accepts a bound token only with a proof by that key (§7). A stolen token is useless without the
private key (threat T08).

`DpopProofs.verify` checks (§4.3), in this order, each refusal an `InvalidDpopProofError` naming the check:
1. exactly one `DPoP` header of at most `[auth] dpop_max_proof_bytes`, a compact JWS whose JOSE header is at most
   `dpop_max_header_bytes`, decoded, with a JSON object as payload;
2. `typ` = `dpop+jwt`; `alg` on the allow-list (asymmetric only: `none`, HS256 and the rest are refused before any
   key is used); `jwk` a public key (a private or symmetric one is refused) whose type fits `alg` (an RSA key with
   at least 2048 bits and a public exponent of at most 2^32, which keeps each verification cheap);
3. the signature, by that `jwk`;
4. `htm` = the request's method; `htu` = the request's URL as the hub's public base URL names it (behind a proxy
   the configured URL, never the `Host` header), both normalised as RFC 3986 §6.2.2-§6.2.3 say, query and
   fragment ignored (§4.3 item 9);
5. `iat` at most `dpop_proof_max_age_seconds` old and at most `dpop_clock_skew_seconds` ahead;
6. with an access token: `ath` = BASE64URL(SHA-256(token)) and the key's thumbprint = the token's `cnf.jkt`;
7. `jti` not seen before, remembered (keyed by the SHA-256 of thumbprint and jti) until the proof could no longer
   pass check 5: in this process (bounded: full of live proofs, a new one is refused rather than one forgotten),
   or in Redis (`SET NX PX`) when `[limits] redis_url` is set, so that a proof replayed at another replica is
   refused too; Redis unreachable refuses the proof (fail closed). It is recorded last: a proof that fails any
   other check never takes room.

Not done: server-provided nonces (§8, §9; optional). The `iat` window and the `jti` cache are the only freshness
checks, so a proof a client signs ahead of time (its clock, its choice) is good for the window. Nothing of a
proof is cached: each request pays one signature verification.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, cast
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from joserfc.jws import JWSRegistry, extract_compact
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_hub.authz.client_auth import ASSERTION_ALGORITHMS
from mcp_hub.authz.private_key_jwt import MIN_RSA_BITS, ClientKey, algorithms_for
from mcp_hub.bodies import parse_json
from mcp_hub.config.settings import AuthSection
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import InvalidDpopProofError

DPOP_ALGORITHMS: Final = tuple(sorted(ASSERTION_ALGORITHMS))
"""The `alg` values a proof may use (`dpop_signing_alg_values_supported`, the challenge's `algs`): asymmetric only."""
PROOF_TYPE: Final = "dpop+jwt"
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_JTI_LENGTH: Final = 256
_MAX_RSA_EXPONENT: Final = 2**32
"""65537 in practice; a public exponent as long as the modulus makes one verification cost what signing does."""
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PERCENT: Final = re.compile(r"%[0-9A-Fa-f]{2}")
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def access_token_hash(token: str) -> str:
    """§4.2 `ath`: BASE64URL(SHA-256(ASCII(access token))), without padding."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii")).digest()).decode("ascii").rstrip("=")


def _normalised_escape(match: re.Match[str]) -> str:
    char = chr(int(match.group(0)[1:], 16))
    return char if char in _UNRESERVED else match.group(0).upper()


def _without_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4, for an absolute path."""
    segments = path.split("/")
    kept: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in (".", ".."):
            if segment == ".." and len(kept) > 1:
                kept.pop()
            if last:
                kept.append("")
            continue
        kept.append(segment)
    return "/".join(kept) or "/"


def normalised_url(url: str) -> str | None:
    """An http(s) URL as RFC 3986 §6.2.2-§6.2.3 normalise it, without query and fragment; None if it is not one
    (another scheme, no host, user info, a bad port)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    shown_host = f"[{host}]" if ":" in host else host
    shown_port = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    path = _without_dot_segments(_PERCENT.sub(_normalised_escape, parts.path or "/"))
    return f"{scheme}://{shown_host}{shown_port}{path}"


class ReplayCache(Protocol):
    """Where the `jti`s of accepted proofs are remembered while they could still be replayed."""

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        """True the first time `key` is seen within its time to live; False for a replay."""
        ...

    async def aclose(self) -> None: ...


class MemoryReplays:
    """This process's replay cache, bounded: full of live proofs, a new one is refused (never one forgotten early)."""

    def __init__(self, max_entries: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_entries
        self._clock = clock
        self._seen: dict[str, float] = {}

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        now = self._clock()
        expires = self._seen.get(key)
        if expires is not None and expires > now:
            return False
        if len(self._seen) >= self._max:
            self._seen = {seen: until for seen, until in self._seen.items() if until > now}
            if len(self._seen) >= self._max:
                raise InvalidDpopProofError("too many proofs in flight to remember another: try again shortly")
        self._seen[key] = now + ttl_seconds
        return True

    async def aclose(self) -> None:
        self._seen.clear()


class RedisReplays:
    """The replay cache every replica shares (`SET NX PX`); Redis unreachable refuses the proof (fail closed)."""

    def __init__(self, url: str, *, prefix: str, timeout_seconds: float = 0.5) -> None:
        self._redis: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._prefix = prefix + "dpop:"

    async def first_use(self, key: str, ttl_seconds: float) -> bool:
        try:
            taken = await self._redis.set(self._prefix + key, b"1", nx=True, px=max(1, math.ceil(ttl_seconds * 1000)))
        except (RedisError, OSError):
            raise InvalidDpopProofError("the proof's jti cannot be checked now (replay cache unreachable)") from None
        return bool(taken)

    async def aclose(self) -> None:
        await self._redis.aclose()


def replays_for(settings: AuthSection, redis_url: str, redis_key_prefix: str) -> ReplayCache:
    """Redis when `[limits] redis_url` is set (shared by every replica), else this process's memory."""
    if redis_url:
        return RedisReplays(redis_url, prefix=redis_key_prefix)
    return MemoryReplays(settings.dpop_replay_cache_entries)


def _segment_bytes(segment: bytes) -> int:
    return len(segment) * 3 // 4


def _registry(max_proof_bytes: int) -> JWSRegistry:
    """joserfc's registry for proofs: the proof's algorithms, and its size limits lifted to the whole proof's (its
    defaults, a 512-byte header, would refuse every RSA `jwk`); the limits of `[auth]` are checked before. Header
    members it does not know are ignored, as RFC 7515 §4 says, unless `crit` names them."""
    registry = JWSRegistry(algorithms=DPOP_ALGORITHMS, strict_check_header=False)
    registry.max_header_length = registry.max_signature_length = max_proof_bytes
    return registry


class DpopProofs:
    """Verifies `DPoP` proofs (the checks of the module docstring) and names the key they prove."""

    def __init__(self, settings: AuthSection, replays: ReplayCache, *, clock: Clock = utc_now) -> None:
        self._max_age = settings.dpop_proof_max_age_seconds
        self._skew = settings.dpop_clock_skew_seconds
        self._max_proof = settings.dpop_max_proof_bytes
        self._max_header = settings.dpop_max_header_bytes
        self._registry = _registry(settings.dpop_max_proof_bytes)
        self._replays = replays
        self._clock = clock

    async def aclose(self) -> None:
        await self._replays.aclose()

    async def verify(
        self, proofs: Sequence[str], method: str, url: str, *, access_token: str | None = None, jkt: str | None = None
    ) -> str:
        """The RFC 7638 thumbprint of the key that signed the one proof in `proofs` for this request (`method`,
        `url`: the public URL of the request); with `access_token`, the proof must carry its hash and its key's
        thumbprint must be `jkt` (the token's `cnf.jkt`)."""
        if not proofs:
            raise InvalidDpopProofError("a DPoP proof is required (the DPoP header)")
        if len(proofs) > 1:
            raise InvalidDpopProofError("send exactly one DPoP header")
        proof = proofs[0].strip()
        header, claims = self._unverified(proof)
        key = self._public_key(header)
        self._check_signature(proof, key)
        self._check_request(claims, method, url)
        issued_at = self._check_time(claims)
        thumbprint = key.thumbprint()
        if access_token is not None:
            if claims.get("ath") != access_token_hash(access_token):
                raise InvalidDpopProofError("the proof's ath is not the hash of this access token")
            if thumbprint != jkt:
                raise InvalidDpopProofError("the proof is signed by another key than the one the token is bound to")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= _MAX_JTI_LENGTH:
            raise InvalidDpopProofError("the proof needs a jti (a unique string)")
        remember = hashlib.sha256(f"{thumbprint}\n{jti}".encode()).hexdigest()
        ttl = issued_at + self._max_age + self._skew - self._now() + 1
        if not await self._replays.first_use(remember, ttl):
            raise InvalidDpopProofError("the proof was already used (jti)")
        return thumbprint

    def _now(self) -> float:
        return self._clock().timestamp()

    def _unverified(self, proof: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if len(proof) > self._max_proof:
            raise InvalidDpopProofError(f"the DPoP proof is longer than {self._max_proof} bytes")
        if proof.count(".") != 2:
            raise InvalidDpopProofError("the DPoP proof is not a compact JWS")
        if _segment_bytes(proof.encode().split(b".", 1)[0]) > self._max_header:
            raise InvalidDpopProofError(f"the DPoP proof's header is longer than {self._max_header} bytes")
        try:
            compact = extract_compact(proof.encode(), registry=self._registry)
            header = dict(compact.headers())
            payload: object = parse_json(compact.payload)
        except (JoseError, ValueError, UnicodeError, RecursionError, binascii.Error):
            raise InvalidDpopProofError("the DPoP proof is not a compact JWS") from None
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() != PROOF_TYPE:
            raise InvalidDpopProofError(f"the DPoP proof's typ must be {PROOF_TYPE}")
        if header.get("alg") not in DPOP_ALGORITHMS:
            raise InvalidDpopProofError(f"the DPoP proof's alg must be one of {', '.join(DPOP_ALGORITHMS)}")
        if not isinstance(payload, dict):
            raise InvalidDpopProofError("the DPoP proof's payload is not a JSON object")
        return header, cast("dict[str, Any]", payload)

    @staticmethod
    def _public_key(header: dict[str, Any]) -> ClientKey:
        member: object = header.get("jwk")
        if not isinstance(member, dict):
            raise InvalidDpopProofError("the DPoP proof's header needs the public key as jwk")
        jwk = cast("dict[str, Any]", member)
        if _PRIVATE_MEMBERS & jwk.keys():
            raise InvalidDpopProofError("the DPoP proof's jwk must be a public key (a private key was sent)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SecurityWarning)  # small RSA keys: refused below, with a reason
                key = import_key(jwk, jwk.get("kty"))
        except (JoseError, ValueError, TypeError, KeyError):
            raise InvalidDpopProofError("the DPoP proof's jwk is not a valid public key") from None
        if not isinstance(key, RSAKey | ECKey | OKPKey) or header["alg"] not in algorithms_for(key):
            raise InvalidDpopProofError(f"the DPoP proof's jwk does not fit its alg {header['alg']}")
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            raise InvalidDpopProofError(f"the DPoP proof's RSA key must have at least {MIN_RSA_BITS} bits")
        if isinstance(key, RSAKey) and key.public_key.public_numbers().e > _MAX_RSA_EXPONENT:
            raise InvalidDpopProofError("the DPoP proof's RSA key has a public exponent over 2^32")
        return key

    def _check_signature(self, proof: str, key: ClientKey) -> None:
        with warnings.catch_warnings():
            # joserfc warns that `EdDSA` is deprecated by RFC 9864 in favour of `Ed25519`; clients still send it.
            warnings.simplefilter("ignore", SecurityWarning)
            try:
                # The header's `alg`, checked against the list and the key's type above, is the one verified.
                jws.deserialize_compact(proof, key, registry=self._registry)
            except (JoseError, ValueError):
                raise InvalidDpopProofError("the DPoP proof's signature does not verify") from None

    @staticmethod
    def _check_request(claims: dict[str, Any], method: str, url: str) -> None:
        if claims.get("htm") != method:
            raise InvalidDpopProofError(f"the DPoP proof's htm is not this request's method ({method})")
        htu, expected = claims.get("htu"), normalised_url(url)
        # An unusable request URL (a `public_base_url` with user info, say) matches nothing, not another None.
        if expected is None or not isinstance(htu, str) or normalised_url(htu) != expected:
            raise InvalidDpopProofError(f"the DPoP proof's htu is not this request's URL ({url})")

    def _check_time(self, claims: dict[str, Any]) -> float:
        issued_at = claims.get("iat")
        if not isinstance(issued_at, int | float) or isinstance(issued_at, bool) or not math.isfinite(issued_at):
            raise InvalidDpopProofError("the DPoP proof needs iat (a number)")
        now = self._now()
        if issued_at < now - self._max_age:
            raise InvalidDpopProofError(f"the DPoP proof is older than {self._max_age} seconds (iat)")
        if issued_at > now + self._skew:
            raise InvalidDpopProofError("the DPoP proof's iat is in the future")
        return float(issued_at)
