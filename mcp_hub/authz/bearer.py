"""The resource server's question: who does this bearer token speak for? (RFC 6750 §2.1, RFC 9068 §4.)

`Authorization: Bearer <token>` only: tokens in the query string or the body are not accepted. The token is
verified (`TokenService.verify`: signature, `typ`, issuer, audience, times; threat T02), then its agent and
revocation state are read through the decider's cache (T09), and a disabled agent or user is refused.
Every failure is `InvalidTokenError`, which `mcp_hub.authz.http.unauthorized_response` answers with 401.
"""

from __future__ import annotations

from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.authz.tokens import TokenService
from mcp_hub.errors import InvalidTokenError


class BearerAuthenticator:
    """Turns an `Authorization` header (or a raw access token, on stdio) into the `Principal` it speaks for."""

    def __init__(self, tokens: TokenService, decider: AccessDecider) -> None:
        self._tokens = tokens
        self._decider = decider

    @property
    def resource(self) -> str:
        """The hub's own MCP resource URL (the default audience)."""
        return self._tokens.resource

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller behind an `Authorization` header value; `InvalidTokenError` (no `error`: no token sent)."""
        if authorization is None:
            raise InvalidTokenError("an access token is required", error=None)
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidTokenError("use the Bearer scheme: Authorization: Bearer <access token>")
        principal = await self.principal_for(token.strip())
        if not await self._decider.is_enabled(principal):
            raise InvalidTokenError("this agent or user is disabled")
        return principal

    async def principal_for(self, token: str) -> Principal:
        """The caller a verified, unrevoked access token names (enabled or not)."""
        return await self._decider.principal_for_token(await self._tokens.verify(token))
