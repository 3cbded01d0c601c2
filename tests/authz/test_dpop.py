"""DPoP (RFC 9449): tokens bound to a client's key at the token endpoint, refused at the resource server without a
proof by that key; one negative test per check of a proof (threat T08).

The proofs are built here with joserfc, as a client would build them; thumbprints and token hashes are computed
here from the RFCs (7638, 9449 §4.2), not by the hub's code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

from mcp_hub.authz.dpop import DpopProofs, MemoryReplays, normalised_url
from mcp_hub.config.settings import AuthSection
from mcp_hub.errors import InvalidDpopProofError, InvalidTokenError
from tests.authz.conftest import AgentCredentials, auth_service, make_agent
from tests.authz.flow import Pkce, code_flow_hub, code_for, exchange, make_app, refresh
from tests.authz.test_tokens import LIST_TOOLS, b64url, unsigned
from tests.conftest import HubUnderTest, InProcessHub, RunningHub, in_process_hub, write_config
from tests.test_limits import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio

PUBLIC_URL = "https://hub.example"


_REQUIRED_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
"""RFC 7638 §3.2 (EC, RSA) and RFC 8037 §2 (OKP): the members a thumbprint covers."""


def thumbprint(key: ECKey | RSAKey | OKPKey) -> str:
    """RFC 7638 §3: SHA-256 of the key's required members, sorted, without whitespace."""
    public = key.as_dict(private=False)
    members = {name: public[name] for name in _REQUIRED_MEMBERS[key.key_type]}
    return b64url(hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


def token_hash(token: str) -> str:
    """RFC 9449 §4.2 `ath`."""
    return b64url(hashlib.sha256(token.encode()).digest())


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's claims, read without checking it (the hub checked it)."""
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


@dataclass
class Holder:
    """A client's DPoP key, and the proofs it signs."""

    key: ECKey | RSAKey | OKPKey = field(default_factory=lambda: ECKey.generate_key("P-256"))
    alg: str = "ES256"

    @property
    def jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    def proof(
        self,
        method: str,
        url: str,
        token: str | None = None,
        *,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        signer: ECKey | RSAKey | OKPKey | None = None,
    ) -> str:
        """A proof for `method` `url` (and `token`); `header`, `claims` change or add members (None removes)."""
        fields: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
        if token is not None:
            fields["ath"] = token_hash(token)
        protected = _merged({"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}, header)
        payload = json.dumps(_merged(fields, claims)).encode()
        # Not joserfc's strict header check: a test may add members a client is free to add (RFC 7515 §4).
        registry = jws.JWSRegistry(algorithms=[self.alg], strict_check_header=False)
        return jws.serialize_compact(protected, payload, signer or self.key, registry=registry)


def _merged(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    merged = {**base, **(changes or {})}
    return {name: value for name, value in merged.items() if value is not None}


async def call_mcp(
    hub: HubUnderTest, authorization: str, proofs: list[str] | None = None, *, url: str | None = None
) -> httpx2.Response:
    """A valid 2026-07-28 tools/list with `Authorization: <authorization>` and one `DPoP` header per proof."""
    headers: list[tuple[str, str]] = [
        ("Authorization", authorization),
        ("Accept", "application/json, text/event-stream"),
        ("Content-Type", "application/json"),
        ("MCP-Protocol-Version", "2026-07-28"),
        ("Mcp-Method", "tools/list"),
        *(("DPoP", proof) for proof in proofs or []),
    ]
    async with hub.client(timeout=30) as client:
        return await client.post(url or hub.url, json=LIST_TOOLS, headers=headers)


async def dpop_token(hub: HubUnderTest, agent: AgentCredentials, proof: str | None, **form: str) -> httpx2.Response:
    """A client_credentials token request (client_secret_basic) with `proof` as its `DPoP` header."""
    headers = {} if proof is None else {"DPoP": proof}
    async with hub.client(timeout=30) as client:
        return await client.post(
            f"{hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "resource": hub.url, **form},
            auth=(agent.client_id, agent.client_secret),
            headers=headers,
        )


def challenge_of(response: httpx2.Response) -> str:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("DPoP "), challenge
    assert 'algs="' in challenge
    assert "ES256" in challenge
    return challenge


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    async with code_flow_hub(tmp_path_factory.mktemp("dpop")) as running:
        yield running


@dataclass(frozen=True)
class Bound:
    """A DPoP-bound token of an agent, and the key it is bound to."""

    holder: Holder
    token: str


@pytest.fixture
async def bound(hub: RunningHub) -> Bound:
    holder = Holder()
    agent = await make_agent(hub, "dpop-agent-" + secrets.token_hex(4), "tool:faults__*")
    response = await dpop_token(hub, agent, holder.proof("POST", f"{hub.base_url}/oauth/token"))
    assert response.status_code == 200, response.text
    return Bound(holder, response.json()["access_token"])


# --- the token endpoint ----------------------------------------------------------------------------------------


async def test_a_client_credentials_request_with_a_proof_gets_a_token_bound_to_its_key(hub: RunningHub) -> None:
    """RFC 9449 §5, §6.1: `token_type: DPoP` and `cnf.jkt` = the RFC 7638 thumbprint; the token then works with a
    proof by that key."""
    holder = Holder()
    agent = await make_agent(hub, "dpop-cc", "tool:faults__*")
    response = await dpop_token(hub, agent, holder.proof("POST", f"{hub.base_url}/oauth/token"))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": thumbprint(holder.key)}
    token = body["access_token"]
    answered = await call_mcp(hub, f"DPoP {token}", [holder.proof("POST", hub.url, token)])
    assert answered.status_code == 200, answered.text


HOLDERS: dict[str, Callable[[], Holder]] = {
    "ES256": Holder,
    "RS256, 2048 bits": lambda: Holder(RSAKey.generate_key(2048), "RS256"),
    "RS256, 4096 bits": lambda: Holder(RSAKey.generate_key(4096), "RS256"),
    "EdDSA": lambda: Holder(OKPKey.generate_key("Ed25519"), "EdDSA"),
}


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated:joserfc.errors.SecurityWarning")  # the client's signing
@pytest.mark.parametrize("algorithm", list(HOLDERS))
async def test_a_key_of_every_advertised_algorithm_binds_a_token_and_proves_requests(
    hub: RunningHub, algorithm: str
) -> None:
    """RFC 9449 §5.1: every algorithm of `dpop_signing_alg_values_supported` is accepted, RSA keys of the sizes
    docs/oauth.md names included (their `jwk` makes a JOSE header of 0.4-0.8 KiB, under `dpop_max_header_bytes`)."""
    holder = HOLDERS[algorithm]()
    agent = await make_agent(hub, "dpop-alg-" + secrets.token_hex(4), "tool:faults__*")
    response = await dpop_token(hub, agent, holder.proof("POST", f"{hub.base_url}/oauth/token"))

    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert claims_of(token)["cnf"] == {"jkt": thumbprint(holder.key)}
    answered = await call_mcp(hub, f"DPoP {token}", [holder.proof("POST", hub.url, token)])
    assert answered.status_code == 200, answered.text


async def test_a_request_without_a_proof_still_gets_a_bearer_token(hub: RunningHub) -> None:
    """RFC 9449 is optional here (`[auth] dpop = "optional"`): no proof, an unbound Bearer token, as before."""
    agent = await make_agent(hub, "plain-cc", "tool:faults__*")
    response = await dpop_token(hub, agent, None)

    assert response.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(response.json()["access_token"])
    assert (await call_mcp(hub, f"Bearer {response.json()['access_token']}")).status_code == 200


async def test_an_invalid_proof_at_the_token_endpoint_is_invalid_dpop_proof(hub: RunningHub) -> None:
    """RFC 9449 §5: a proof that fails a check (here: made for /mcp, not the token endpoint) is 400
    `invalid_dpop_proof`, and no token is issued."""
    agent = await make_agent(hub, "dpop-bad-proof", "tool:faults__*")
    response = await dpop_token(hub, agent, Holder().proof("POST", hub.url))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_dpop_proof"
    assert "htu" in response.json()["error_description"]


async def test_the_code_flow_binds_a_public_clients_tokens_and_refresh_tokens_to_its_key(hub: RunningHub) -> None:
    """RFC 9449 §5: an authorization code exchanged with a proof gives a DPoP-bound access token, and a public
    client's refresh token is bound to the key too: it refreshes with a proof by that key (again bound), not
    without a proof (`invalid_dpop_proof`) nor with another key's (`invalid_grant`), neither burning it."""
    holder = Holder()
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    token_url = f"{hub.base_url}/oauth/token"
    exchanged = await exchange(hub, app, code, pkce.verifier, dpop=holder.proof("POST", token_url))
    assert exchanged.status_code == 200, exchanged.text
    refresh_token = exchanged.json()["refresh_token"]
    without_proof = await refresh(hub, app, refresh_token)
    other_key = await refresh(hub, app, refresh_token, dpop=Holder().proof("POST", token_url))
    refreshed = await refresh(hub, app, refresh_token, dpop=holder.proof("POST", token_url))

    assert exchanged.json()["token_type"] == "DPoP"
    assert claims_of(exchanged.json()["access_token"])["cnf"]["jkt"] == thumbprint(holder.key)
    assert without_proof.status_code == 400
    assert without_proof.json()["error"] == "invalid_dpop_proof"
    assert other_key.status_code == 400
    assert other_key.json()["error"] == "invalid_grant"
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP"
    token = refreshed.json()["access_token"]
    assert claims_of(token)["cnf"]["jkt"] == thumbprint(holder.key)
    assert (await call_mcp(hub, f"DPoP {token}", [holder.proof("POST", hub.url, token)])).status_code == 200


async def test_a_public_clients_refresh_with_a_proof_binds_its_refresh_token_to_the_key(hub: RunningHub) -> None:
    """RFC 9449 §5 (MUST, T08): a refresh token issued to a public client that presented a valid proof is bound to
    that key, also when its code was exchanged without one: the next refresh needs a proof by that key (none:
    `invalid_dpop_proof`; another key's: `invalid_grant`) instead of giving whoever holds the token a Bearer one."""
    holder = Holder()
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    token_url = f"{hub.base_url}/oauth/token"
    exchanged = await exchange(hub, app, code, pkce.verifier)
    assert exchanged.json()["token_type"] == "Bearer", exchanged.text
    upgraded = await refresh(hub, app, exchanged.json()["refresh_token"], dpop=holder.proof("POST", token_url))
    assert upgraded.json()["token_type"] == "DPoP", upgraded.text
    refresh_token = upgraded.json()["refresh_token"]
    without_proof = await refresh(hub, app, refresh_token)
    other_key = await refresh(hub, app, refresh_token, dpop=Holder().proof("POST", token_url))
    refreshed = await refresh(hub, app, refresh_token, dpop=holder.proof("POST", token_url))

    assert without_proof.status_code == 400, without_proof.text
    assert without_proof.json()["error"] == "invalid_dpop_proof"
    assert other_key.json()["error"] == "invalid_grant"
    assert refreshed.status_code == 200, refreshed.text
    assert claims_of(refreshed.json()["access_token"])["cnf"]["jkt"] == thumbprint(holder.key)


async def test_the_metadata_names_the_proof_algorithms(hub: RunningHub) -> None:
    """RFC 9449 §5.1 (`dpop_signing_alg_values_supported` in RFC 8414 metadata) and RFC 9728 §2 (the protected
    resource's, with `dpop_bound_access_tokens_required` false while DPoP is optional)."""
    async with httpx2.AsyncClient() as client:
        server = (await client.get(f"{hub.base_url}/.well-known/oauth-authorization-server")).json()
        resource = (await client.get(f"{hub.base_url}/.well-known/oauth-protected-resource/mcp")).json()

    assert "ES256" in server["dpop_signing_alg_values_supported"]
    assert "none" not in server["dpop_signing_alg_values_supported"]
    assert "HS256" not in server["dpop_signing_alg_values_supported"]
    assert "ES256" in resource["dpop_signing_alg_values_supported"]
    assert resource["dpop_bound_access_tokens_required"] is False


# --- the resource server: one negative test per check -------------------------------------------------------


ProofFor = Callable[[Bound, str], list[str]]
"""(the bound token, the /mcp URL) → the DPoP headers a request carries."""


def _alg_none(bound: Bound, url: str) -> list[str]:
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": bound.holder.jwk}
    claims = {"jti": secrets.token_urlsafe(8), "htm": "POST", "htu": url, "iat": int(time.time())}
    return [unsigned(header, claims | {"ath": token_hash(bound.token)})]


def _alg_hs256(bound: Bound, url: str) -> list[str]:
    # HMAC keyed with something the attacker knows, the public key in the header as if it were the key.
    secret = OctKey.import_key(json.dumps(bound.holder.jwk).encode())
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": bound.holder.jwk}
    claims = {"jti": "x", "htm": "POST", "htu": url, "iat": int(time.time()), "ath": token_hash(bound.token)}
    return [jws.serialize_compact(header, json.dumps(claims).encode(), secret, algorithms=["HS256"])]


def _private_jwk(bound: Bound, url: str) -> list[str]:
    private = dict(bound.holder.key.as_dict(private=True))
    return [bound.holder.proof("POST", url, bound.token, header={"jwk": private})]


def _signed_by_another_key(bound: Bound, url: str) -> list[str]:
    return [bound.holder.proof("POST", url, bound.token, signer=ECKey.generate_key("P-256"))]


def _another_holders_proof(bound: Bound, url: str) -> list[str]:
    # A valid proof in itself, by a key the token is not bound to: what a thief with the token would send.
    return [Holder().proof("POST", url, bound.token)]


def _rsa_with_a_huge_exponent(bound: Bound, url: str) -> list[str]:
    # A 2048-bit modulus with a 2048-bit public exponent: no signature needed, the verification itself is the cost.
    modulus = RSAKey.generate_key(2048).public_key.public_numbers().n
    exponent = secrets.randbits(2047) | 1 << 2046 | 1
    jwk = {"kty": "RSA", "n": b64url(modulus.to_bytes(256, "big")), "e": b64url(exponent.to_bytes(256, "big"))}
    header = {"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk}
    claims = {"jti": "x", "htm": "POST", "htu": url, "iat": int(time.time()), "ath": token_hash(bound.token)}
    return [unsigned(header, claims, bytes(256))]


CHECKS: dict[str, tuple[ProofFor, str]] = {
    "no proof": (lambda bound, url: [], "required"),
    "two proofs": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token), bound.holder.proof("POST", url, bound.token)],
        "exactly one",
    ),
    "proof too long": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token, claims={"pad": "x" * 5000})],
        "longer than",
    ),
    "header too long": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token, header={"kid": "x" * 2100})],
        "header is longer",
    ),
    "typ is not dpop+jwt": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token, header={"typ": "JWT"})],
        "typ",
    ),
    "alg none": (_alg_none, "alg"),
    "alg HS256": (_alg_hs256, "alg"),
    "private key in jwk": (_private_jwk, "public key"),
    "RSA key with a huge exponent": (_rsa_with_a_huge_exponent, "exponent"),
    "bad signature": (_signed_by_another_key, "signature"),
    "htm mismatch": (lambda bound, url: [bound.holder.proof("GET", url, bound.token)], "htm"),
    "htu mismatch": (lambda bound, url: [bound.holder.proof("POST", url + "/s/faults", bound.token)], "htu"),
    "iat too old": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token, claims={"iat": int(time.time()) - 3600})],
        "older",
    ),
    "iat in the future": (
        lambda bound, url: [bound.holder.proof("POST", url, bound.token, claims={"iat": int(time.time()) + 3600})],
        "future",
    ),
    "no jti": (lambda bound, url: [bound.holder.proof("POST", url, bound.token, claims={"jti": None})], "jti"),
    "ath mismatch": (lambda bound, url: [bound.holder.proof("POST", url, bound.token + "x")], "ath"),
    "jkt mismatch": (_another_holders_proof, "another key"),
}


