"""What the hub publishes about itself: RFC 8414 authorization server metadata, RFC 9728 protected resource
metadata (path and root forms, see docs/oauth.md), and the RFC 7517 key set that verifies its tokens. Both
documents name the DPoP proof algorithms (RFC 9449 §5.1, RFC 9728 §2); the MCP endpoints' documents say
`dpop_bound_access_tokens_required` when `[auth] dpop = "required"`.

The authorization server document is checked once, when the endpoints are built, by authlib's RFC 8414 model
(`AuthorizationServerMetadata.validate`): a document that breaks the RFC stops the hub from starting instead of
confusing clients.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcp_hub.authz.client_auth import ASSERTION_ALGORITHMS
from mcp_hub.authz.dpop import DPOP_ALGORITHMS
from mcp_hub.authz.http import EVERY_SCOPE
from mcp_hub.authz.keys import ALGORITHM, KeyRing
from mcp_hub.authz.scopes import ADMIN_SCOPE
from mcp_hub.authz.urls import (
    ADMIN_API_PATH,
    AS_METADATA_PATH,
    AUTHORIZE_PATH,
    INTROSPECT_PATH,
    JWKS_PATH,
    PR_METADATA_PATH,
    REGISTER_PATH,
    REVOKE_PATH,
    OAuthUrls,
)
from mcp_hub.config.settings import AuthSection
from mcp_hub.domain import ClientAuthMethod, GrantType


def authorization_server_metadata(urls: OAuthUrls, settings: AuthSection) -> dict[str, Any]:
    """RFC 8414 §2."""
    authenticated = [
        ClientAuthMethod.CLIENT_SECRET_BASIC,
        ClientAuthMethod.CLIENT_SECRET_POST,
        ClientAuthMethod.PRIVATE_KEY_JWT,
    ]
    # §2: "..._auth_signing_alg_values_supported" is REQUIRED wherever private_key_jwt is listed; these are
    # the algorithms `private_key_jwt` accepts for a client assertion (the same at all three endpoints).
    assertion_algorithms = sorted(ASSERTION_ALGORITHMS)
    metadata: dict[str, Any] = {
        "issuer": urls.issuer,
        "authorization_endpoint": urls.url(AUTHORIZE_PATH),
        "token_endpoint": urls.token_endpoint,
        "jwks_uri": urls.url(JWKS_PATH),
        "scopes_supported": list(EVERY_SCOPE),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": [
            GrantType.AUTHORIZATION_CODE,
            GrantType.REFRESH_TOKEN,
            GrantType.CLIENT_CREDENTIALS,
        ],
        "token_endpoint_auth_methods_supported": [*authenticated, ClientAuthMethod.NONE],
        "token_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "code_challenge_methods_supported": ["S256"],
        "revocation_endpoint": urls.url(REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": [*authenticated, ClientAuthMethod.NONE],
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "introspection_endpoint": urls.url(INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": authenticated,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": settings.client_id_metadata_documents,
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }
    if settings.dynamic_client_registration:
        metadata["registration_endpoint"] = urls.url(REGISTER_PATH)
    return metadata


def protected_resource_metadata(
    urls: OAuthUrls, resource: str | None = None, *, dpop_required: bool = False
) -> dict[str, Any]:
    """RFC 9728 §2, for the hub's MCP endpoint or (`resource`) a virtual server's; `dpop_required`: it accepts
    DPoP-bound tokens only."""
    return {
        "resource": resource or urls.resource,
        "authorization_servers": [urls.issuer],
        "jwks_uri": urls.url(JWKS_PATH),
        "bearer_methods_supported": ["header"],
        "scopes_supported": list(EVERY_SCOPE),
        "resource_name": "mcp-hub",
        "resource_signing_alg_values_supported": [ALGORITHM],
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
        "dpop_bound_access_tokens_required": dpop_required,
    }


class MetadataEndpoints:
    """The well-known documents and the JWKS."""

    def __init__(self, urls: OAuthUrls, settings: AuthSection, keys: KeyRing) -> None:
        self._server = authorization_server_metadata(urls, settings)
        checked: Any = AuthorizationServerMetadata(self._server)  # authlib is untyped
        checked.validate()
        required = settings.dpop == "required"
        self._resource = protected_resource_metadata(urls, dpop_required=required)
        self._keys = keys
        self._urls = urls
        self._mcp_path = urls.mcp_path
        # A virtual server is its own protected resource (issue 11 §6): its document names its own URL.
        self._virtual = {
            path: protected_resource_metadata(urls, urls.url(path), dpop_required=required)
            | {"resource_name": f"mcp-hub {path}"}
            for path in urls.virtual_paths
        }

    def routes(self) -> list[Route]:
        admin = protected_resource_metadata(self._urls, self._urls.admin_resource) | {
            "resource_name": "mcp-hub admin API",
            "scopes_supported": [ADMIN_SCOPE],
        }
        return [
            Route(PR_METADATA_PATH + ADMIN_API_PATH, partial(self._virtual_metadata, admin), methods=["GET"]),
            Route(AS_METADATA_PATH, self._server_metadata, methods=["GET"]),
            Route(PR_METADATA_PATH + self._mcp_path, self._resource_metadata, methods=["GET"]),
            Route(PR_METADATA_PATH, self._resource_metadata, methods=["GET"]),
            *(
                Route(PR_METADATA_PATH + path, partial(self._virtual_metadata, document), methods=["GET"])
                for path, document in self._virtual.items()
            ),
            Route(JWKS_PATH, self._jwks, methods=["GET"]),
        ]

    async def _virtual_metadata(self, document: dict[str, Any], _request: Request) -> Response:
        return JSONResponse(document)

    async def _server_metadata(self, _request: Request) -> Response:
        return JSONResponse(self._server)

    async def _resource_metadata(self, _request: Request) -> Response:
        return JSONResponse(self._resource)

    async def _jwks(self, _request: Request) -> Response:
        return JSONResponse(self._keys.jwks(), headers={"Cache-Control": "public, max-age=60"})
