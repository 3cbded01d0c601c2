"""`AuthService`: the authorization server's and resource server's parts, wired from the settings."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.routing import BaseRoute

from mcp_hub.authz import scopes
from mcp_hub.authz.client_auth import AssertionVerifier
from mcp_hub.authz.decisions import AccessDecider
from mcp_hub.authz.keys import KeyRing
from mcp_hub.authz.tokens import TokenService
from mcp_hub.config.settings import HubSettings
from mcp_hub.db.auth_store import AgentRecord, AuthStore
from mcp_hub.errors import OAuthError

MAX_ACCESS_TOKEN_SECONDS = 3600
KEY_RELOAD_SECONDS = 5.0
"""How soon a running hub picks up a key rotated by another process (well inside the publish-ahead time)."""


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request after client authentication and `resource` validation."""

    form: Mapping[str, str]
    agent: AgentRecord
    resource: str


GrantHandler = Callable[["AuthService", TokenRequest], Awaitable[dict[str, Any]]]
"""One grant type of the token endpoint: returns the RFC 6749 §5.1 response body, or raises `OAuthError`."""


class AuthService:
    """Store, keys, tokens and decisions of one hub process; the grant types the token endpoint knows."""

    def __init__(self, settings: HubSettings, engine: AsyncEngine) -> None:
        auth = settings.auth
        self.settings = settings
        self.issuer = settings.public_base_url
        self.resource = settings.mcp_resource_url
        self.store = AuthStore(engine)
        self.access_token_seconds = min(auth.access_token_ttl_seconds, MAX_ACCESS_TOKEN_SECONDS)
        self.keys = KeyRing(
            self.store,
            publish_ahead=timedelta(seconds=auth.key_publish_ahead_seconds),
            longest_token_life=timedelta(seconds=MAX_ACCESS_TOKEN_SECONDS + auth.clock_skew_seconds),
        )
        self.tokens = TokenService(
            self.keys, issuer=self.issuer, resource=self.resource, skew_seconds=auth.clock_skew_seconds
        )
        self.decider = AccessDecider(self.store, ttl_seconds=auth.decision_cache_seconds)
        self.grant_handlers: dict[str, GrantHandler] = {}
        self.verify_assertion: AssertionVerifier | None = None
        # How a client id becomes an agent: the store, or (wired) Client ID Metadata Documents as well.
        self.find_client: Callable[[str], Awaitable[AgentRecord | None]] = self.store.agent_by_client_id
        # Routes of optional parts (authorize and login pages, registration, revocation, introspection),
        # added by `mcp_hub.authz.wiring`.
        self.extra_routes: list[BaseRoute] = []

    async def start(self) -> None:
        await self.keys.load()

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[AuthService]:
        """Keys loaded, and reloaded every `KEY_RELOAD_SECONDS` while the hub runs."""
        await self.start()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.keys.reload_periodically, KEY_RELOAD_SECONDS)
            try:
                yield self
            finally:
                tasks.cancel_scope.cancel()

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 §3.1: the well-known URI with the resource's path appended."""
        return self.url("/.well-known/oauth-protected-resource" + self.settings.hub.mcp_path)

    def validate_resource(self, form: Mapping[str, str], all_resources: list[str]) -> str:
        """RFC 8707 §2: the only resource this hub issues tokens for is its MCP endpoint."""
        if len(all_resources) > 1:
            raise OAuthError("invalid_target", "one resource per request")
        resource = form.get("resource")
        if resource is None:
            return self.resource
        # Exact match, tolerating the one trailing slash some clients add to a URL with a path.
        if resource not in (self.resource, self.resource + "/"):
            raise OAuthError("invalid_target", f"this hub issues tokens only for {self.resource}")
        return self.resource

    async def granted_scopes(self, agent: AgentRecord, user_id: str | None, requested: str | None) -> list[str]:
        """RFC 6749 §3.3: requested ∩ granted (all granted when nothing was requested); `invalid_scope` if empty."""
        try:
            wanted = scopes.parse_scope(requested)
        except ValueError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        subject = await self.store.subject_grants(agent.id, user_id)
        if not subject.enabled:
            if user_id is None:  # the agent itself, disabled since it authenticated (RFC 6749 §5.2: 401)
                raise OAuthError("invalid_client", "this client is disabled", 401)
            raise OAuthError("access_denied", "the user or the client is disabled")
        narrowed = scopes.narrow(wanted, subject.patterns)
        if not narrowed:
            raise OAuthError("invalid_scope", "none of the requested scopes is granted")
        return narrowed

    def access_token_response(
        self,
        agent: AgentRecord,
        granted: list[str],
        *,
        user_id: str | None = None,
        family_id: str | None = None,
        refresh_token: str | None = None,
    ) -> dict[str, Any]:
        """RFC 6749 §5.1 success body with a fresh RFC 9068 access token."""
        token, claims = self.tokens.issue(
            client_id=agent.client_id,
            scopes=granted,
            lifetime_seconds=self.access_token_seconds,
            user_id=user_id,
            family_id=family_id,
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": claims.expires_at - claims.issued_at,
            "scope": scopes.format_scope(granted),
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        return body
