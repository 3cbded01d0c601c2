"""Client authentication at the token, revocation and introspection endpoints.

RFC 6749 §2.3.1 (`client_secret_basic`: HTTP Basic with form-urlencoded id and secret;
`client_secret_post`: the same in the body), RFC 7523 §2.2 (`private_key_jwt`, see
`mcp_hub.authz.private_key_jwt`) and public clients (`none`, RFC 6749 §2.1). A client uses exactly one
method per request (RFC 6749 §2.3), the one it registered; every failure is `invalid_client` (401), with
no hint of whether the client exists.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Final
from urllib.parse import unquote_plus

from starlette.requests import Request

from mcp_hub.bodies import FormData
from mcp_hub.credentials import same_digest
from mcp_hub.db.identities import AgentRecord, IdentityStore
from mcp_hub.domain import SECRET_METHODS, ClientAuthMethod
from mcp_hub.errors import OAuthError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS: Final = frozenset({"RS256", "ES256", "EdDSA", "Ed25519"})
"""The `alg` values a `private_key_jwt` client assertion may use (`mcp_hub.authz.private_key_jwt`), as the
RFC 8414 metadata advertises them for the token, revocation and introspection endpoints."""

AssertionVerifier = Callable[[str, str], Awaitable[AgentRecord]]
"""(client_assertion, endpoint URL) → the agent it authenticates, or `OAuthError(invalid_client)`."""
ClientFinder = Callable[[str], Awaitable[AgentRecord | None]]
"""client_id → the agent (a Client ID Metadata Document client resolved and stored), or None."""


def _invalid_client(description: str = "client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise _invalid_client("only HTTP Basic client authentication is accepted in the Authorization header")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise _invalid_client("malformed HTTP Basic credentials") from None
    client_id, separator, secret = decoded.partition(":")
    if not separator:
        raise _invalid_client("malformed HTTP Basic credentials")
    return unquote_plus(client_id), unquote_plus(secret)


class ClientAuthenticator:
    """Authenticates the client of a request to the token, revocation or introspection endpoint."""

    def __init__(
        self, identities: IdentityStore, *, verify_assertion: AssertionVerifier, find_client: ClientFinder
    ) -> None:
        self._identities = identities
        self._verify_assertion = verify_assertion
        self._find_client = find_client

    async def authenticate(
        self, request: Request, form: FormData, *, endpoint_url: str, allow_public: bool = True
    ) -> AgentRecord:
        """The agent the request authenticates as; `OAuthError("invalid_client", ..., 401)` otherwise."""
        basic = _basic_credentials(request)
        posted_secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        methods_used = sum(item is not None for item in (basic, posted_secret, assertion))
        if methods_used > 1:
            raise OAuthError("invalid_request", "use exactly one client authentication method")

        if basic is not None:
            client_id, secret = basic
            if form.get("client_id") not in (None, client_id):
                raise OAuthError("invalid_request", "client_id in the body differs from the Basic credentials")
            return await self._by_secret(client_id, secret, ClientAuthMethod.CLIENT_SECRET_BASIC)
        if posted_secret is not None:
            client_id = form.get("client_id")
            if client_id is None:
                raise _invalid_client()
            return await self._by_secret(client_id, posted_secret, ClientAuthMethod.CLIENT_SECRET_POST)
        if assertion is not None:
            if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
                raise _invalid_client(f"client_assertion_type must be {CLIENT_ASSERTION_TYPE}")
            agent = await self._verify_assertion(assertion, endpoint_url)
            if form.get("client_id") not in (None, agent.client_id):
                raise _invalid_client()
            return agent

        client_id = form.get("client_id")
        if client_id is None or not allow_public:
            raise _invalid_client()
        # A public client may be known by its Client ID Metadata Document URL only (fetched on first sight).
        agent = await self._find_client(client_id)
        if agent is None or not agent.enabled or not agent.is_public:
            raise _invalid_client()
        return agent

    async def _by_secret(self, client_id: str, secret: str, method: ClientAuthMethod) -> AgentRecord:
        agent = await self._identities.agent_by_client_id(client_id)
        if agent is None or not agent.enabled or not same_digest(secret, agent.secret_sha256):
            raise _invalid_client()
        # Both secret methods carry the same secret; a client registered for one may use the other, but never
        # a secret-less or key-based client.
        if agent.auth_method not in SECRET_METHODS:
            raise _invalid_client(f"this client authenticates with {agent.auth_method}, not {method}")
        return agent