@pytest.mark.parametrize("check", list(CHECKS))
async def test_a_proof_failing_a_check_is_refused_with_invalid_dpop_proof(
    hub: RunningHub, bound: Bound, check: str
) -> None:
    """RFC 9449 §4.3 and §7.1 (T08): each check of a proof, failed alone, is 401 `invalid_dpop_proof` with a
    `DPoP` challenge naming the algorithms; the same token with a good proof is served (the check is the cause)."""
    proofs_for, named = CHECKS[check]
    refused = await call_mcp(hub, f"DPoP {bound.token}", proofs_for(bound, hub.url))
    served = await call_mcp(hub, f"DPoP {bound.token}", [bound.holder.proof("POST", hub.url, bound.token)])

    challenge = challenge_of(refused)
    assert 'error="invalid_dpop_proof"' in challenge
    assert refused.json()["error"] == "invalid_dpop_proof"
    assert named in refused.json()["error_description"]
    assert served.status_code == 200, served.text


async def test_a_proof_with_a_header_member_the_hub_does_not_know_is_accepted(hub: RunningHub, bound: Bound) -> None:
    """RFC 7515 §4 (MUST): a JOSE header member the hub does not understand, and that `crit` does not name, is
    ignored; the proof is checked as any other (here it passes every check)."""
    proof = bound.holder.proof("POST", hub.url, bound.token, header={"client_version": "1.0"})

    served = await call_mcp(hub, f"DPoP {bound.token}", [proof])

    assert served.status_code == 200, served.text


