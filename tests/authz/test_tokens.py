"""Forged access tokens, one per verification rule, each refused by `TokenService.verify` and by the real /mcp.

Threat T02 (JWT confusion) and T01 (a token for another audience). RFC 9068 §4 and RFC 8725 (JWT best
current practices) mandate most rules: the `alg` allow-list tied to the key type (no `none`, no HS/RS
confusion), `typ: at+jwt` so that an ID token is not an access token, the exact issuer, the audience of
this resource (RFC 8707), `exp` and `nbf`. Refusing header fields the hub never sets (`jku`, `x5u`, `jwk`:
keys a token would bring along) and tokens without `jti` or `client_id` is our choice, fail-closed.

Rows that test one claim or header rule are signed with the hub's own key, so that rule is the only
thing wrong with them; a control row built the same way without the flaw is accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx2
import pytest
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

from mcp_hub.authz.keys import LoadedKey
from mcp_hub.errors import InvalidTokenError
from mcp_hub.runtime import Authorization
from tests.authz.conftest import AgentCredentials, auth_service, client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

MODERN_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/list",
}
LIST_TOOLS: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/list",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}


@dataclass(frozen=True)
class Forge:
    """What a forger works with: the hub's identity (public) and, for single-rule rows, its key."""

    issuer: str
    resource: str
    agent: AgentCredentials
    hub_key: LoadedKey

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Valid claims for the test agent; a change of `None` removes the claim."""
        now = int(datetime.now(UTC).timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": self.agent.client_id,
            "aud": self.resource,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "client_id": self.agent.client_id,
            "scope": "tool:faults__*",
        }
        claims.update(changes)
        return {key: value for key, value in claims.items() if value is not None}

    def header(self, **changes: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": "ES256", "typ": "at+jwt", "kid": self.hub_key.record.kid}
        header.update(changes)
        return {key: value for key, value in header.items() if value is not None}

    def signed_by_hub(self, header: dict[str, Any] | None = None, claims: dict[str, Any] | None = None) -> str:
        """A token the hub's own key signed: only the changed header or claims can make it invalid."""
        return jwt.encode(header or self.header(), claims or self.claims(), self.hub_key.private, algorithms=["ES256"])


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A compact JWS assembled by hand (what an attacker does when a library would refuse)."""
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


def alg_none(forge: Forge) -> str:
    return unsigned(forge.header(alg="none"), forge.claims())


def hs256_with_public_key_as_secret(forge: Forge) -> str:
    # The classic HS/RS confusion: a verifier that picks the algorithm from the token would use the
    # published public key as an HMAC secret.
    header = b64url(json.dumps(forge.header(alg="HS256")).encode())
    payload = b64url(json.dumps(forge.claims()).encode())
    secret = forge.hub_key.public.as_pem(private=False)
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def rs256_by_attacker(forge: Forge) -> str:
    key = RSAKey.generate_key(2048, private=True)
    return jwt.encode(forge.header(alg="RS256"), forge.claims(), key, algorithms=["RS256"])


def es256_by_attacker_with_hubs_kid(forge: Forge) -> str:
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode(forge.header(), forge.claims(), key, algorithms=["ES256"])


def unknown_kid(forge: Forge) -> str:
    key = ECKey.generate_key("P-256", private=True)
    return jwt.encode(forge.header(kid=key.thumbprint()), forge.claims(), key, algorithms=["ES256"])


def embedded_jwk(forge: Forge) -> str:
    key = ECKey.generate_key("P-256", private=True)
    header = forge.header(jwk=key.as_dict(private=False))
    return jwt.encode(header, forge.claims(), key, algorithms=["ES256"])


def payload_not_json(forge: Forge) -> str:
    return jws.serialize_compact(forge.header(), b"not a JSON object", forge.hub_key.private, algorithms=["ES256"])


@dataclass(frozen=True)
class Forgery:
    make: Callable[[Forge], str]
    reason: str
    """A fragment of the refusal's description: proves which rule refused it."""


