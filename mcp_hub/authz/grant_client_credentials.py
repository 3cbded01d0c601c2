"""The `client_credentials` grant (RFC 6749 §4.4): a machine agent gets a token for its own grants.

MCP's client-credentials extension (`io.modelcontextprotocol/oauth-client-credentials`) uses exactly this;
no refresh token is issued (RFC 6749 §4.4.3): the agent asks again.
"""

from __future__ import annotations

from typing import Any

from mcp_hub.authz.service import AuthService, TokenRequest
from mcp_hub.errors import OAuthError


async def client_credentials_grant(service: AuthService, request: TokenRequest) -> dict[str, Any]:
    agent = request.agent
    if agent.is_public:
        raise OAuthError("unauthorized_client", "a public client cannot use client_credentials")
    if "client_credentials" not in agent.grant_types:
        raise OAuthError("unauthorized_client", "this client is not registered for client_credentials")
    granted = await service.granted_scopes(agent, None, request.form.get("scope"))
    return service.access_token_response(agent, granted)
