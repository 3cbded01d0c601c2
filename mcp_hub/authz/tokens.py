"""JWT access tokens: RFC 9068 (JWT profile for OAuth 2.0 access tokens), signed per RFC 7515 with ES256.

Issued: header `{"typ": "at+jwt", "alg": "ES256", "kid": ...}`; claims `iss`, `sub`, `aud` (the hub's MCP
resource URL, RFC 8707), `exp`, `iat`, `nbf`, `jti`, `client_id`, `scope`, and for refresh-token chains
`sid` (the refresh family, so revoking the family also ends its access tokens), and for a DPoP-bound token
`cnf: {"jkt": <RFC 7638 thumbprint of the client's key>}` (RFC 9449 §6.1; `token_type: DPoP` in the answer).

Verified (threat T02, in this order, failing closed): compact JWS with exactly the header fields we allow;
`alg` = ES256 only (so `none`, HS256 with the public key as secret, RS256 are refused before any key is
used); `typ` = `at+jwt` (so an ID token or other JWT is not an access token); a `kid` the key ring knows;
the signature; then, by authlib's RFC 9068 claims validator (joserfc's registry underneath), `iss` exact, `aud`
containing the resource, `exp`/`nbf`/`iat` finite numbers checked against the clock with a small skew, and
`sub`, `client_id`, `jti` present, and `cnf`, if there, an object with a thumbprint as `jkt`; each refusal says
which rule failed. Whether a bound token came with its proof is the bearer check's question (`authz.bearer`).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from authlib.oauth2.rfc9068.claims import JWTAccessTokenClaims
from joserfc import jwt
from joserfc.errors import ClaimError, ExpiredTokenError, InvalidPayloadError, JoseError
from joserfc.jws import extract_compact

from mcp_hub.authz import scopes as scope_strings
from mcp_hub.authz.keys import ALGORITHM, KeyRing
from mcp_hub.domain import Clock, utc_now
from mcp_hub.errors import InvalidTokenError

MAX_ACCESS_TOKEN_SECONDS: Final = 3600
"""Access tokens live minutes, never more than an hour (and the key ring keeps retired keys this long)."""
TOKEN_TYPE: Final = "at+jwt"  # noqa: S105 - a media type, not a secret
_ACCEPTED_TYPES: Final = frozenset({"at+jwt", "application/at+jwt"})
_ALLOWED_HEADER_FIELDS: Final = frozenset({"alg", "typ", "kid"})
_MAX_TOKEN_LENGTH: Final = 8192
_MAX_CACHED_TOKENS: Final = 10_000
_THUMBPRINT: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL of a SHA-256 digest (RFC 7638 §3)


def _bound_key(claims: dict[str, Any]) -> str | None:
    """The `cnf.jkt` of a token's claims (RFC 9449 §6.1), None without `cnf`; a `cnf` the hub never writes is
    refused."""
    confirmation: object = claims.get("cnf")
    if confirmation is None:
        return None
    jkt = cast("dict[str, Any]", confirmation).get("jkt") if isinstance(confirmation, dict) else None
    if not isinstance(jkt, str) or not _THUMBPRINT.match(jkt):
        raise InvalidTokenError("the access token's cnf has no key thumbprint (jkt)")
    return jkt


def _is_time(value: object) -> bool:
    """A JSON number that can be a NumericDate (RFC 7519 §2), as joserfc judges it."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class AccessToken:
    """The verified (or just issued) claims of one access token."""

    jti: str
    subject: str
    client_id: str
    scopes: tuple[str, ...]
    audience: str
    issued_at: int
    expires_at: int
    user_id: str | None
    family_id: str | None
    jkt: str | None = None
    """The thumbprint of the key the token is bound to (RFC 9449 `cnf.jkt`); None for a bearer token."""


