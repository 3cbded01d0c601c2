"""Where the authorization server and the protected resource live: the issuer, the one resource, the paths.

The hub is the authorization server of exactly one protected resource, its MCP endpoint (RFC 8707: the `aud` of
every access token it issues). The issuer is the hub's public base URL (RFC 8414 §2, RFC 9207).
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


@dataclass(frozen=True, slots=True)
class OAuthUrls:
    """The issuer, the protected resource and the endpoints, as absolute URLs."""

    issuer: str
    resource: str
    mcp_path: str

    @classmethod
    def of(cls, settings: HubSettings) -> OAuthUrls:
        return cls(issuer=settings.public_base_url, resource=settings.mcp_resource_url, mcp_path=settings.hub.mcp_path)

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
        """RFC 8707 §2: the `resource` values of a request → the one resource this hub issues tokens for."""
        if len(requested) > 1:
            raise OAuthError("invalid_target", "one resource per request")
        if not requested:
            return self.resource
        # Exact match, tolerating the one trailing slash some clients add to a URL with a path.
        if requested[0] not in (self.resource, self.resource + "/"):
            raise OAuthError("invalid_target", f"this hub issues tokens only for {self.resource}")
        return self.resource
