"""Client authentication with a signed JWT: RFC 7523 §2.2 (`private_key_jwt`), checked as RFC 7523 §3 says.

A client registers public keys (`agents.jwks`, a JWK Set, RFC 7517 §5) and authenticates at the token,
revocation and introspection endpoints with `client_assertion_type=urn:ietf:params:oauth:client-assertion-
type:jwt-bearer` and a `client_assertion` it signed. Checks, in order, each failure `invalid_client` (401):

1. A compact JWS of at most 8 KiB whose header has only `alg`, `typ`, `kid` (no `jwk`, `jku`, `x5u`, `x5c`:
   the key comes from the registration, never from the assertion). `alg` is on the allow-list RS256, ES256,
   EdDSA / Ed25519 (RFC 9864), so `none`, HS256 (with the public key as the HMAC secret) and everything else
   are refused before any key is looked at (threat T02).
2. `iss` = `sub` = the `client_id` of an enabled client registered for `private_key_jwt` (a client id that
   is an https URL is looked up through `find_client`, which resolves Client ID Metadata Documents).
3. The key: one of the client's keys whose type fits `alg` (RSA of at least 2048 bits → RS256, EC P-256 →
   ES256, OKP Ed25519 → EdDSA or Ed25519), the one named by `kid` if there is one; then the signature.
4. `aud`: exactly one value, the issuer (what draft-ietf-oauth-rfc7523bis requires and the MCP SDK sends),
   the token endpoint URL, or the URL of the endpoint the assertion was presented at (RFC 7523 §3 item 3
   allows the token endpoint URL; OpenID Connect Core §9 does the same).
5. `exp` required, not past (with the configured clock skew) and at most 5 minutes ahead: an assertion is a
   one-shot credential, and the bound keeps the replay cache small. `nbf` and `iat`, if present, not in the
   future.
6. `jti` required and single use (RFC 7523 §3 item 7 allows the server to enforce it; we do). The replay
   cache is the database, so every replica sees every use: `OAuthStore.use_assertion_once` inserts the first
   54 hex digits (216 bits) of SHA-256(client_id, jti) into `used_assertions` (hashed so that two clients' jtis
   never collide) until `exp` + skew; the one INSERT that wins is the first use. The jti is recorded last, so
   an assertion that fails any other check never reaches the table.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeGuard, cast

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey, import_key
from joserfc.jws import extract_compact

from mcp_hub.authz.client_auth import ASSERTION_ALGORITHMS as ALLOWED_ALGORITHMS
from mcp_hub.authz.client_auth import ClientFinder
from mcp_hub.authz.urls import OAuthUrls
from mcp_hub.bodies import parse_json
from mcp_hub.credentials import sha256_hex
from mcp_hub.db.identities import AgentRecord
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.domain import ClientAuthMethod, Clock, utc_now
from mcp_hub.errors import InvalidInputError, OAuthError

ClientKey = RSAKey | ECKey | OKPKey

MAX_ASSERTION_LIFETIME_SECONDS: Final = 300
MIN_RSA_BITS: Final = 2048
MAX_CLIENT_KEYS: Final = 10
_ALLOWED_HEADER_FIELDS: Final = frozenset({"alg", "typ", "kid"})
# RFC 7519 `JWT`, and the explicit type draft-ietf-oauth-rfc7523bis introduces.
_ACCEPTED_TYPES: Final = frozenset({"jwt", "client-authentication+jwt", "application/client-authentication+jwt"})
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_ASSERTION_LENGTH: Final = 8192
_MAX_JTI_LENGTH: Final = 256
_JTI_KEY_HEX_DIGITS: Final = 54


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def algorithms_for(key: ClientKey) -> tuple[str, ...]:
    """The signing algorithms a client key may be used with (the allow-list is tied to the key type)."""
    if isinstance(key, RSAKey):
        return ("RS256",)
    if isinstance(key, ECKey):
        return ("ES256",) if key.curve_name == "P-256" else ()
    return ("EdDSA", "Ed25519") if key.curve_name == "Ed25519" else ()


def parse_client_jwks(jwks: object) -> dict[str, Any]:
    """A client's JWK Set as the hub stores it (public members, `kid`, `alg`, `use`); `InvalidInputError` otherwise.

    Accepted: 1-10 public keys, RSA (at least 2048 bits), EC P-256 or OKP Ed25519, for signing. Symmetric
    keys and private members are refused: a client that sends its private key has leaked it.
    """
    keys: object = cast("dict[str, Any]", jwks).get("keys") if isinstance(jwks, dict) else None
    items = cast("list[object]", keys) if isinstance(keys, list) else None
    if items is None:
        raise InvalidInputError('jwks must be a JWK Set: {"keys": [...]}')
    if not 1 <= len(items) <= MAX_CLIENT_KEYS:
        raise InvalidInputError(f"jwks must hold between 1 and {MAX_CLIENT_KEYS} keys")
    stored: list[dict[str, Any]] = []
    kids: set[str] = set()
    for item in items:
        stored.append(_parse_client_jwk(item, kids))
    return {"keys": stored}


def _parse_client_jwk(item: object, kids: set[str]) -> dict[str, Any]:
    member = cast("dict[str, Any]", item) if isinstance(item, dict) else {}
    kty = member.get("kty")
    if kty not in ("RSA", "EC", "OKP"):
        raise InvalidInputError(f"key type {kty!r} is not accepted: use RSA (RS256), EC P-256 (ES256) or OKP Ed25519")
    if _PRIVATE_MEMBERS & member.keys():
        raise InvalidInputError("jwks must hold public keys only (a private key was sent: consider it leaked)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SecurityWarning)  # small RSA keys: refused below, with a reason
            key = import_key(member, kty)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidInputError(f"a {kty} key in jwks is not a valid JWK") from None
    algorithms = algorithms_for(key)
    if not algorithms:
        raise InvalidInputError("EC keys must use the curve P-256 and OKP keys Ed25519")
    if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
        raise InvalidInputError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    public: dict[str, Any] = dict(key.as_dict(private=False))
    declared_alg = member.get("alg")
    if declared_alg is not None:
        if declared_alg not in algorithms:
            raise InvalidInputError(f"a {kty} key cannot be used with alg {declared_alg!r}")
        public["alg"] = declared_alg
    use = member.get("use")
    if use is not None:
        if use != "sig":
            raise InvalidInputError("client keys are for signatures (use must be 'sig')")
        public["use"] = use
    kid = member.get("kid")
    if kid is not None:
        if not isinstance(kid, str) or not 1 <= len(kid) <= 128:
            raise InvalidInputError("kid must be a string of 1-128 characters")
        if kid in kids:
            raise InvalidInputError(f"kid {kid!r} appears twice in jwks")
        kids.add(kid)
        public["kid"] = kid
    return public


def _invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def _verify_signature(assertion: str, key: ClientKey, alg: str) -> None:
    with warnings.catch_warnings():
        # joserfc warns that `EdDSA` is deprecated by RFC 9864 in favour of `Ed25519`; clients still send it.
        warnings.simplefilter("ignore", SecurityWarning)
        try:
            jwt.decode(assertion, key, algorithms=[alg])
        except (JoseError, ValueError):
            raise _invalid_client("the client assertion's signature does not verify") from None


class PrivateKeyJwtVerifier:
    """The client authenticator's `verify_assertion`: (client_assertion, endpoint URL) → the client."""

    def __init__(
        self,
        *,
        find_client: ClientFinder,
        used_assertions: OAuthStore,
        urls: OAuthUrls,
        skew_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self._find_client = find_client
        self._used = used_assertions
        self._urls = urls
        self._skew = skew_seconds
        self._clock = clock

    async def __call__(self, assertion: str, endpoint_url: str) -> AgentRecord:
        header, claims = self._unverified(assertion)
        alg = header["alg"]
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise _invalid_client("the client assertion's iss and sub must both be the client_id")
        agent = await self._find_client(client_id)
        if (
            agent is None
            or not agent.enabled
            or agent.auth_method is not ClientAuthMethod.PRIVATE_KEY_JWT
            or not agent.jwks
        ):
            raise _invalid_client()
        _verify_signature(assertion, self._key_for(agent, alg, header.get("kid")), alg)
        self._check_audience(claims.get("aud"), endpoint_url)
        expires_at = self._check_times(claims)
        await self._use_jti(agent, claims.get("jti"), expires_at)
        return agent

    def _unverified(self, assertion: str) -> tuple[dict[str, Any], dict[str, Any]]:
        if len(assertion) > _MAX_ASSERTION_LENGTH or assertion.count(".") != 2:
            raise _invalid_client("the client assertion is not a compact JWS")
        try:
            compact = extract_compact(assertion.encode())
            header = dict(compact.headers())
            payload: object = parse_json(compact.payload)
        except (JoseError, ValueError, UnicodeError, RecursionError):
            raise _invalid_client("the client assertion is not a compact JWS") from None
        if set(header) - _ALLOWED_HEADER_FIELDS:
            raise _invalid_client("the client assertion's header may only have alg, typ and kid")
        if header.get("alg") not in ALLOWED_ALGORITHMS:
            raise _invalid_client(f"the client assertion's alg must be one of {', '.join(sorted(ALLOWED_ALGORITHMS))}")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _ACCEPTED_TYPES):
            raise _invalid_client("the client assertion's typ must be JWT or client-authentication+jwt")
        if not isinstance(payload, dict):
            raise _invalid_client("the client assertion's payload is not a JSON object")
        return header, cast("dict[str, Any]", payload)

    def _key_for(self, agent: AgentRecord, alg: str, kid: object) -> ClientKey:
        """The registered key that fits `alg` (and `kid`, if named); exactly one must fit."""
        fitting: list[ClientKey] = []
        raw_keys: object = (agent.jwks or {}).get("keys", [])
        for member in cast("list[dict[str, Any]]", raw_keys if isinstance(raw_keys, list) else []):
            if kid is not None and member.get("kid") != kid:
                continue
            try:
                key = import_key(member, member.get("kty"))
            except (JoseError, ValueError, TypeError, KeyError):
                continue
            if (
                isinstance(key, RSAKey | ECKey | OKPKey)
                and alg in algorithms_for(key)
                and member.get("alg") in (None, alg)
            ):
                fitting.append(key)
        if len(fitting) != 1:
            raise _invalid_client(
                "no registered key fits the client assertion's alg and kid"
                if not fitting
                else "several registered keys fit: name one with kid"
            )
        return fitting[0]

    def _check_audience(self, audience: object, endpoint_url: str) -> None:
        values = cast("list[object]", audience) if isinstance(audience, list) else [audience]
        accepted = {self._urls.issuer, self._urls.token_endpoint, endpoint_url}
        if len(values) != 1 or values[0] not in accepted:
            raise _invalid_client(f"the client assertion's aud must be the issuer {self._urls.issuer}")

    def _check_times(self, claims: dict[str, Any]) -> datetime:
        now = int(self._clock().timestamp())
        expires_at = claims.get("exp")
        if not _is_int(expires_at):
            raise _invalid_client("the client assertion lacks exp")
        if expires_at <= now - self._skew:
            raise _invalid_client("the client assertion has expired")
        if expires_at > now + MAX_ASSERTION_LIFETIME_SECONDS + self._skew:
            raise _invalid_client(
                f"the client assertion's exp is more than {MAX_ASSERTION_LIFETIME_SECONDS} seconds ahead"
            )
        for name in ("nbf", "iat"):
            value = claims.get(name)
            if value is not None and (not _is_int(value) or value > now + self._skew):
                raise _invalid_client(f"the client assertion's {name} is in the future")
        return datetime.fromtimestamp(expires_at, UTC)

    async def _use_jti(self, agent: AgentRecord, jti: object, expires_at: datetime) -> None:
        if not isinstance(jti, str) or not 1 <= len(jti) <= _MAX_JTI_LENGTH:
            raise _invalid_client("the client assertion lacks a jti")
        key = sha256_hex(f"{agent.client_id}\n{jti}")[:_JTI_KEY_HEX_DIGITS]
        if not await self._used.use_assertion_once(key, expires_at + timedelta(seconds=self._skew)):
            raise _invalid_client("the client assertion was already used (jti)")
