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
§2.2); an inactive one carries nothing else (§2.2 SHOULD NOT). Refresh tokens of the caller can be
introspected too (`scope`, `client_id`, `sub`, `aud`, `iss`, `exp`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz._random import sha256_hex
from mcp_hub.authz.client_auth import authenticate_client
from mcp_hub.authz.endpoints import INTROSPECT_PATH, read_form
from mcp_hub.authz.http import oauth_error_response, oauth_json
from mcp_hub.authz.revocation import required_token
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord
from mcp_hub.errors import InvalidTokenError, OAuthError

INACTIVE: dict[str, Any] = {"active": False}


async def introspect_access_token(service: AuthService, caller: AgentRecord, token: str) -> dict[str, Any] | None:
    """The RFC 7662 answer for an active access token of `caller`; None if it is not one."""
    if token.count(".") != 2:
        return None
    try:
        claims = await service.tokens.verify(token)
    except InvalidTokenError:
        return None
    if claims.client_id != caller.client_id:
        return None
    store = service.store
    if await store.is_access_token_revoked(claims.jti):
        return None
    if claims.family_id is not None and await store.revoked_families([claims.family_id]):
        return None
    if not (await store.subject_grants(caller.id, claims.user_id)).enabled:
        return None
    return {
        "active": True,
        "scope": " ".join(claims.scopes),
        "client_id": claims.client_id,
        "sub": claims.subject,
        "aud": claims.audience,
        "iss": service.issuer,
        "exp": claims.expires_at,
        "iat": claims.issued_at,
        "jti": claims.jti,
        "token_type": "Bearer",
    }


async def introspect_refresh_token(service: AuthService, caller: AgentRecord, token: str) -> dict[str, Any] | None:
    """The RFC 7662 answer for an active refresh token of `caller`; None if it is not one."""
    status = await service.store.refresh_token_status(sha256_hex(token))
    if status is None:
        return None
    family, expires_at, used_at = status
    if family.agent_id != caller.id or family.revoked_at is not None or used_at is not None:
        return None
    if expires_at <= datetime.now(UTC):
        return None
    if not (await service.store.subject_grants(caller.id, family.user_id)).enabled:
        return None
    return {
        "active": True,
        "scope": family.scope,
        "client_id": caller.client_id,
        "sub": family.user_id or caller.client_id,
        "aud": family.resource,
        "iss": service.issuer,
        "exp": int(expires_at.timestamp()),
    }


def introspection_routes(service: AuthService) -> list[Route]:
    async def introspect(request: Request) -> Response:
        try:
            form, _ = await read_form(request)
            caller = await authenticate_client(
                request,
                form,
                service.store,
                endpoint_url=service.url(INTROSPECT_PATH),
                verify_assertion=service.verify_assertion,
                allow_public=False,
            )
            token = required_token(form)
            attempts = (introspect_access_token, introspect_refresh_token)
            if form.get("token_type_hint") == "refresh_token":
                attempts = (introspect_refresh_token, introspect_access_token)
            for attempt in attempts:
                answer = await attempt(service, caller, token)
                if answer is not None:
                    return oauth_json(answer)
        except OAuthError as exc:
            return oauth_error_response(exc)
        return oauth_json(INACTIVE)

    return [Route(INTROSPECT_PATH, introspect, methods=["POST"])]