FORGERIES: dict[str, Forgery] = {
    "alg none": Forgery(alg_none, "alg must be ES256"),
    "HS256 with the public key as the secret": Forgery(hs256_with_public_key_as_secret, "alg must be ES256"),
    "RS256 by an attacker's key": Forgery(rs256_by_attacker, "alg must be ES256"),
    "ES256 by an attacker's key with the hub's kid": Forgery(es256_by_attacker_with_hubs_kid, "does not verify"),
    "unknown kid": Forgery(unknown_kid, "a key this hub does not know"),
    "no kid": Forgery(lambda f: f.signed_by_hub(header=f.header(kid=None)), "names no key"),
    "typ JWT (an ID token)": Forgery(lambda f: f.signed_by_hub(header=f.header(typ="JWT")), "typ must be at+jwt"),
    "no typ": Forgery(lambda f: f.signed_by_hub(header=f.header(typ=None)), "typ must be at+jwt"),
    "wrong iss": Forgery(lambda f: f.signed_by_hub(claims=f.claims(iss="https://evil.example")), "(iss)"),
    "aud of another resource (T01)": Forgery(
        lambda f: f.signed_by_hub(claims=f.claims(aud="https://other.example/mcp")), "not for this resource"
    ),
    "aud of a sibling path (T01)": Forgery(
        lambda f: f.signed_by_hub(claims=f.claims(aud=f.resource + "-admin")), "not for this resource"
    ),
    "no aud (T01)": Forgery(lambda f: f.signed_by_hub(claims=f.claims(aud=None)), "not for this resource"),
    "expired": Forgery(
        lambda f: f.signed_by_hub(claims=f.claims(iat=f.claims()["iat"] - 7200, exp=f.claims()["iat"] - 3600)),
        "has expired",
    ),
    "nbf in the future": Forgery(
        lambda f: f.signed_by_hub(claims=f.claims(nbf=f.claims()["iat"] + 3600)), "not valid yet"
    ),
    "iat in the future": Forgery(
        lambda f: f.signed_by_hub(claims=f.claims(iat=f.claims()["iat"] + 3600)), "not valid yet"
    ),
    "exp not a number": Forgery(lambda f: f.signed_by_hub(claims=f.claims(exp="tomorrow")), "lacks exp or iat"),
    "no jti": Forgery(lambda f: f.signed_by_hub(claims=f.claims(jti=None)), "lacks sub, client_id or jti"),
    "no client_id": Forgery(lambda f: f.signed_by_hub(claims=f.claims(client_id=None)), "lacks sub, client_id or jti"),
    "header jku": Forgery(
        lambda f: f.signed_by_hub(header=f.header(jku="https://evil.example/jwks.json")), "fields this hub never sets"
    ),
    "header x5u": Forgery(
        lambda f: f.signed_by_hub(header=f.header(x5u="https://evil.example/cert.pem")), "fields this hub never sets"
    ),
    "header jwk (an embedded attacker key)": Forgery(embedded_jwk, "fields this hub never sets"),
    "payload not JSON": Forgery(payload_not_json, "payload is not a JSON object"),
    "garbage": Forgery(lambda f: "garbage", "not a compact JWS"),
    "three garbage segments": Forgery(lambda f: "a.b.c", "not a compact JWS"),
    "oversized": Forgery(lambda f: f.signed_by_hub(claims=f.claims(pad="x" * 9000)), "not a compact JWS"),
}


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """One auth-enabled hub for the whole table (forging needs no fresh hub)."""
    config = write_config(tmp_path_factory.mktemp("tokens"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


@pytest.fixture(scope="module")
async def forge(hub: RunningHub) -> Forge:
    agent = await make_agent(hub, "forgery-victim", "tool:faults__*")
    service = auth_service(hub)
    return Forge(
        issuer=service.urls.issuer, resource=service.urls.resource, agent=agent, hub_key=service.keys.signing_key()
    )


async def list_tools_with(hub: RunningHub, token: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as client:
        return await client.post(
            hub.url, headers={**MODERN_HEADERS, "Authorization": f"Bearer {token}"}, json=LIST_TOOLS
        )


async def test_the_control_token_built_like_the_forgeries_is_accepted(hub: RunningHub, forge: Forge) -> None:
    """Spec (RFC 9068): proves the forgeries below fail for their one flaw, not for how they were built."""
    token = forge.signed_by_hub()
    claims = await auth_service(hub).tokens.verify(token)
    response = await list_tools_with(hub, token)
    assert claims.client_id == forge.agent.client_id
    assert response.status_code == 200, response.text
    assert "faults__echo" in {tool["name"] for tool in response.json()["result"]["tools"]}


async def test_a_token_from_the_token_endpoint_is_accepted(hub: RunningHub, forge: Forge) -> None:
    """Spec (RFC 6749 §4.4, RFC 9068): the hub accepts what it issued."""
    token = await client_credentials_token(hub, forge.agent)
    response = await list_tools_with(hub, token)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_a_forged_token_is_rejected_by_verify(hub: RunningHub, forge: Forge, name: str) -> None:
    """T02 (and T01 for the aud rows), RFC 9068 §4 / RFC 8725: each forgery is refused by the rule it breaks."""
    forgery = FORGERIES[name]
    service: Authorization = auth_service(hub)
    with pytest.raises(InvalidTokenError) as refused:
        await service.tokens.verify(forgery.make(forge))
    assert forgery.reason in refused.value.description
    assert refused.value.error == "invalid_token"


@pytest.mark.parametrize("name", list(FORGERIES))
async def test_a_forged_token_gets_401_from_the_mcp_endpoint(hub: RunningHub, forge: Forge, name: str) -> None:
    """T02/T01, RFC 6750 §3.1 and RFC 9728 §5.1: 401 `invalid_token` with the resource metadata URL."""
    forgery = FORGERIES[name]
    response = await list_tools_with(hub, forgery.make(forge))
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{hub.base_url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert forgery.reason in response.json()["error_description"]


async def test_a_valid_token_of_a_client_the_hub_does_not_know_gets_401(hub: RunningHub, forge: Forge) -> None:
    """T02, our choice: a well-signed token whose client_id names no agent (deleted, or never existed) is refused."""
    stranger = forge.claims(client_id="agt_nobody", sub="agt_nobody")
    response = await list_tools_with(hub, forge.signed_by_hub(claims=stranger))
    assert response.status_code == 401
    assert "no longer exists" in response.json()["error_description"]


@pytest.mark.parametrize("authorization", ["Basic Zm9vOmJhcg==", "Bearer", "token abc"])
async def test_an_authorization_header_without_a_bearer_token_gets_401(hub: RunningHub, authorization: str) -> None:
    """RFC 6750 §2.1: only `Authorization: Bearer <token>` carries an access token."""
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(
            hub.url, headers={**MODERN_HEADERS, "Authorization": authorization}, json=LIST_TOOLS
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_a_token_in_the_query_string_is_not_accepted(hub: RunningHub, forge: Forge) -> None:
    """RFC 6750 §2.3 is optional and MCP's authorization spec forbids it: only the header counts."""
    token = forge.signed_by_hub()
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(hub.url, params={"access_token": token}, headers=MODERN_HEADERS, json=LIST_TOOLS)
    assert response.status_code == 401


async def test_a_well_signed_token_with_a_non_json_payload_is_described_as_such(hub: RunningHub, forge: Forge) -> None:
    """T02, our choice: the refusal names the real flaw (an admin debugging a client trusts this message)."""
    with pytest.raises(InvalidTokenError) as refused:
        await auth_service(hub).tokens.verify(payload_not_json(forge))
    assert "not a JSON object" in refused.value.description
