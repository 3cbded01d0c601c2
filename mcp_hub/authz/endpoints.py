"""HTTP endpoints of the authorization server and the resource metadata.

- `/.well-known/oauth-authorization-server`: RFC 8414 metadata.
- `/.well-known/oauth-protected-resource[/<mcp path>]`: RFC 9728 protected resource metadata.
- `/oauth/jwks.json`: RFC 7517 key set.
- `/oauth/token`: RFC 6749 §3.2 token endpoint (form-encoded POST; grant types registered in `AuthService`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_hub.authz.client_auth import ASSERTION_ALGORITHMS, authenticate_client
from mcp_hub.authz.http import oauth_error_response, oauth_json
from mcp_hub.authz.service import AuthService, TokenRequest
from mcp_hub.errors import OAuthError

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a path, not a secret
AUTHORIZE_PATH = "/oauth/authorize"
REGISTER_PATH = "/oauth/register"
REVOKE_PATH = "/oauth/revoke"
INTROSPECT_PATH = "/oauth/introspect"
JWKS_PATH = "/oauth/jwks.json"
_MAX_FORM_BYTES = 64 * 1024


async def read_form(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """An `application/x-www-form-urlencoded` body: (last value per key, all values per key)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "the body must be application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise OAuthError("invalid_request", "the request body is too large")
    try:
        multi = parse_qs(body.decode(), keep_blank_values=False, strict_parsing=False, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the body is not valid form data") from None
    for key, values in multi.items():
        # RFC 6749 §3.2: parameters MUST NOT be included more than once (`resource` is RFC 8707's exception).
        if len(values) > 1 and key != "resource":
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
    return {key: values[-1] for key, values in multi.items()}, multi


def authorization_server_metadata(service: AuthService) -> dict[str, Any]:
    """RFC 8414 §2."""
    settings = service.settings.auth
    secret_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"]
    # §2: "..._auth_signing_alg_values_supported" is REQUIRED wherever private_key_jwt is listed; these are
    # the algorithms `private_key_jwt` accepts for a client assertion (the same at all three endpoints).
    assertion_algorithms = sorted(ASSERTION_ALGORITHMS)
    metadata: dict[str, Any] = {
        "issuer": service.issuer,
        "authorization_endpoint": service.url(AUTHORIZE_PATH),
        "token_endpoint": service.url(TOKEN_PATH),
        "jwks_uri": service.url(JWKS_PATH),
        "scopes_supported": ["tool:*"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "token_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "code_challenge_methods_supported": ["S256"],
        "revocation_endpoint": service.url(REVOKE_PATH),
        "revocation_endpoint_auth_methods_supported": [*secret_methods, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "introspection_endpoint": service.url(INTROSPECT_PATH),
        "introspection_endpoint_auth_methods_supported": secret_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": settings.client_id_metadata_documents,
    }
    if settings.dynamic_client_registration:
        metadata["registration_endpoint"] = service.url(REGISTER_PATH)
    return metadata


def protected_resource_metadata(service: AuthService) -> dict[str, Any]:
    """RFC 9728 §2."""
    return {
        "resource": service.resource,
        "authorization_servers": [service.issuer],
        "jwks_uri": service.url(JWKS_PATH),
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["tool:*"],
        "resource_name": "mcp-hub",
        "resource_signing_alg_values_supported": ["ES256"],
    }


def auth_routes(service: AuthService) -> list[BaseRoute]:
    async def as_metadata(request: Request) -> Response:
        return JSONResponse(authorization_server_metadata(service))

    async def pr_metadata(request: Request) -> Response:
        return JSONResponse(protected_resource_metadata(service))

    async def jwks(request: Request) -> Response:
        return JSONResponse(service.keys.jwks(), headers={"Cache-Control": "public, max-age=60"})

    async def token_response(request: Request) -> dict[str, Any]:
        form, multi = await read_form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", "grant_type is required")
        handler = service.grant_handlers.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        agent = await authenticate_client(
            request,
            form,
            service.store,
            endpoint_url=service.url(TOKEN_PATH),
            verify_assertion=service.verify_assertion,
            find_public_client=service.find_client,
        )
        resource = service.validate_resource(form, multi.get("resource", []))
        return await handler(service, TokenRequest(form=form, agent=agent, resource=resource))

    async def token(request: Request) -> Response:
        try:
            return oauth_json(await token_response(request))
        except OAuthError as exc:
            return oauth_error_response(exc)

    mcp_path = service.settings.hub.mcp_path
    return [
        Route("/.well-known/oauth-authorization-server", as_metadata, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource" + mcp_path, pr_metadata, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource", pr_metadata, methods=["GET"]),
        Route(JWKS_PATH, jwks, methods=["GET"]),
        Route(TOKEN_PATH, token, methods=["POST"]),
        *service.extra_routes,
    ]
