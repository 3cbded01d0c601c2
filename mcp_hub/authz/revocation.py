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

from mcp_hub.authz._random import sha256_hex
from mcp_hub.authz.client_auth import authenticate_client
from mcp_hub.authz.client_metadata import resolve_client
from mcp_hub.authz.endpoints import REVOKE_PATH, read_form
from mcp_hub.authz.http import NO_STORE, oauth_error_response
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord
from mcp_hub.errors import InvalidTokenError, OAuthError


async def resolve_form_client(service: AuthService, form: dict[str, str]) -> None:
    """Make sure a metadata-document client named in the form is known (fetched, upserted) before client
    authentication looks it up; for any other client id this is one lookup that changes nothing."""
    client_id = form.get("client_id")
    if client_id is not None:
        await resolve_client(service, client_id)


async def revoke_access_token(service: AuthService, agent: AgentRecord, token: str) -> bool:
    """Revoke `token` if it is a live access token of `agent`; False if it is not one."""
    if token.count(".") != 2:
        return False
    try:
        claims = await service.tokens.verify(token)
    except InvalidTokenError:
        return False
    if claims.client_id != agent.client_id:
        return False
    await service.store.revoke_access_token(claims.jti, datetime.fromtimestamp(claims.expires_at, UTC))
    service.decider.forget_revocation(claims.jti)
    return True


async def revoke_refresh_token(service: AuthService, agent: AgentRecord, token: str) -> bool:
    """Revoke the family of `token` if it is a refresh token of `agent`; False if it is not one."""
    family = await service.store.family_of_refresh_token(sha256_hex(token))
    if family is None or family.agent_id != agent.id:
        return False
    if family.revoked_at is None:
        await service.store.revoke_family(family.id, "revoked by the client (RFC 7009)")
        service.decider.forget_revocation()
    return True


def required_token(form: dict[str, str]) -> str:
    token = form.get("token")
    if not token:
        raise OAuthError("invalid_request", "token is required")
    return token


def revocation_routes(service: AuthService) -> list[Route]:
    async def revoke(request: Request) -> Response:
        try:
            form, _ = await read_form(request)
            await resolve_form_client(service, form)
            agent = await authenticate_client(
                request,
                form,
                service.store,
                endpoint_url=service.url(REVOKE_PATH),
                verify_assertion=service.verify_assertion,
            )
            token = required_token(form)
            attempts = (revoke_access_token, revoke_refresh_token)
            if form.get("token_type_hint") == "refresh_token":
                attempts = (revoke_refresh_token, revoke_access_token)
            for attempt in attempts:
                if await attempt(service, agent, token):
                    break
        except OAuthError as exc:
            return oauth_error_response(exc)
        return Response(status_code=200, headers=NO_STORE)

    return [Route(REVOKE_PATH, revoke, methods=["POST"])]
