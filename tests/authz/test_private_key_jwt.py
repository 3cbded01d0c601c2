"""Client authentication with signed JWTs (RFC 7523 §2.2, §3) and the SDK's client-credentials providers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import warnings
from typing import Any

import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from mcp import Client
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.authz.private_key_jwt import parse_client_jwks
from tests.authz.conftest import auth_service, make_agent
from tests.authz.flow import MemoryStorage
from tests.conftest import RunningHub, unique

pytestmark = pytest.mark.anyio

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SigningKey = ECKey | RSAKey | OKPKey


def new_key(alg: str) -> SigningKey:
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg in ("EdDSA", "Ed25519"):
        return OKPKey.generate_key("Ed25519", private=True)
    return ECKey.generate_key("P-256", private=True)


def public_jwks(*keys: SigningKey, kid: str | None = None) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for key in keys:
        entry: dict[str, Any] = dict(key.as_dict(private=False))
        if kid is not None:
            entry["kid"] = kid
        entries.append(entry)
    return {"keys": entries}


def small_rsa_jwk() -> dict[str, Any]:
    """A 1024-bit RSA public key (joserfc refuses to generate one; cryptography still can)."""
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be refused
    numbers = weak.public_key().public_numbers()

    def encoded(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    return {"kty": "RSA", "n": encoded(numbers.n), "e": encoded(numbers.e)}


def claims_for(client_id: str, audience: object, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def sign(key: SigningKey, alg: str, claims: dict[str, Any], **header: Any) -> str:
    with warnings.catch_warnings():
        # joserfc warns that `EdDSA` is superseded by `Ed25519` (RFC 9864); deployed clients still send it.
        warnings.simplefilter("ignore", SecurityWarning)
        return jwt.encode({"alg": alg, "typ": "JWT", **header}, claims, key, algorithms=[alg])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    """A JWS with `alg: none` and an empty signature."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}."


def hmac_signed(secret: bytes, claims: dict[str, Any]) -> str:
    """HS256 keyed with `secret`: the classic confusion attack uses the victim's public key bytes."""
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


