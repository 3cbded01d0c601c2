"""The `client_credentials` grant (RFC 6749 §4.4): a machine agent gets a token for its own grants.

MCP's client-credentials extension (`io.modelcontextprotocol/oauth-client-credentials`) uses exactly this;
no refresh token is issued (RFC 6749 §4.4.3): the agent asks again. With a DPoP proof the token is bound to its key
(RFC 9449 §5). It is also the only grant that issues a token
for the admin API (`resource=<issuer>/admin/api`; the token endpoint refuses that resource to the others).
"""

from __future__ import annotations

from typing import Any, ClassVar

from mcp_hub.authz.granting import ScopeGranter
from mcp_hub.authz.token_endpoint import RegisteredGrant, TokenRequest
from mcp_hub.authz.tokens import TokenService
from mcp_hub.domain import GrantType
from mcp_hub.errors import OAuthError


class ClientCredentialsGrant(RegisteredGrant):
    grant_type: ClassVar[GrantType] = GrantType.CLIENT_CREDENTIALS

    def __init__(self, granter: ScopeGranter, tokens: TokenService, *, admin_resource: str | None = None) -> None:
        """`admin_resource`: the admin API's URL (a token for it is decided by `ScopeGranter` apart)."""
        self._granter = granter
        self._tokens = tokens
        self._admin_resource = admin_resource

    async def __call__(self, request: TokenRequest) -> dict[str, Any]:
        if request.agent.is_public:
            raise OAuthError("unauthorized_client", "a public client cannot use client_credentials")
        agent = self.registered_client(request)
        admin = request.resource == self._admin_resource
        granted = await self._granter.for_agent(agent, request.form.get("scope"), admin=admin)
        return self._tokens.token_response(agent.client_id, granted, audience=request.resource, jkt=request.jkt)