async def test_a_replayed_proof_is_refused(hub: RunningHub, bound: Bound) -> None:
    """RFC 9449 §11.1 (T08): a proof's `jti` is accepted once; the same proof again is `invalid_dpop_proof`."""
    proof = bound.holder.proof("POST", hub.url, bound.token)
    first = await call_mcp(hub, f"DPoP {bound.token}", [proof])
    again = await call_mcp(hub, f"DPoP {bound.token}", [proof])

    assert first.status_code == 200, first.text
    assert 'error="invalid_dpop_proof"' in challenge_of(again)
    assert "already used" in again.json()["error_description"]


async def test_a_bound_token_presented_as_bearer_is_refused(hub: RunningHub, bound: Bound) -> None:
    """RFC 9449 §7.2 (T08): a stolen DPoP-bound token sent with the Bearer scheme is 401, with a DPoP challenge."""
    refused = await call_mcp(hub, f"Bearer {bound.token}")

    assert 'error="invalid_token"' in challenge_of(refused)
    assert "bound to a key" in refused.json()["error_description"]


async def test_an_unbound_token_presented_with_the_dpop_scheme_is_refused(hub: RunningHub) -> None:
    """RFC 9449 §7.2: the DPoP scheme is for bound tokens; an unbound one with it (and a proof) is 401."""
    agent = await make_agent(hub, "dpop-unbound", "tool:faults__*")
    token = (await dpop_token(hub, agent, None)).json()["access_token"]
    holder = Holder()
    refused = await call_mcp(hub, f"DPoP {token}", [holder.proof("POST", hub.url, token)])

    assert 'error="invalid_token"' in challenge_of(refused)


