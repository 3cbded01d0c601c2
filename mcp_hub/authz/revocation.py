"""Token revocation: RFC 7009 at `POST /oauth/revoke` (threat T09).

The client authenticates as at the token endpoint (`mcp_hub.authz.client_auth`; a public client names its
`client_id`, RFC 7009 §2.1) and posts `token`, with an optional `token_type_hint` (`access_token` or
`refresh_token`; it only decides which kind is tried first, §2.1, and unknown hints are ignored).

- A refresh token revokes its whole family (every refresh token of the chain, and through the family id in
  their `sid` claim every access token issued from it; RFC 7009 §2.1 says the server SHOULD).
- An access token (verified with the hub's keys: only tokens this hub issued) is recorded in
  `revoked_tokens` until it would have expired. The resource server reads revocations through the decision
  cache, so the token stops working within `[auth] decision_cache_seconds` on every replica (at once on
  this one, whose cache is cleared).
- A token is revoked only if it was issued to the authenticated client. For anything else — unknown,
  malformed, expired, already revoked, or another client's token — the answer is the same 200 (§2.2: an
  invalid token is not an error). Answering another client's token with an error, as §2.1 suggests, would
  tell the caller that the token it holds is live; we do not.
"""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz.client_auth import ClientAuthenticator
from mcp_hub.authz.decisions import AccessDecider
from mcp_hub.authz.http import NO_STORE, oauth_error_response, read_oauth_form
from mcp_hub.authz.tokens import TokenService
from mcp_hub.authz.urls import REVOKE_PATH, OAuthUrls
from mcp_hub.bodies import FormData
from mcp_hub.credentials import sha256_hex
from mcp_hub.db.identities import AgentRecord
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.errors import InvalidTokenError, OAuthError


def required_token(form: FormData) -> str:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    return token


class Revocation:
    """`POST /oauth/revoke`."""

    def __init__(
        self,
        authenticator: ClientAuthenticator,
        tokens: TokenService,
        store: OAuthStore,
        decider: AccessDecider,
        urls: OAuthUrls,
    ) -> None:
        self._authenticator = authenticator
        self._tokens = tokens
        self._store = store
        self._decider = decider
        self._urls = urls

    def routes(self) -> list[Route]:
        return [Route(REVOKE_PATH, self._revoke, methods=["POST"])]

    async def _revoke(self, request: Request) -> Response:
        try:
            form = await read_oauth_form(request)
            agent = await self._authenticator.authenticate(request, form, endpoint_url=self._urls.url(REVOKE_PATH))
            token = required_token(form)
            attempts = (self._revoke_access_token, self._revoke_refresh_token)
            if form.get("token_type_hint") == "refresh_token":
                attempts = (self._revoke_refresh_token, self._revoke_access_token)
            for attempt in attempts:
                if await attempt(agent, token):
                    break
        except OAuthError as exc:
            return oauth_error_response(exc)
        return Response(status_code=200, headers=NO_STORE)

    async def _revoke_access_token(self, agent: AgentRecord, token: str) -> bool:
        """Revoke `token` if it is a live access token of `agent`; False if it is not one."""
        if token.count(".") != 2:
            return False
        try:
            claims = await self._tokens.verify(token)
        except InvalidTokenError:
            return False
        if claims.client_id != agent.client_id:
            return False
        await self._store.revoke_access_token(claims.jti, datetime.fromtimestamp(claims.expires_at, UTC))
        self._decider.forget_revocation(claims.jti)
        return True

    async def _revoke_refresh_token(self, agent: AgentRecord, token: str) -> bool:
        """Revoke the family of `token` if it is a refresh token of `agent`; False if it is not one."""
        family = await self._store.family_of_refresh_token(sha256_hex(token))
        if family is None or family.agent_id != agent.id:
            return False
        if family.revoked_at is None:
            await self._store.revoke_family(family.id, "revoked by the client (RFC 7009)")
            self._decider.forget_revocation()
        return True
