"""Dynamic Client Registration (RFC 7591) at /oauth/register: answers, limits, and what a DCR client may do."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull

from mcp_hub.authz.registration import validate_redirect_uris
from mcp_hub.domain import Role
from mcp_hub.errors import OAuthError
from tests.authz.conftest import auth_service, bearer
from tests.authz.flow import PASSWORD, App, Pkce, code_for, exchange
from tests.conftest import RunningHub, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

LOOPBACK_REDIRECT = "http://127.0.0.1:33418/callback"


async def register(hub: RunningHub, metadata: Any, **headers: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        if isinstance(metadata, bytes):
            return await client.post(f"{hub.base_url}/oauth/register", content=metadata, headers=headers)
        return await client.post(f"{hub.base_url}/oauth/register", json=metadata, headers=headers)


async def test_a_public_client_registers_and_gets_an_id_but_no_secret_and_no_grants(auth_hub: RunningHub) -> None:
    """RFC 7591 §3.2.1 answer; chosen: source dcr, a dcr-<random> name, no grants of its own."""
    metadata = {
        "redirect_uris": [LOOPBACK_REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Example Desktop App",
        "client_uri": "https://app.example.com",
        "software_id": "ignored-unknown-member",
    }

    response = await register(auth_hub, metadata)

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert "client_secret" not in body
    assert body["redirect_uris"] == [LOOPBACK_REDIRECT]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["client_name"] == "Example Desktop App"
    assert isinstance(body["client_id_issued_at"], int)
    OAuthClientInformationFull.model_validate(body)  # the SDK accepts the answer
    identities = auth_hub.hub.stores.identities
    agent = await identities.agent_by_client_id(body["client_id"])
    assert agent is not None
    assert agent.source == "dcr"
    assert agent.name.startswith("dcr-")
    assert await identities.grants_of(agent_id=agent.id) == []


async def test_a_confidential_client_gets_its_secret_once_and_cannot_use_client_credentials(
    auth_hub: RunningHub,
) -> None:
    """RFC 7591 §2 default method client_secret_basic; chosen: DCR clients never get client_credentials."""
    response = await register(auth_hub, {"redirect_uris": ["https://app.example.com/cb"]})
    body = response.json()

    async with httpx2.AsyncClient() as client:
        token = await client.post(
            f"{auth_hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "resource": auth_hub.url},
            auth=(body["client_id"], body["client_secret"]),
        )

    assert response.status_code == 201, response.text
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["client_secret"].startswith("mcphs_")
    assert body["client_secret_expires_at"] == 0
    assert token.status_code == 400
    assert token.json()["error"] == "unauthorized_client"


async def test_a_key_client_registers_its_public_keys(auth_hub: RunningHub) -> None:
    """RFC 7591 §2 `jwks` with private_key_jwt; the keys are stored as public JWKs."""
    key = ECKey.generate_key("P-256", private=True)
    jwks = {"keys": [{**key.as_dict(private=False), "kid": "k1"}]}

    response = await register(
        auth_hub,
        {
            "redirect_uris": ["https://app.example.com/cb"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks,
        },
    )

    assert response.status_code == 201, response.text
    assert "client_secret" not in response.json()
    assert response.json()["jwks"]["keys"][0]["kid"] == "k1"


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://app.example.com/oauth/callback",
        "http://127.0.0.1:8080/callback",
        "http://[::1]:8080/callback",
        "http://localhost:3000/callback",
        "com.example.app:/oauth2redirect",
    ],
)
def test_redirect_uris_of_web_and_native_apps_are_accepted(redirect_uri: str) -> None:
    """OAuth 2.1 / RFC 8252 §7.1, §7.3: https, loopback http, reverse-domain private-use schemes (the rules, as
    registration and Client ID Metadata Documents both apply them)."""
    assert validate_redirect_uris([redirect_uri]) == (redirect_uri,)


@pytest.mark.parametrize(
    "redirect_uris",
    [
        ["http://app.example.com/callback"],
        ["https://app.example.com/callback#fragment"],
        ["javascript:alert(1)"],
        ["data:text/html,<script>alert(1)</script>"],
        ["file:///etc/passwd"],
        ["myapp:/callback"],
        ["https://user:password@app.example.com/callback"],
        ["https://app.example.com/call back"],
        ["https:///no-host"],
        [""],
        [42],
        [],
        "https://app.example.com/not-an-array",
        None,
        [f"https://app.example.com/{index}" for index in range(11)],
        ["https://app.example.com/" + "a" * 2000],
    ],
)
def test_unsafe_or_malformed_redirect_uris_are_refused(redirect_uris: object) -> None:
    """RFC 7591 §3.2.2 `invalid_redirect_uri`: no fragments, no plain http off loopback, no script schemes."""
    with pytest.raises(OAuthError) as refused:
        validate_redirect_uris(redirect_uris)

    assert refused.value.error == "invalid_redirect_uri"


@pytest.mark.parametrize(
    ("redirect_uris", "status", "error"),
    [(["com.example.app:/oauth2redirect"], 201, None), (["javascript:alert(1)"], 400, "invalid_redirect_uri")],
)
async def test_the_endpoint_applies_the_redirect_uri_rules(
    auth_hub: RunningHub, redirect_uris: list[str], status: int, error: str | None
) -> None:
    """RFC 7591 §3.2.1 and §3.2.2: what the rules accept is registered, what they refuse is answered 400."""
    response = await register(auth_hub, {"redirect_uris": redirect_uris, "token_endpoint_auth_method": "none"})

    assert response.status_code == status, response.text
    assert response.json().get("error") == error


GOOD = {"redirect_uris": ["https://app.example.com/cb"]}


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({**GOOD, "grant_types": ["client_credentials"]}, "admin creates machine agents"),
        ({**GOOD, "grant_types": ["authorization_code", "password"]}, "unsupported grant_types"),
        ({**GOOD, "grant_types": ["refresh_token"]}, "must include authorization_code"),
        ({**GOOD, "response_types": ["token"]}, "response_types"),
        ({**GOOD, "token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method"),
        ({**GOOD, "token_endpoint_auth_method": "private_key_jwt"}, "needs the client's public keys"),
        ({**GOOD, "token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://x.example/j"}, "jwks_uri"),
        ({**GOOD, "token_endpoint_auth_method": "none", "jwks": {"keys": []}}, "only used with"),
        ({**GOOD, "token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [{"kty": "oct"}]}}, "oct"),
        ({**GOOD, "client_name": "x" * 201}, "client_name"),
        ({**GOOD, "client_name": "line\nbreak"}, "client_name"),
        ({**GOOD, "client_uri": "http://app.example.com"}, "https"),
        (["not", "an", "object"], "JSON object"),
    ],
)
async def test_client_metadata_the_hub_cannot_honour_is_refused(
    auth_hub: RunningHub, metadata: object, problem: str
) -> None:
    """RFC 7591 §3.2.2 `invalid_client_metadata`, naming the problem."""
    response = await register(auth_hub, metadata)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_client_metadata"
    assert problem in response.json()["error_description"]


@pytest.mark.parametrize(
    ("body", "content_type", "problem"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"redirect_uris=https://a.example/cb", "application/x-www-form-urlencoded", "application/json"),
        (b'{"client_name": "' + b"x" * 17_000 + b'"}', "application/json", "larger than"),
    ],
)
async def test_bodies_that_are_not_small_json_objects_are_refused(
    auth_hub: RunningHub, body: bytes, content_type: str, problem: str
) -> None:
    """RFC 7591 §3.1 (JSON); chosen: a 16 KiB cap on what an anonymous caller may send."""
    response = await register(auth_hub, body, **{"Content-Type": content_type})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"
    assert problem in response.json()["error_description"]


async def test_a_registered_public_client_completes_the_code_flow_and_reaches_the_users_tools(
    auth_hub: RunningHub,
) -> None:
    """RFC 7591 + OAuth 2.1: the DCR client acts with the consenting user's grants (it has none itself)."""
    service = auth_service(auth_hub)
    await service.admin.create_user("alice", Role.APPROVER, PASSWORD)
    await service.admin.add_grant("user:alice", "tool:faults__echo")
    registered = (
        await register(auth_hub, {"redirect_uris": [LOOPBACK_REDIRECT], "token_endpoint_auth_method": "none"})
    ).json()
    app = App(client_id=registered["client_id"], redirect_uri=LOOPBACK_REDIRECT, user="alice", password=PASSWORD)

    pkce = Pkce.new()
    tokens = await exchange(auth_hub, app, await code_for(auth_hub, app, pkce), pkce.verifier)

    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "tool:faults__echo"
    async with (
        bearer(tokens.json()["access_token"]) as http,
        Client(streamable_http_client(auth_hub.url, http_client=http), mode="2026-07-28") as client,
    ):
        echoed = await client.call_tool("faults__echo", {"text": "registered"})
    assert echoed.is_error is False


@pytest.fixture
async def closed_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    """A hub whose admin turned off both self-service registrations."""
    extra = "[auth]\ndynamic_client_registration = false\nclient_id_metadata_documents = false\n"
    config = write_config(tmp_path, {"faults": fault_connector()}, extra, auth=True)
    async with running_hub(config) as hub:
        yield hub


async def test_registration_is_absent_when_turned_off(closed_hub: RunningHub) -> None:
    """RFC 8414 §2: no registration_endpoint in the metadata, and the path is not served."""
    async with httpx2.AsyncClient() as client:
        metadata = (await client.get(f"{closed_hub.base_url}/.well-known/oauth-authorization-server")).json()
    response = await register(closed_hub, GOOD)

    assert "registration_endpoint" not in metadata
    assert metadata["client_id_metadata_document_supported"] is False
    assert response.status_code in (404, 405)