class TokenService:
    """Issues and verifies the hub's access tokens."""

    def __init__(
        self,
        keys: KeyRing,
        *,
        issuer: str,
        resource: str,
        lifetime_seconds: int,
        skew_seconds: int,
        clock: Clock = utc_now,
        other_audiences: Sequence[str] = (),
    ) -> None:
        """`other_audiences`: the virtual servers' resource URLs, accepted as `aud` too (issue 11 §6); which
        endpoint accepts which audience is the bearer guard's decision."""
        self._keys = keys
        self._issuer = issuer
        self._resource = resource
        self._lifetime = min(lifetime_seconds, MAX_ACCESS_TOKEN_SECONDS)
        self._skew = skew_seconds
        self._clock = clock
        self._required_claims: dict[str, Any] = {
            "iss": {"essential": True, "value": issuer},
            "aud": {"essential": True, "values": [resource, *other_audiences]},
            **{name: {"essential": True} for name in ("exp", "iat", "sub", "client_id", "jti")},
        }
        # Verified tokens by their text: a signature is checked once per token, not once per request.
        # Only time-dependent checks run again on a hit; revocation is the decider's job.
        self._verified: dict[str, AccessToken] = {}
        self._audiences = frozenset((resource, *other_audiences))

    @property
    def resource(self) -> str:
        return self._resource

    def issue(
        self,
        *,
        client_id: str,
        scopes: Sequence[str],
        lifetime_seconds: int,
        user_id: str | None = None,
        family_id: str | None = None,
        audience: str | None = None,
        jkt: str | None = None,
    ) -> tuple[str, AccessToken]:
        """Sign a new access token; `sub` is the user when there is one, the client otherwise (RFC 9068 §2.2);
        `jkt`: bound to that key (RFC 9449 §6.1)."""
        now = int(self._clock().timestamp())
        claims = AccessToken(
            jti=uuid.uuid4().hex,
            subject=user_id or client_id,
            client_id=client_id,
            scopes=tuple(scopes),
            audience=audience or self._resource,
            issued_at=now,
            expires_at=now + lifetime_seconds,
            user_id=user_id,
            family_id=family_id,
            jkt=jkt,
        )
        payload: dict[str, Any] = {
            "iss": self._issuer,
            "sub": claims.subject,
            "aud": claims.audience,
            "iat": now,
            "nbf": now,
            "exp": claims.expires_at,
            "jti": claims.jti,
            "client_id": client_id,
            "scope": " ".join(claims.scopes),
        }
        if family_id is not None:
            payload["sid"] = family_id
        if jkt is not None:
            payload["cnf"] = {"jkt": jkt}
        key = self._keys.signing_key()
        header = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": key.record.kid}
        return jwt.encode(header, payload, key.private, algorithms=[ALGORITHM]), claims

    def token_response(
        self,
        client_id: str,
        granted: Sequence[str],
        *,
        user_id: str | None = None,
        family_id: str | None = None,
        refresh_token: str | None = None,
        audience: str | None = None,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        """RFC 6749 §5.1: the success body of the token endpoint, with a fresh access token (bound to `jkt`, with
        `token_type: DPoP`, RFC 9449 §5)."""
        token, claims = self.issue(
            client_id=client_id,
            scopes=granted,
            lifetime_seconds=self._lifetime,
            user_id=user_id,
            family_id=family_id,
            audience=audience,
            jkt=jkt,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer" if jkt is None else "DPoP",
            "expires_in": claims.expires_at - claims.issued_at,
            "scope": scope_strings.format_scope(granted),
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return body

    async def verify(self, token: str) -> AccessToken:
        """The token's claims, or `InvalidTokenError` saying what is wrong (never which key would have fit)."""
        cached = self._verified.get(token)
        if cached is not None:
            if cached.expires_at <= int(self._clock().timestamp()) - self._skew:
                del self._verified[token]
                raise InvalidTokenError("the access token has expired")
            return cached
        claims = await self._verify_uncached(token)
        if len(self._verified) >= _MAX_CACHED_TOKENS:
            now = int(self._clock().timestamp()) - self._skew
            self._verified = {text: item for text, item in self._verified.items() if item.expires_at > now}
            if len(self._verified) >= _MAX_CACHED_TOKENS:
                self._verified.clear()
        self._verified[token] = claims
        return claims

    async def _verify_uncached(self, token: str) -> AccessToken:
        if len(token) > _MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("the access token is not a compact JWS")
        try:
            header = extract_compact(token.encode()).headers()
        except (JoseError, ValueError, UnicodeError):
            raise InvalidTokenError("the access token is not a compact JWS") from None
        if set(header) - _ALLOWED_HEADER_FIELDS:
            raise InvalidTokenError("the access token's header has fields this hub never sets")
        if header.get("alg") != ALGORITHM:
            raise InvalidTokenError(f"the access token's alg must be {ALGORITHM}")
        if str(header.get("typ", "")).lower() not in _ACCEPTED_TYPES:
            raise InvalidTokenError("the token is not an access token (typ must be at+jwt, RFC 9068)")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidTokenError("the access token names no key (kid)")
        key = self._keys.verification_key(kid) or await self._keys.reload_for_unknown_kid(kid)
        if key is None:
            raise InvalidTokenError("the access token was signed by a key this hub does not know")
        try:
            decoded = jwt.decode(token, key.public, algorithms=[ALGORITHM])
        except InvalidPayloadError:  # a JoseError too: it must come first
            raise InvalidTokenError("the access token's payload is not a JSON object") from None
        except JoseError:
            raise InvalidTokenError("the access token's signature does not verify") from None
        except (ValueError, json.JSONDecodeError):
            raise InvalidTokenError("the access token's payload is not a JSON object") from None
        return self._check_claims(dict(header), decoded.claims)

    def _check_claims(self, header: dict[str, Any], claims: dict[str, Any]) -> AccessToken:
        """RFC 9068 §4 with authlib's validator (joserfc's claims registry underneath): `typ`, `iss` exact, `aud`
        containing the resource, `exp`/`nbf`/`iat` against the clock with the skew, the required claims present."""
        checked: Any = JWTAccessTokenClaims(claims, header, self._required_claims)  # authlib is untyped
        try:
            checked.validate(now=int(self._clock().timestamp()), leeway=self._skew)
        except ExpiredTokenError:
            raise InvalidTokenError("the access token has expired") from None
        except ClaimError as exc:
            raise InvalidTokenError(self._refusal(exc.claim, claims)) from None
        subject, client_id, jti = claims["sub"], claims["client_id"], claims["jti"]
        if not (isinstance(subject, str) and isinstance(client_id, str) and isinstance(jti, str)):
            raise InvalidTokenError("the access token lacks sub, client_id or jti")
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise InvalidTokenError("the access token's scope is not a string")
        family = claims.get("sid")
        return AccessToken(
            jti=jti,
            subject=subject,
            client_id=client_id,
            scopes=tuple(scope.split()),
            audience=self._audience_of(claims.get("aud")),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            user_id=subject if subject != client_id else None,
            family_id=family if isinstance(family, str) else None,
            jkt=_bound_key(claims),
        )

    def _audience_of(self, aud: object) -> str:
        """The one of this hub's audiences the (already validated) `aud` claim names."""
        named = [aud] if isinstance(aud, str) else [item for item in cast("list[object]", aud) if isinstance(item, str)]
        if self._resource in named:
            return self._resource
        return next(item for item in named if item in self._audiences)

    def _refusal(self, failed: str, claims: dict[str, Any]) -> str:
        """What the refusal says, for the claim (or the comma-separated missing claims) that failed."""
        names = set(failed.split(","))
        if "iss" in names:
            return "the access token was issued by someone else (iss)"
        if "aud" in names:
            return f"the access token is not for this resource (aud must be {self._resource})"
        if names & {"exp", "iat", "nbf"}:
            name = sorted(names & {"exp", "iat", "nbf"})[0]
            if name != "exp" and _is_time(claims.get(name)):
                return "the access token is not valid yet"
            return "the access token's nbf is not a number" if name == "nbf" else "the access token lacks exp or iat"
        return "the access token lacks sub, client_id or jti"
