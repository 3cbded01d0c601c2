"""Where the authorization server and the protected resources live: the issuer, the resources, the paths.

The hub is the authorization server of its MCP endpoint (RFC 8707: the `aud` of the access tokens it issues by
default) and of each virtual server's endpoint (`<mcp>/v/<name>`, issue 11 §6: a token asked for with that URL as
`resource` is audience-bound to it alone), and of its admin API (`/admin/api`: client-credentials tokens with
the `admin:api` scope, docs/admin-api.md). The issuer is the hub's public base URL (RFC 8414 §2, RFC 9207).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mcp_hub.config.settings import HubSettings
from mcp_hub.errors import OAuthError

TOKEN_PATH: Final = "/oauth/token"  # noqa: S105 - a path, not a secret
AUTHORIZE_PATH: Final = "/oauth/authorize"
REGISTER_PATH: Final = "/oauth/register"
REVOKE_PATH: Final = "/oauth/revoke"
INTROSPECT_PATH: Final = "/oauth/introspect"
JWKS_PATH: Final = "/oauth/jwks.json"
AS_METADATA_PATH: Final = "/.well-known/oauth-authorization-server"
PR_METADATA_PATH: Final = "/.well-known/oauth-protected-resource"
ADMIN_API_PATH: Final = "/admin/api"
"""The admin JSON API (docs/admin-api.md): a protected resource of its own, `<issuer>/admin/api`."""


@dataclass(frozen=True, slots=True)
class OAuthUrls:
    """The issuer, the protected resource and the endpoints, as absolute URLs."""

    issuer: str
    resource: str
    mcp_path: str
    virtual_paths: tuple[str, ...] = ()
    """The paths of the virtual servers (`<mcp_path>/v/<name>`), each its own protected resource."""

    @classmethod
    def of(cls, settings: HubSettings, virtual_servers: Sequence[str] = ()) -> OAuthUrls:
        return cls(
            issuer=settings.public_base_url,
            resource=settings.mcp_resource_url,
            mcp_path=settings.hub.mcp_path,
            virtual_paths=tuple(f"{settings.hub.mcp_path}/v/{name}" for name in virtual_servers),
        )

    @property
    def virtual_resources(self) -> tuple[str, ...]:
        """The virtual servers' resource URLs (the only other audiences this hub issues tokens for)."""
        return tuple(self.url(path) for path in self.virtual_paths)

    @property
    def admin_resource(self) -> str:
        """The admin API's resource URL: the audience of admin tokens, accepted nowhere else (threat T10)."""
        return self.url(ADMIN_API_PATH)

    def resource_metadata_url_of(self, path: str) -> str:
        """RFC 9728 §3.1 for the resource at `path` (the hub's MCP path or a virtual server's)."""
        return self.url(PR_METADATA_PATH + path)

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def token_endpoint(self) -> str:
        return self.url(TOKEN_PATH)

    @property
    def resource_metadata_url(self) -> str:
        """RFC 9728 §3.1: the well-known URI with the resource's path appended."""
        return self.url(PR_METADATA_PATH + self.mcp_path)

    def accept_resource(self, requested: Sequence[str]) -> str:
        """RFC 8707 §2: the `resource` values of a request → the resource the token is for (the hub's MCP
        endpoint when none is named, or a virtual server's endpoint)."""
        if len(requested) > 1:
            raise OAuthError("invalid_target", "one resource per request")
        if not requested:
            return self.resource
        # Exact match, tolerating the one trailing slash some clients add to a URL with a path.
        asked = requested[0].removesuffix("/") if requested[0].endswith("/") else requested[0]
        if asked == self.resource or asked in self.virtual_resources or asked == self.admin_resource:
            return asked
        raise OAuthError(
            "invalid_target", f"this hub issues tokens only for {self.resource}, its virtual servers and its admin API"
        )