# --- [auth] dpop = "required", and a public URL behind a proxy -------------------------------------------------


@pytest.fixture(scope="module")
async def required(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[InProcessHub]:
    extra = f'[hub]\npublic_base_url = "{PUBLIC_URL}"\n[auth]\ndpop = "required"\n'
    config = write_config(tmp_path_factory.mktemp("dpop-required"), {}, extra, auth=True)
    async with in_process_hub(config) as running:
        yield running


async def test_where_dpop_is_required_a_bearer_token_is_refused_on_the_mcp_endpoint(required: InProcessHub) -> None:
    """`[auth] dpop = "required"` (our switch, RFC 9728 `dpop_bound_access_tokens_required`): a Bearer token is
    401 with a DPoP challenge, a bound one with its proof is served; the metadata says so."""
    agent = await make_agent(required, "required-agent", "tool:*")
    bearer_token = (await dpop_token(required, agent, None)).json()["access_token"]
    holder = Holder()
    bound = (await dpop_token(required, agent, holder.proof("POST", f"{PUBLIC_URL}/oauth/token"))).json()
    async with required.client() as client:
        metadata = (await client.get("/.well-known/oauth-protected-resource/mcp")).json()

    refused = await call_mcp(required, f"Bearer {bearer_token}")
    served = await call_mcp(
        required, f"DPoP {bound['access_token']}", [holder.proof("POST", required.url, bound["access_token"])]
    )

    assert "requires DPoP" in refused.json()["error_description"]
    assert challenge_of(refused).startswith("DPoP resource_metadata=")
    assert served.status_code == 200, served.text
    assert metadata["dpop_bound_access_tokens_required"] is True


async def test_htu_is_compared_with_the_configured_public_url(required: InProcessHub) -> None:
    """RFC 9449 §4.3 item 9, our choice behind a proxy: `htu` is the configured public URL (normalised: case of
    scheme and host, default port), not what the hub was reached as; the internal URL is refused."""
    agent = await make_agent(required, "proxied-agent", "tool:*")
    holder = Holder()
    token = (await dpop_token(required, agent, holder.proof("POST", f"{PUBLIC_URL}/oauth/token"))).json()[
        "access_token"
    ]
    normalised = await call_mcp(required, f"DPoP {token}", [holder.proof("POST", "HTTPS://Hub.Example:443/mcp", token)])
    internal = await call_mcp(required, f"DPoP {token}", [holder.proof("POST", "http://127.0.0.1:8000/mcp", token)])

    assert normalised.status_code == 200, normalised.text
    assert "htu" in internal.json()["error_description"]


# --- two replicas sharing Redis --------------------------------------------------------------------------------


@pytest.mark.redis
async def test_a_proof_used_at_one_replica_is_refused_at_another(tmp_path: Path) -> None:
    """RFC 9449 §11.1 (T08), issue 12 §4: with `[limits] redis_url`, the replicas share the `jti`s they have seen,
    so a proof replayed at another replica is refused too."""
    await require_redis()
    extra = (
        f'[hub]\npublic_base_url = "{PUBLIC_URL}"\n'
        f'[limits]\nredis_url = "{REDIS_URL}"\nredis_key_prefix = "test:{secrets.token_hex(8)}:"\n'
    )
    config = write_config(tmp_path, {}, extra, auth=True)
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(in_process_hub(config))
        second = await stack.enter_async_context(in_process_hub(config))
        agent = await make_agent(first, "replica-agent", "tool:*")
        holder = Holder()
        token = (await dpop_token(first, agent, holder.proof("POST", f"{PUBLIC_URL}/oauth/token"))).json()[
            "access_token"
        ]
        proof = holder.proof("POST", first.url, token)
        at_first = await call_mcp(first, f"DPoP {token}", [proof])
        at_second = await call_mcp(second, f"DPoP {token}", [proof])
        fresh_at_second = await call_mcp(second, f"DPoP {token}", [holder.proof("POST", first.url, token)])

    assert at_first.status_code == 200, at_first.text
    assert "already used" in at_second.json()["error_description"]
    assert fresh_at_second.status_code == 200, fresh_at_second.text


async def test_introspection_names_the_key_a_token_is_bound_to(hub: RunningHub) -> None:
    """RFC 9449 §6.2: the introspection of a DPoP-bound token has `token_type: DPoP` and its `cnf.jkt`."""
    holder = Holder()
    agent = await make_agent(hub, "dpop-introspected", "tool:faults__*")
    token = (await dpop_token(hub, agent, holder.proof("POST", f"{hub.base_url}/oauth/token"))).json()["access_token"]
    async with httpx2.AsyncClient() as client:
        answer = await client.post(
            f"{hub.base_url}/oauth/introspect", data={"token": token}, auth=(agent.client_id, agent.client_secret)
        )

    assert answer.json()["active"] is True
    assert answer.json()["token_type"] == "DPoP"
    assert answer.json()["cnf"] == {"jkt": thumbprint(holder.key)}


async def test_the_admin_api_takes_a_dpop_bound_admin_token_with_its_proof_only(required: InProcessHub) -> None:
    """RFC 9449 §7 on the admin API's audience (T08, T10): a bound admin token works with a proof by its key (the
    `htu` the public URL of the API path), and is refused as Bearer and with another key's proof."""
    agent = await make_agent(required, "dpop-admin", "admin:api")
    holder = Holder()
    api = f"{PUBLIC_URL}/admin/api/agents"
    token = (
        await dpop_token(
            required, agent, holder.proof("POST", f"{PUBLIC_URL}/oauth/token"), resource=f"{PUBLIC_URL}/admin/api"
        )
    ).json()["access_token"]
    async with required.client() as client:
        served = await client.get(
            api, headers={"Authorization": f"DPoP {token}", "DPoP": holder.proof("GET", api, token)}
        )
        as_bearer = await client.get(api, headers={"Authorization": f"Bearer {token}"})
        stolen = await client.get(
            api, headers={"Authorization": f"DPoP {token}", "DPoP": Holder().proof("GET", api, token)}
        )

    assert served.status_code == 200, served.text
    assert 'error="invalid_token"' in challenge_of(as_bearer)
    assert 'error="invalid_dpop_proof"' in challenge_of(stolen)


async def test_a_bound_token_is_refused_where_no_request_carries_a_proof(hub: RunningHub, bound: Bound) -> None:
    """Our choice (T08): stdio (`MCP_HUB_TOKEN`) has no HTTP request to prove, so a DPoP-bound token is refused
    there rather than accepted as a bearer token."""
    with pytest.raises(InvalidTokenError, match="DPoP-bound"):
        await auth_service(hub).bearer.principal_for(bound.token)


# --- the parts, alone ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "request_url"),
    [
        ("HTTPS://Hub.Example:443/mcp", "https://hub.example/mcp"),
        ("https://hub.example/a/./b/../mcp", "https://hub.example/a/mcp"),
        ("https://hub.example/m%63p", "https://hub.example/mcp"),
        ("https://hub.example/a%2fb", "https://hub.example/a%2Fb"),
        ("https://hub.example/mcp?x=1#y", "https://hub.example/mcp"),
        ("http://[::1]:80/mcp", "http://[::1]/mcp"),
    ],
)
def test_htu_is_compared_after_rfc_3986_normalisation(claimed: str, request_url: str) -> None:
    """RFC 9449 §4.3 item 9 (SHOULD: syntax- and scheme-based normalisation, RFC 3986 §6.2.2-§6.2.3; query and
    fragment ignored)."""
    assert normalised_url(claimed) == normalised_url(request_url)


