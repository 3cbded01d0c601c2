"""Dynamic Client Registration: RFC 7591 at `POST /oauth/register` (when `[auth] dynamic_client_registration`).

Anyone may register, so a registered client gets no authority of its own: source `dcr`, no grants, grant
types `authorization_code` (and `refresh_token`) only. It can act only on a user's behalf, with the user's
grants, after that user logged in and consented. `client_credentials` is refused (only admins create machine
agents). The MCP authorization spec keeps DCR for clients that predate Client ID Metadata Documents.

Accepted metadata (RFC 7591 §2; unknown members are ignored, §2): `redirect_uris` (required, 1-10; https,
http on a loopback host, or a private-use scheme with a dot for native apps, RFC 8252 §7.1 and §7.3; never
a fragment, RFC 6749 §3.1.2), `token_endpoint_auth_method` (`none`, `client_secret_basic` — the default —,
`client_secret_post`, `private_key_jwt` with inline `jwks`), `grant_types`, `response_types` (`code`),
`client_name`, `client_uri`. The body is capped at 16 KiB and every field's length is bounded. Errors are
RFC 7591 §3.2.2: 400 `invalid_redirect_uri` or `invalid_client_metadata`.

The answer (RFC 7591 §3.2.1, 201) repeats the metadata as registered, with `client_id`,
`client_id_issued_at`, and for confidential clients a `client_secret` (shown once, stored as SHA-256) with
`client_secret_expires_at: 0` (it does not expire). No registration access token is issued (RFC 7592
client management is not offered).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from typing import Any, Final, cast
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz.http import oauth_error_response, oauth_json
from mcp_hub.authz.private_key_jwt import parse_client_jwks
from mcp_hub.authz.urls import REGISTER_PATH
from mcp_hub.bodies import read_json_object
from mcp_hub.credentials import CLIENT_SECRET_PREFIX, new_secret, sha256_hex
from mcp_hub.db.identities import AgentRecord, ClientMetadata, IdentityStore, NewAgent
from mcp_hub.domain import SECRET_METHODS, AgentSource, ClientAuthMethod, ClientId, GrantType
from mcp_hub.errors import ConflictError, InvalidInputError, OAuthError

MAX_BODY_BYTES: Final = 16 * 1024
MAX_REDIRECT_URIS: Final = 10
MAX_URI_LENGTH: Final = 2000
MAX_NAME_LENGTH: Final = 200
GRANT_TYPES: Final = frozenset({GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN})
_SCHEME: Final = re.compile(r"^[a-z][a-z0-9+.-]*$")
_SPACE_OR_CONTROL: Final = re.compile(r"[\x00-\x20\x7f]")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_LOOPBACK_NAMES: Final = frozenset({"localhost"})


def _metadata_error(description: str) -> OAuthError:
    return OAuthError("invalid_client_metadata", description)


def _redirect_error(description: str) -> OAuthError:
    return OAuthError("invalid_redirect_uri", description)


def _is_loopback_host(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_redirect_uri(uri: object) -> str:
    """One redirect URI as OAuth 2.1 and RFC 8252 allow it; `OAuthError(invalid_redirect_uri)` otherwise.

    https with a host; http only on a loopback host (a native app's local listener, RFC 8252 §7.3); or a
    private-use scheme in reverse-domain form such as `com.example.app:/cb` (RFC 8252 §7.1: it must contain a
    dot, which also rules out `javascript:`, `data:`, `file:` and friends). No fragment, no user info, no
    whitespace or control characters.
    """
    if not isinstance(uri, str) or not uri:
        raise _redirect_error("every redirect URI must be a non-empty string")
    if len(uri) > MAX_URI_LENGTH:
        raise _redirect_error(f"redirect URIs are limited to {MAX_URI_LENGTH} characters")
    if _SPACE_OR_CONTROL.search(uri):
        raise _redirect_error("a redirect URI must not contain whitespace or control characters")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
    except ValueError:
        raise _redirect_error(f"{uri!r} is not a valid URI") from None
    if "#" in uri:
        raise _redirect_error("a redirect URI must not have a fragment (RFC 6749 §3.1.2)")
    scheme = parts.scheme
    if scheme in ("https", "http"):
        if not host:
            raise _redirect_error(f"{uri!r} has no host")
        if parts.username is not None or parts.password is not None:
            raise _redirect_error("a redirect URI must not carry user information")
        if scheme == "http" and not _is_loopback_host(host):
            raise _redirect_error("http redirect URIs are allowed only on a loopback host (RFC 8252 §7.3); use https")
        return uri
    if not _SCHEME.match(scheme) or "." not in scheme:
        raise _redirect_error(
            f"scheme {scheme!r} is not allowed: use https, loopback http, or a reverse-domain private-use scheme"
        )
    return uri


def validate_redirect_uris(value: object, *, required: bool = True) -> tuple[str, ...]:
    """The `redirect_uris` member: 1-10 valid URIs (see `validate_redirect_uri`), without duplicates."""
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not value:
        raise _redirect_error("redirect_uris must be a non-empty array (the authorization code flow needs one)")
    uris = cast("list[object]", value)
    if len(uris) > MAX_REDIRECT_URIS:
        raise _redirect_error(f"at most {MAX_REDIRECT_URIS} redirect URIs may be registered")
    return tuple(dict.fromkeys(validate_redirect_uri(uri) for uri in uris))


def optional_text(metadata: dict[str, Any], name: str, limit: int = MAX_NAME_LENGTH) -> str | None:
    value = metadata.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > limit or _CONTROL.search(value):
        raise _metadata_error(f"{name} must be a single-line string of at most {limit} characters")
    return value


def optional_https_uri(metadata: dict[str, Any], name: str) -> str | None:
    value = optional_text(metadata, name, MAX_URI_LENGTH)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        raise _metadata_error(f"{name} is not a valid URI") from None
    if parts.scheme != "https" or not parts.hostname or parts.username is not None:
        raise _metadata_error(f"{name} must be an https URL")
    return value


def grant_types_of(metadata: dict[str, Any]) -> tuple[GrantType, ...]:
    """`grant_types` (default `authorization_code`, RFC 7591 §2): only user-delegated grants are allowed."""
    value: object = metadata.get("grant_types", ["authorization_code"])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in cast("list[object]", value)):
        raise _metadata_error("grant_types must be an array of strings")
    named = tuple(dict.fromkeys(cast("list[str]", value)))
    if GrantType.CLIENT_CREDENTIALS in named:
        raise _metadata_error(
            "client_credentials is not available to registered clients: an admin creates machine agents"
        )
    unsupported = [grant for grant in named if grant not in GRANT_TYPES]
    if unsupported:
        raise _metadata_error(f"unsupported grant_types {unsupported}: use authorization_code and refresh_token")
    grants = tuple(GrantType(grant) for grant in named)
    if GrantType.AUTHORIZATION_CODE not in grants:
        raise _metadata_error("grant_types must include authorization_code")
    response_types: object = metadata.get("response_types", ["code"])
    if response_types != ["code"]:
        raise _metadata_error('response_types must be ["code"]')
    return grants


def _auth_method_and_jwks(metadata: dict[str, Any]) -> tuple[ClientAuthMethod, dict[str, Any] | None]:
    named: object = metadata.get("token_endpoint_auth_method", ClientAuthMethod.CLIENT_SECRET_BASIC)
    if named not in tuple(ClientAuthMethod):
        raise _metadata_error(f"token_endpoint_auth_method must be one of {', '.join(ClientAuthMethod)}")
    method = ClientAuthMethod(cast("str", named))
    if "jwks_uri" in metadata:
        raise _metadata_error("jwks_uri is not supported here: register the public keys inline with jwks")
    jwks: object = metadata.get("jwks")
    if method is not ClientAuthMethod.PRIVATE_KEY_JWT:
        if jwks is not None:
            raise _metadata_error("jwks is only used with token_endpoint_auth_method private_key_jwt")
        return method, None
    if jwks is None:
        raise _metadata_error("private_key_jwt needs the client's public keys in jwks")
    try:
        return method, parse_client_jwks(jwks)
    except InvalidInputError as exc:
        raise _metadata_error(str(exc)) from None


def registration_response(agent: AgentRecord, secret: str | None) -> dict[str, Any]:
    """RFC 7591 §3.2.1: the client information response."""
    body: dict[str, Any] = {
        "client_id": agent.client_id,
        "client_id_issued_at": int(agent.created_at.timestamp()),
        "redirect_uris": list(agent.redirect_uris),
        "grant_types": list(agent.grant_types),
        "response_types": ["code"],
        "token_endpoint_auth_method": agent.auth_method,
    }
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    if agent.display_name is not None:
        body["client_name"] = agent.display_name
    if agent.client_uri is not None:
        body["client_uri"] = agent.client_uri
    if agent.jwks is not None:
        body["jwks"] = agent.jwks
    return body


class ClientRegistration:
    """`POST /oauth/register`: stores a client (source `dcr`, no grants) and answers as RFC 7591 §3.2.1 says."""

    def __init__(self, identities: IdentityStore) -> None:
        self._identities = identities

    def routes(self) -> list[Route]:
        return [Route(REGISTER_PATH, self._register, methods=["POST"])]

    async def _register(self, request: Request) -> Response:
        try:
            try:
                metadata = await read_json_object(request, MAX_BODY_BYTES)
            except InvalidInputError as exc:
                raise _metadata_error(str(exc)) from None
            return oauth_json(await self.register(metadata), status=201)
        except OAuthError as exc:
            return oauth_error_response(exc)

    async def register(self, metadata: dict[str, Any]) -> dict[str, Any]:
        """Validate `metadata`, store the client and return the RFC 7591 answer."""
        redirect_uris = validate_redirect_uris(metadata.get("redirect_uris"))
        grant_types = grant_types_of(metadata)
        method, jwks = _auth_method_and_jwks(metadata)
        described = ClientMetadata(
            auth_method=method,
            jwks=jwks,
            redirect_uris=redirect_uris,
            grant_types=grant_types,
            display_name=optional_text(metadata, "client_name"),
            client_uri=optional_https_uri(metadata, "client_uri"),
        )
        secret = new_secret(CLIENT_SECRET_PREFIX) if method in SECRET_METHODS else None
        for _attempt in range(3):  # the random name may collide (48 bits): try again
            try:
                agent = await self._identities.create_agent(
                    NewAgent(
                        name="dcr-" + secrets.token_hex(6),
                        client_id=ClientId("dcr_" + secrets.token_urlsafe(16)),
                        source=AgentSource.DCR,
                        metadata=described,
                        secret_sha256=None if secret is None else sha256_hex(secret),
                    )
                )
            except ConflictError:
                continue
            return registration_response(agent, secret)
        raise OAuthError("server_error", "could not allocate a client id; try again", status=500)
