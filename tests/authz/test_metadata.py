"""The discovery documents: RFC 8414 authorization server metadata and RFC 9728 protected resource metadata.

Both are what an off-the-shelf MCP client reads before it asks for anything, so they are pinned member by
member: a missing member is a client that cannot find an endpoint or picks a method the hub refuses.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import pytest
from mcp.shared.auth_utils import check_resource_allowed

from tests.authz.conftest import make_agent
from tests.conftest import InProcessHub, in_process_hub, write_config

pytestmark = pytest.mark.anyio

ASSERTION_ALGORITHMS = ["ES256", "Ed25519", "EdDSA", "RS256"]
CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[InProcessHub]:
    """The endpoints need no downstream: an in-process hub without connectors."""
    async with in_process_hub(write_config(tmp_path_factory.mktemp("metadata"), {}, auth=True)) as running:
        yield running


async def get_json(hub: InProcessHub, url: str) -> dict[str, Any]:
    async with hub.client(timeout=10) as client:
        response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


async def test_the_authorization_server_metadata_lists_every_endpoint_method_and_algorithm(hub: InProcessHub) -> None:
    """RFC 8414 §2 (mandated): the whole document, including the `*_auth_signing_alg_values_supported` that
    §2 makes REQUIRED for every endpoint listing `private_key_jwt`, and every assertion `alg` the hub accepts
    (Ed25519 included, RFC 9864). Threats T02 (only asymmetric algorithms are advertised) and T04 (S256 only)."""
    base = hub.base_url
    metadata = await get_json(hub, f"{base}/.well-known/oauth-authorization-server")

    assert metadata == {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "jwks_uri": f"{base}/oauth/jwks.json",
        "registration_endpoint": f"{base}/oauth/register",
        "scopes_supported": ["tool:*", "prompt:*", "resource:*"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "code_challenge_methods_supported": ["S256"],
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": [*CLIENT_AUTH_METHODS, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": CLIENT_AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": True,
        "dpop_signing_alg_values_supported": ASSERTION_ALGORITHMS,
    }
    assert "none" not in metadata["token_endpoint_auth_signing_alg_values_supported"]  # RFC 8414 §2: MUST NOT


async def test_the_protected_resource_metadata_names_the_mcp_endpoint_in_both_forms(hub: InProcessHub) -> None:
    """RFC 9728 §3.1 (mandated): the path form, `/.well-known/oauth-protected-resource/mcp`, describes the
    resource `<base>/mcp` (§3.3: identical to the URL it was derived from).

    The root form is our choice, documented in docs/oauth.md: the MCP authorization spec has clients fall back
    to `/.well-known/oauth-protected-resource` at the root, and expects it to describe the MCP endpoint. The
    hub protects exactly one resource, so the root form serves the same document (`resource` = `<base>/mcp`)
    rather than a `resource` = `<base>` that the SDK client would then send as its RFC 8707 `resource`,
    which the token endpoint refuses (`invalid_target`). Threat T01 (tokens are audience-bound to /mcp)."""
    path_form = await get_json(hub, f"{hub.base_url}/.well-known/oauth-protected-resource/mcp")
    root_form = await get_json(hub, f"{hub.base_url}/.well-known/oauth-protected-resource")

    assert path_form == {
        "resource": hub.url,
        "authorization_servers": [hub.base_url],
        "jwks_uri": f"{hub.base_url}/oauth/jwks.json",
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["tool:*", "prompt:*", "resource:*"],
        "resource_name": "mcp-hub",
        "resource_signing_alg_values_supported": ["ES256"],
        "dpop_signing_alg_values_supported": ASSERTION_ALGORITHMS,
        "dpop_bound_access_tokens_required": False,
    }
    assert root_form == path_form
    # What the SDK's OAuth client checks before it trusts the document for the server URL it was given.
    assert check_resource_allowed(requested_resource=hub.url, configured_resource=root_form["resource"])


async def test_a_token_for_the_resource_the_root_form_names_is_accepted(hub: InProcessHub) -> None:
    """RFC 8707 §2 (mandated) with our root-form choice: the resource a client learns from either form is the
    one the token endpoint issues tokens for."""
    root_form = await get_json(hub, f"{hub.base_url}/.well-known/oauth-protected-resource")
    agent = await make_agent(hub, "root-form-reader", "tool:faults__*")
    async with hub.client(timeout=10) as client:
        response = await client.post(
            f"{hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "resource": root_form["resource"]},
            auth=(agent.client_id, agent.client_secret),
        )
    assert response.status_code == 200, response.text
