"""The `refresh_token` grant (RFC 6749 §6) with rotation in families (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).

A refresh family starts with each authorization code exchange (`grant_authorization_code`); every access
token of the family carries its id as `sid`. Each refresh token is single use: it is consumed with one
conditional UPDATE (`OAuthStore.consume_refresh_token`), so of N concurrent refreshes with the same token
exactly one wins (threat T07). The winner gets a new access token and a new refresh token in the same
family. A refresh token presented again ("reused") means two parties hold it, one of them an attacker: the
whole family is revoked, so the winner's new refresh token and every access token of the family
(through `sid`, checked by `AccessDecider`) stop working too. The same happens when another client
presents the family's token.

The new access token's scope is the family's (what the user approved) or, if `scope` is sent, a
narrower subset (§6: never wider), decided again against the user's current grants. The family's own
scope never changes (§6: the new refresh token has the scope of the old one).

DPoP (RFC 9449 §5): a family bound to a key (a public client's, `dpop_jkt`) refreshes only with a proof by that
key: without one `invalid_dpop_proof`, with another key's `invalid_grant`, both before the token is consumed (a
thief without the key burns nothing). An unbound family of a public client that refreshes with a proof is bound to
its key from then on (§5: a refresh token issued to a public client that presented a proof MUST be bound). The
new access token is bound to the proof's key when one was sent.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar, Final

from mcp_hub.authz import scopes
from mcp_hub.authz.granting import ScopeGranter
from mcp_hub.authz.token_endpoint import RegisteredGrant, TokenRequest
from mcp_hub.authz.tokens import TokenService
from mcp_hub.credentials import new_secret, sha256_hex
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.domain import Clock, Consumption, GrantType, utc_now
from mcp_hub.errors import OAuthError

REFRESH_TOKEN_PREFIX: Final = "mcphr_"  # noqa: S105 - a prefix for leaked-secret scanners, not a secret
_MAX_TOKEN_LENGTH: Final = 256


class RefreshTokens:
    """Issues refresh tokens of a family: 256 random bits each, stored as their SHA-256 only."""

    def __init__(self, store: OAuthStore, *, ttl_seconds: int, clock: Clock = utc_now) -> None:
        self._store = store
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    async def issue(self, family_id: str) -> str:
        token = new_secret(REFRESH_TOKEN_PREFIX)
        await self._store.add_refresh_token(family_id, sha256_hex(token), self._clock() + self._ttl)
        return token


def _narrowed(family_scope: str, requested: str | None) -> str:
    """§6: the requested scope, if every part of it is within the family's; the family's otherwise."""
    if requested is None:
        return family_scope
    try:
        wanted = scopes.parse_scope(requested) or []
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    approved = family_scope.split()
    wider = [item for item in wanted if not any(scopes.covers(grant, item) for grant in approved)]
    if wider:
        raise OAuthError("invalid_scope", f"a refresh cannot widen the scope: {' '.join(wider)} was not approved")
    return scopes.format_scope(wanted)


class FamilyGrant(RegisteredGrant):
    """Base of the grants that start or continue a refresh family (authorization code, refresh token)."""

    def __init__(
        self, store: OAuthStore, granter: ScopeGranter, tokens: TokenService, refresh_tokens: RefreshTokens
    ) -> None:
        self._store = store
        self._granter = granter
        self._tokens = tokens
        self._refresh_tokens = refresh_tokens


class RefreshTokenGrant(FamilyGrant):
    grant_type: ClassVar[GrantType] = GrantType.REFRESH_TOKEN

    async def __call__(self, request: TokenRequest) -> dict[str, Any]:
        agent = self.registered_client(request)
        token = request.form.get("refresh_token")
        if token is None:
            raise OAuthError("invalid_request", "refresh_token is required")
        if len(token) > _MAX_TOKEN_LENGTH:
            raise OAuthError("invalid_grant", "the refresh token is not valid")
        token_sha256 = sha256_hex(token)
        # The scope is checked against the family before the token is consumed, so a refused narrowing does
        # not burn the token (a family's scope never changes, so the later consume cannot see another one).
        known = await self._store.family_of_refresh_token(token_sha256)
        if known is None:
            raise OAuthError("invalid_grant", "the refresh token is not valid")
        scope = _narrowed(known.scope, request.form.get("scope"))
        if known.dpop_jkt is not None and request.jkt is None:
            raise OAuthError("invalid_dpop_proof", "this refresh token is bound to a DPoP key: send a DPoP proof")
        if known.dpop_jkt is not None and request.jkt != known.dpop_jkt:
            raise OAuthError("invalid_grant", "the refresh token is bound to another DPoP key")

        consumed = await self._store.consume_refresh_token(token_sha256)
        family = consumed.record
        if family is None:
            raise OAuthError("invalid_grant", "the refresh token is not valid")
        if consumed.outcome is Consumption.REUSED:
            await self._store.revoke_family(family.id, "refresh token reused")
            raise OAuthError("invalid_grant", "the refresh token was already used; its tokens are revoked")
        if family.agent_id != agent.id:
            await self._store.revoke_family(family.id, f"refresh token presented by another client {agent.client_id}")
            raise OAuthError("invalid_grant", "the refresh token is not valid")
        if consumed.outcome is not Consumption.FIRST_USE:
            raise OAuthError("invalid_grant", f"the refresh token is {consumed.outcome}")
        if family.resource != request.resource:
            raise OAuthError("invalid_grant", "the refresh token was issued for another resource")

        if family.user_id is None:
            granted = await self._granter.for_agent(agent, scope)
        else:
            granted = await self._granter.for_user_at_token_endpoint(agent, family.user_id, scope)
        if agent.is_public and request.jkt is not None and family.dpop_jkt is None:
            await self._store.bind_family_to_key(family.id, request.jkt)
        refresh = await self._refresh_tokens.issue(family.id)
        return self._tokens.token_response(
            agent.client_id,
            granted,
            user_id=family.user_id,
            family_id=family.id,
            refresh_token=refresh,
            audience=family.resource,
            jkt=request.jkt,
        )
