"""Who may use the admin API: an admin's web session, or an admin token (docs/admin-api.md; threat T10).

- A web session (the cookie of `/login`, `mcp_hub.web.sessions`) of an enabled user with role `admin`. An approver's
  session is 403. Its writes must also pass the CSRF check (`framework.AdminApi`).
- `Authorization: Bearer <token>` (RFC 6750 §2.1), or `DPoP <token>` with its proof for a DPoP-bound token (RFC
  9449, T08: `authz.bearer`, the same check as the MCP endpoints', `htu` against the public base URL): an access
  token of this hub (`TokenService.verify`: signature, `typ`, issuer, times; T02) whose audience is the admin API
  (`<issuer>/admin/api`, never the MCP endpoint's), unrevoked, of an enabled agent that still holds the
  `admin:api` grant, carrying the `admin:api` scope. Only a confidential agent an admin created can get such a
  token (`authz.granting`). A token for another audience (an agent's MCP token) is 401 `invalid_token`; one
  without the scope 403 `insufficient_scope`; each with a `WWW-Authenticate: Bearer` challenge naming the admin
  API's protected resource metadata (RFC 9728); a refusal about DPoP challenges with `DPoP` (RFC 9449 §7.1).

A request with neither is 401 with the challenge (no `error`, RFC 6750 §3.1). A bearer token wins over a cookie:
a script's token is never mixed with a browser's session.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.changes import Actor
from mcp_hub.authz import scopes
from mcp_hub.authz.bearer import BearerAuthenticator, ProofRequest
from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.authz.http import bearer_challenge, token_challenge
from mcp_hub.authz.tokens import AccessToken
from mcp_hub.authz.urls import ADMIN_API_PATH, OAuthUrls
from mcp_hub.domain import Role
from mcp_hub.errors import InvalidTokenError
from mcp_hub.web.admin_api.framework import Authenticated, error_response
from mcp_hub.web.sessions import LOGIN_PATH, WebSessions

SESSION_SCHEME = "adminSession"
TOKEN_SCHEME = "adminToken"  # noqa: S105 - an OpenAPI scheme name


class AdminAccess:
    """The admin check of every admin API request."""

    def __init__(
        self, sessions: WebSessions, bearer: BearerAuthenticator, decider: AccessDecider, urls: OAuthUrls
    ) -> None:
        self._sessions = sessions
        self._bearer = bearer
        self._decider = decider
        self._urls = urls
        self._metadata = urls.resource_metadata_url_of(ADMIN_API_PATH)

    async def authenticate(self, request: Request) -> Authenticated | Response:
        authorization = request.headers.get("authorization")
        if authorization is not None:
            return await self._token(authorization, request)
        viewer = await self._sessions.current(request)
        if viewer is None:
            return self._unauthorized(
                InvalidTokenError(f"an admin token, or an admin's web session (sign in at {LOGIN_PATH})", error=None)
            )
        if viewer.user.role is not Role.ADMIN:
            return error_response(403, "forbidden", "only admins use the admin API")
        return Authenticated(Actor.user(viewer.user.name), viewer.csrf_token)

    async def _token(self, authorization: str, request: Request) -> Authenticated | Response:
        try:
            verified, principal = await self._admin_token(authorization, request)
        except InvalidTokenError as exc:
            return self._unauthorized(exc)
        access = await self._decider.access(principal)
        if scopes.ADMIN_SCOPE not in verified.scopes or scopes.ADMIN_SCOPE not in access.grants:
            challenge = bearer_challenge(
                self._metadata,
                error="insufficient_scope",
                description=f"needs the {scopes.ADMIN_SCOPE} scope",
                scope=scopes.ADMIN_SCOPE,
            )
            return error_response(
                403, "insufficient_scope", f"the token needs the {scopes.ADMIN_SCOPE} scope", challenge=challenge
            )
        return Authenticated(Actor.client(verified.client_id), None)

    async def _admin_token(self, authorization: str, request: Request) -> tuple[AccessToken, Principal]:
        """The verified token and its enabled agent; `InvalidTokenError` for anything else."""

        def proof_request() -> ProofRequest:
            url = self._urls.url(request.url.path)
            return ProofRequest(request.method, url, tuple(request.headers.getlist("dpop")))

        verified = await self._bearer.access_token(authorization, proof_request)
        if verified.audience != self._urls.admin_resource:
            raise InvalidTokenError(
                f"the access token is not for the admin API (aud must be {self._urls.admin_resource})"
            )
        principal = await self._decider.principal_for_token(verified)
        if principal.user_id is not None or not await self._decider.is_enabled(principal):
            raise InvalidTokenError("this agent is disabled, or the token acts for a user")
        return verified, principal

    def _unauthorized(self, error: InvalidTokenError) -> Response:
        challenge = token_challenge(error, self._metadata, scope=scopes.ADMIN_SCOPE)
        return error_response(401, error.error or "unauthenticated", error.description, challenge=challenge)

    def same_origin(self, request: Request) -> bool:
        return self._sessions.same_origin(request)

    def security_schemes(self) -> dict[str, Any]:
        return {
            TOKEN_SCHEME: {
                "type": "oauth2",
                "description": "client credentials of an agent granted admin:api, with resource="
                + self._urls.admin_resource,
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": self._urls.token_endpoint,
                        "scopes": {scopes.ADMIN_SCOPE: "every admin operation"},
                    }
                },
            },
            SESSION_SCHEME: {
                "type": "apiKey",
                "in": "cookie",
                "name": self._sessions.cookie_name,
                "description": "an admin's web session; writes also need the X-CSRF-Token header",
            },
        }