async def token_with_assertion(hub: RunningHub, assertion: str, **extra: str) -> httpx2.Response:
    form = {
        "grant_type": "client_credentials",
        "resource": hub.url,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    async with httpx2.AsyncClient() as client:
        return await client.post(f"{hub.base_url}/oauth/token", data=form)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA", "Ed25519"])
async def test_an_agent_with_a_registered_key_gets_a_token_with_a_signed_assertion(
    auth_hub: RunningHub, alg: str
) -> None:
    """RFC 7523 §2.2: each accepted key type authenticates with its algorithm; the token carries the grants."""
    key = new_key(alg)
    created = await auth_service(auth_hub).admin.create_key_agent(
        unique("keyed"), ["tool:faults__echo"], public_jwks(key)
    )
    client_id = created.agent.client_id

    response = await token_with_assertion(auth_hub, sign(key, alg, claims_for(client_id, auth_hub.base_url)))

    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "tool:faults__echo"
    assert created.client_secret is None
    assert created.agent.auth_method == "private_key_jwt"


async def test_the_audience_may_be_the_token_endpoint_url(auth_hub: RunningHub) -> None:
    """RFC 7523 §3 item 3: the token endpoint URL identifies the authorization server too."""
    key = new_key("ES256")
    created = await auth_service(auth_hub).admin.create_key_agent(unique("keyed"), ["tool:*"], public_jwks(key))
    audience = f"{auth_hub.base_url}/oauth/token"

    response = await token_with_assertion(
        auth_hub, sign(key, "ES256", claims_for(created.agent.client_id, audience)), client_id=created.agent.client_id
    )

    assert response.status_code == 200, response.text


FORGERIES = {
    # forgery: what the refusal says
    "alg none": "alg must be one of",
    "HS256 keyed with the public key": "alg must be one of",
    "wrong aud": "aud must be",
    "two audiences": "aud must be",
    "expired": "expired",
    "exp too far ahead": "seconds ahead",
    "no exp": "lacks exp",
    "no jti": "lacks a jti",
    "iss differs from sub": "iss and sub",
    "unknown kid": "no registered key fits",
    "embedded jwk header": "may only have alg, typ and kid",
    "signed by another key": "signature does not verify",
    "RS256 for an EC key": "no registered key fits",
    "iat in the future": "iat is in the future",
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
async def test_a_forged_client_assertion_is_refused(auth_hub: RunningHub, forgery: str) -> None:
    """Threat T02 for client assertions (RFC 7523 §3, RFC 8725 §3.1): each forgery → 401 invalid_client."""
    key = new_key("ES256")
    created = await auth_service(auth_hub).admin.create_key_agent(
        unique("keyed"), ["tool:*"], public_jwks(key, kid="k1")
    )
    client_id = created.agent.client_id
    good = claims_for(client_id, auth_hub.base_url)
    now = int(time.time())
    attacker = new_key("ES256")
    assertions = {
        "alg none": lambda: unsigned({"alg": "none", "typ": "JWT"}, good),
        "HS256 keyed with the public key": lambda: hmac_signed(key.as_pem(private=False), good),
        "wrong aud": lambda: sign(key, "ES256", {**good, "aud": "https://other.example"}, kid="k1"),
        "two audiences": lambda: sign(key, "ES256", {**good, "aud": [auth_hub.base_url, "https://x.example"]}),
        "expired": lambda: sign(key, "ES256", {**good, "iat": now - 600, "exp": now - 300}),
        "exp too far ahead": lambda: sign(key, "ES256", {**good, "exp": now + 3600}),
        "no exp": lambda: sign(key, "ES256", claims_for(client_id, auth_hub.base_url, exp=None)),
        "no jti": lambda: sign(key, "ES256", claims_for(client_id, auth_hub.base_url, jti=None)),
        "iss differs from sub": lambda: sign(key, "ES256", {**good, "sub": "someone-else"}),
        "unknown kid": lambda: sign(key, "ES256", good, kid="k2"),
        "embedded jwk header": lambda: sign(attacker, "ES256", good, jwk=dict(attacker.as_dict(private=False))),
        "signed by another key": lambda: sign(attacker, "ES256", good, kid="k1"),
        "RS256 for an EC key": lambda: sign(new_key("RS256"), "RS256", good),
        "iat in the future": lambda: sign(key, "ES256", {**good, "iat": now + 600}),
    }

    response = await token_with_assertion(auth_hub, assertions[forgery]())

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert FORGERIES[forgery] in response.json()["error_description"]


async def test_a_client_assertion_is_single_use(auth_hub: RunningHub) -> None:
    """RFC 7523 §3 item 7 (T02 replay): the second use of a jti is refused, via the shared database cache."""
    key = new_key("ES256")
    created = await auth_service(auth_hub).admin.create_key_agent(unique("keyed"), ["tool:*"], public_jwks(key))
    assertion = sign(key, "ES256", claims_for(created.agent.client_id, auth_hub.base_url))

    first = await token_with_assertion(auth_hub, assertion)
    replayed = await token_with_assertion(auth_hub, assertion)

    assert first.status_code == 200, first.text
    assert replayed.status_code == 401
    assert "already used" in replayed.json()["error_description"]


async def test_a_secret_agent_cannot_authenticate_with_an_assertion(auth_hub: RunningHub) -> None:
    """Chosen: a client uses the method it registered; a secret-based agent has no keys to verify with."""
    agent = await make_agent(auth_hub, unique("secretive"), "tool:*")
    response = await token_with_assertion(
        auth_hub, sign(new_key("ES256"), "ES256", claims_for(agent.client_id, auth_hub.base_url))
    )

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("jwks", "problem"),
    [
        ({"keys": []}, "between 1 and"),
        ("not a key set", "JWK Set"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, "not accepted"),
        ({"keys": [dict(ECKey.generate_key("P-256", private=True).as_dict(private=True))]}, "public keys only"),
        ({"keys": [dict(ECKey.generate_key("P-384", private=True).as_dict(private=False))]}, "P-256"),
        ({"keys": [small_rsa_jwk()]}, "2048"),
        ({"keys": [{**ECKey.generate_key("P-256", private=True).as_dict(private=False), "alg": "RS256"}]}, "alg"),
        ({"keys": [{**ECKey.generate_key("P-256", private=True).as_dict(private=False), "use": "enc"}]}, "sig"),
    ],
)
def test_client_key_sets_that_could_not_authenticate_safely_are_refused(jwks: object, problem: str) -> None:
    """Chosen: only RSA ≥ 2048, EC P-256 and Ed25519 public signing keys are registered."""
    with pytest.raises(ValueError, match=problem):
        parse_client_jwks(jwks)


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_the_sdk_private_key_jwt_provider_reaches_a_tool_through_the_hub(auth_hub: RunningHub, era: str) -> None:
    """MCP client-credentials extension with private_key_jwt: 401 → discovery → signed assertion → tool call."""
    key = ECKey.generate_key("P-256", private=True)
    # The SDK requests the scope of the hub's 401 challenge (`tool:*`); a `tool:*` grant covers that request.
    created = await auth_service(auth_hub).admin.create_key_agent(unique("keyed"), ["tool:*"], public_jwks(key))
    client_id = created.agent.client_id
    signer = SignedJWTParameters(
        issuer=client_id, subject=client_id, signing_key=key.as_pem(private=True).decode(), signing_algorithm="ES256"
    )
    provider = PrivateKeyJWTOAuthProvider(
        server_url=auth_hub.url,
        storage=MemoryStorage(),
        client_id=client_id,
        assertion_provider=signer.create_assertion_provider(),
        issuer=auth_hub.base_url,
    )

    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(auth_hub.url, http_client=http), mode=era) as client,
    ):
        result = await client.call_tool("faults__echo", {"text": "signed"})

    assert result.is_error is False


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_the_sdk_client_secret_provider_reaches_a_tool_through_the_hub(auth_hub: RunningHub, era: str) -> None:
    """MCP client-credentials extension with client_secret_basic against the hub's discovery and token endpoint."""
    # The SDK requests the scope of the hub's 401 challenge (`tool:*`); a `tool:*` grant covers that request.
    agent = await make_agent(auth_hub, unique("secretive"), "tool:*")
    provider = ClientCredentialsOAuthProvider(
        server_url=auth_hub.url,
        storage=MemoryStorage(),
        client_id=agent.client_id,
        client_secret=agent.client_secret,
        issuer=auth_hub.base_url,
    )

    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(auth_hub.url, http_client=http), mode=era) as client,
    ):
        names = [tool.name for tool in (await client.list_tools()).tools]
        result = await client.call_tool("faults__echo", {"text": "secret"})

    assert "faults__echo" in names
    assert result.is_error is False
