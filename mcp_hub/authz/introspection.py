"""Token introspection: RFC 7662 at `POST /oauth/introspect`.

Only authenticated confidential clients may call it (`client_secret_basic`, `client_secret_post`,
`private_key_jwt`); anyone else gets 401 `invalid_client` (RFC 7662 §2.1 requires authorization, §4 warns
against token scanning).

Who may introspect what (our choice): a client learns about its own tokens only. Every other token,
including a perfectly valid one of another client, is `{"active": false}`. The hub is the only resource
server its tokens are for, so no third party has a legitimate need to read other clients' tokens, and
allowing it would let any agent learn other agents' scopes and users, or test whether a stolen token is
live. Tool grants such as `tool:*` say which tools an agent may call, not what it may learn about other
agents, so they do not widen this. (An external resource server, if one ever exists, would get an explicit
introspection right of its own.)

A token is active when its signature, issuer, audience and times verify (`TokenService.verify`, as the
resource server checks them), it was not revoked (its jti, or its refresh family), and its agent and user are
enabled — read from the database, not through the decision cache, so the answer is current. An active
answer carries `scope`, `client_id`, `sub`, `aud`, `iss`, `exp`, `iat`, `jti`, `token_type` (RFC 7662
§2.2; `DPoP` with `cnf.jkt` for a DPoP-bound token, RFC 9449 §6.2); an inactive one carries nothing else
(§2.2 SHOULD NOT). Refresh tokens of the caller can be introspected too (`scope`, `client_id`, `sub`, `aud`,
`iss`, `exp`).
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz.client_auth import ClientAuthenticator
from mcp_hub.authz.http import oauth_error_response, oauth_json, read_oauth_form
from mcp_hub.authz.revocation import required_token
from mcp_hub.authz.tokens import TokenService
from mcp_hub.authz.urls import INTROSPECT_PATH, OAuthUrls
from mcp_hub.credentials import sha256_hex
from mcp_hub.db.identities import AgentRecord, IdentityStore
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.domain import Clock, UserId, utc_now
from mcp_hub.errors import InvalidTokenError, OAuthError

INACTIVE: Final[dict[str, Any]] = {"active": False}


class Introspection:
    """`POST /oauth/introspect`, for confidential clients and their own tokens."""

    def __init__(
        self,
        authenticator: ClientAuthenticator,
        tokens: TokenService,
        store: OAuthStore,
        identities: IdentityStore,
        urls: OAuthUrls,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self._authenticator = authenticator
        self._tokens = tokens
        self._store = store
        self._identities = identities
        self._urls = urls
        self._clock = clock

    def routes(self) -> list[Route]:
        return [Route(INTROSPECT_PATH, self._introspect, methods=["POST"])]

    async def _introspect(self, request: Request) -> Response:
        try:
            form = await read_oauth_form(request)
            caller = await self._authenticator.authenticate(
                request, form, endpoint_url=self._urls.url(INTROSPECT_PATH), allow_public=False
            )
            token = required_token(form)
            attempts = (self._access_token, self._refresh_token)
            if form.get("token_type_hint") == "refresh_token":
                attempts = (self._refresh_token, self._access_token)
            for attempt in attempts:
                answer = await attempt(caller, token)
                if answer is not None:
                    return oauth_json(answer)
        except OAuthError as exc:
            return oauth_error_response(exc)
        return oauth_json(INACTIVE)

    async def _access_token(self, caller: AgentRecord, token: str) -> dict[str, Any] | None:
        """The RFC 7662 answer for an active access token of `caller`; None if it is not one."""
        if token.count(".") != 2:
            return None
        try:
            claims = await self._tokens.verify(token)
        except InvalidTokenError:
            return None
        if claims.client_id != caller.client_id:
            return None
        if await self._store.is_access_token_revoked(claims.jti):
            return None
        if claims.family_id is not None and await self._store.revoked_families([claims.family_id]):
            return None
        if not await self._subject_enabled(caller, claims.user_id):
            return None
        answer: dict[str, Any] = {
            "active": True,
            "scope": " ".join(claims.scopes),
            "client_id": claims.client_id,
            "sub": claims.subject,
            "aud": claims.audience,
            "iss": self._urls.issuer,
            "exp": claims.expires_at,
            "iat": claims.issued_at,
            "jti": claims.jti,
            "token_type": "Bearer",
        }
        if claims.jkt is not None:  # RFC 9449 §6.2: a DPoP-bound token, and the key it is bound to
            answer |= {"token_type": "DPoP", "cnf": {"jkt": claims.jkt}}
        return answer

    async def _refresh_token(self, caller: AgentRecord, token: str) -> dict[str, Any] | None:
        """The RFC 7662 answer for an active refresh token of `caller`; None if it is not one."""
        status = await self._store.refresh_token_status(sha256_hex(token))
        if status is None:
            return None
        family = status.family
        if family.agent_id != caller.id or family.revoked_at is not None or status.used_at is not None:
            return None
        if status.expires_at <= self._clock():
            return None
        if not await self._subject_enabled(caller, family.user_id):
            return None
        return {
            "active": True,
            "scope": family.scope,
            "client_id": caller.client_id,
            "sub": family.user_id or caller.client_id,
            "aud": family.resource,
            "iss": self._urls.issuer,
            "exp": int(status.expires_at.timestamp()),
        }

    async def _subject_enabled(self, caller: AgentRecord, user_id: str | None) -> bool:
        subject = await self._identities.subject_grants(caller.id, None if user_id is None else UserId(user_id))
        return subject.enabled