@pytest.mark.parametrize(
    ("claimed", "request_url"),
    [
        ("https://hub.example/mcp", "http://hub.example/mcp"),
        ("https://hub.example:8443/mcp", "https://hub.example/mcp"),
        ("https://hub.example/MCP", "https://hub.example/mcp"),
        ("https://other.example/mcp", "https://hub.example/mcp"),
    ],
)
def test_htu_naming_another_resource_stays_different(claimed: str, request_url: str) -> None:
    """RFC 3986 §6.2.2: scheme, port and the path's case are part of the URL; normalisation never merges them."""
    assert normalised_url(claimed) != normalised_url(request_url)


def test_user_info_or_another_scheme_is_no_htu() -> None:
    """Our choice: an `htu` with user info or outside http(s) matches no request."""
    assert normalised_url("https://user:pw@hub.example/mcp") is None
    assert normalised_url("ftp://hub.example/mcp") is None


@pytest.mark.parametrize("request_url", ["https://user:pw@hub.example/mcp", "https://hub.example:99999/mcp"])
async def test_no_htu_matches_a_request_url_that_is_no_http_url(request_url: str) -> None:
    """Our choice (T08, fail closed): where the hub's own URL cannot be normalised (a `public_base_url` with user
    info or a bad port), every proof is refused, even one whose `htu` cannot be normalised either."""
    proofs = DpopProofs(AuthSection(), MemoryReplays(1000))
    with pytest.raises(InvalidDpopProofError, match="htu"):
        await proofs.verify([Holder().proof("POST", "not a URL")], "POST", request_url)


async def test_the_in_process_replay_cache_refuses_new_proofs_when_full_of_live_ones() -> None:
    """Our choice (T08, bounded memory, fail closed): a full cache never forgets a live jti to make room, it
    refuses the new proof; once entries expire there is room again. The clock is injected: no sleeping."""
    now = [0.0]
    replays = MemoryReplays(2, clock=lambda: now[0])
    assert await replays.first_use("a", 10)
    assert await replays.first_use("b", 10)
    with pytest.raises(InvalidDpopProofError, match="too many"):
        await replays.first_use("c", 10)
    assert not await replays.first_use("a", 10)
    now[0] = 11.0
    assert await replays.first_use("c", 10)
    assert await replays.first_use("a", 10)
