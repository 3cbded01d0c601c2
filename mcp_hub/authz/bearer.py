"""The resource server's question: who does this access token speak for? (RFC 6750 §2.1, RFC 9068 §4, RFC 9449 §7.)

`Authorization: Bearer <token>` or, for a DPoP-bound token, `Authorization: DPoP <token>` with a `DPoP` proof;
tokens in the query string or the body are not accepted. The token is verified (`TokenService.verify`: signature,
`typ`, issuer, audience, times; threat T02), then its agent and revocation state are read through the decider's
cache (T09), and a disabled agent or user is refused.

Sender constraint (RFC 9449, threat T08): a token with `cnf.jkt` is accepted only with the `DPoP` scheme and a
proof by that key for this request (`authz.dpop`); presented as `Bearer` it is refused, and so is an unbound
token presented as `DPoP` (§7.2). Where DPoP is required (`[auth] dpop = "required"`), the `Bearer` scheme is
refused outright. A bearer token pays nothing for any of this: its proof request is never built.
Every failure is `InvalidTokenError`, which `mcp_hub.authz.http.unauthorized_response` answers with 401.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.authz.dpop import DpopProofs
from mcp_hub.authz.tokens import AccessToken, TokenService
from mcp_hub.errors import InvalidTokenError


@dataclass(frozen=True, slots=True)
class ProofRequest:
    """What a DPoP proof must fit: the request's method and URL as the hub's public base URL names it (never as
    the `Host` header does), and the value of every `DPoP` header the request carried."""

    method: str
    url: str
    proofs: tuple[str, ...]


ProofRequestOf = Callable[[], ProofRequest]
"""Builds the `ProofRequest` of the request at hand; called only for the `DPoP` scheme."""


class BearerAuthenticator:
    """Turns an `Authorization` header (or a raw access token, on stdio) into the `Principal` it speaks for."""

    def __init__(self, tokens: TokenService, decider: AccessDecider, dpop: DpopProofs) -> None:
        self._tokens = tokens
        self._decider = decider
        self._dpop = dpop

    @property
    def resource(self) -> str:
        """The hub's own MCP resource URL (the default audience)."""
        return self._tokens.resource

    async def authenticate(
        self, authorization: str | None, proof_request: ProofRequestOf | None = None, *, dpop_required: bool = False
    ) -> Principal:
        """The caller behind an `Authorization` header value; `InvalidTokenError` (no `error`: no token sent)."""
        verified = await self.access_token(authorization, proof_request, dpop_required=dpop_required)
        principal = await self._decider.principal_for_token(verified)
        if not await self._decider.is_enabled(principal):
            raise InvalidTokenError("this agent or user is disabled")
        return principal

    async def access_token(
        self, authorization: str | None, proof_request: ProofRequestOf | None = None, *, dpop_required: bool = False
    ) -> AccessToken:
        """The verified token of an `Authorization` header, with its DPoP proof checked when it is bound;
        `proof_request` None: the endpoint has no request to prove (the DPoP scheme is refused)."""
        if authorization is None:
            raise InvalidTokenError("an access token is required", error=None)
        scheme, _, value = authorization.partition(" ")
        scheme, token = scheme.lower(), value.strip()
        if scheme == "bearer" and token:
            if dpop_required:
                raise InvalidTokenError(
                    "this endpoint requires DPoP: Authorization: DPoP <access token> with a DPoP proof", dpop=True
                )
            verified = await self._tokens.verify(token)
            if verified.jkt is not None:
                raise InvalidTokenError(
                    "this access token is bound to a key: send it as Authorization: DPoP <token> with a DPoP proof",
                    dpop=True,
                )
            return verified
        if scheme == "dpop" and token and proof_request is not None:
            verified = await self._tokens.verify(token)
            if verified.jkt is None:
                raise InvalidTokenError("this access token is not bound to a key: use the Bearer scheme", dpop=True)
            request = proof_request()
            await self._dpop.verify(request.proofs, request.method, request.url, access_token=token, jkt=verified.jkt)
            return verified
        raise InvalidTokenError(
            "use the Bearer scheme (Authorization: Bearer <access token>), or DPoP with a proof",
            dpop=dpop_required,
        )

    async def principal_for(self, token: str) -> Principal:
        """The caller a verified, unrevoked access token names (enabled or not), where no request carries a proof
        (stdio): a DPoP-bound token is refused there."""
        verified = await self._tokens.verify(token)
        if verified.jkt is not None:
            raise InvalidTokenError("a DPoP-bound access token needs a proof with every HTTP request: not on stdio")
        return await self._decider.principal_for_token(verified)
