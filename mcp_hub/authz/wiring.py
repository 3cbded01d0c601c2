"""Builds the `AuthService` with every grant type and client authentication method the hub supports."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.authz.authorize import authorize_routes
from mcp_hub.authz.client_metadata import resolve_client
from mcp_hub.authz.grant_authorization_code import authorization_code_grant
from mcp_hub.authz.grant_client_credentials import client_credentials_grant
from mcp_hub.authz.grant_refresh_token import refresh_token_grant
from mcp_hub.authz.introspection import introspection_routes
from mcp_hub.authz.private_key_jwt import PrivateKeyJwtVerifier
from mcp_hub.authz.registration import registration_routes
from mcp_hub.authz.revocation import revocation_routes
from mcp_hub.authz.service import AuthService
from mcp_hub.config.settings import HubSettings
from mcp_hub.web.login import login_routes
from mcp_hub.web.sessions import WebSessions


def build_auth_service(settings: HubSettings, engine: AsyncEngine) -> AuthService:
    service = AuthService(settings, engine)
    service.grant_handlers["client_credentials"] = client_credentials_grant
    service.grant_handlers["authorization_code"] = authorization_code_grant
    service.grant_handlers["refresh_token"] = refresh_token_grant
    sessions = WebSessions(
        service.store, public_base_url=settings.public_base_url, ttl_seconds=settings.auth.web_session_ttl_seconds
    )
    service.find_client = lambda client_id: resolve_client(service, client_id)
    service.extra_routes.extend(authorize_routes(service, sessions, find_client=service.find_client))
    service.extra_routes.extend(login_routes(service.store, sessions))
    service.verify_assertion = PrivateKeyJwtVerifier(
        service, find_client=lambda client_id: resolve_client(service, client_id)
    )
    service.extra_routes.extend(
        [*registration_routes(service), *revocation_routes(service), *introspection_routes(service)]
    )
    return service
