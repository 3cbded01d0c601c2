"""Error answers of the token, revocation and introspection endpoints (RFC 6749 §5.2, RFC 8707 §2) and the
access token lifetime (issue 3 §3).

- `invalid_client` is HTTP 401, with a `WWW-Authenticate` challenge (the Basic scheme when the client used
  it), whichever endpoint and whichever check refused the client (RFC 6749 §5.2, mandated).
- `resource` must be the hub's MCP endpoint, once (RFC 8707 §2 `invalid_target`, mandated; one resource per
  request is our choice, §2 allows refusing several).
- Tokens live 300 s by default, and `[auth] access_token_ttl_seconds` may not exceed 3600 (issue 3 §3).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx2
import pytest

from mcp_hub.authz.http import oauth_error_response
from mcp_hub.config.settings import load_settings
from mcp_hub.errors import ConfigError, OAuthError
from tests.authz.conftest import AgentCredentials, auth_service, make_agent
from tests.conftest import InProcessHub, in_process_hub, write_config

pytestmark = pytest.mark.anyio

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[InProcessHub]:
    """The token, revocation and introspection endpoints need no downstream: an in-process hub."""
    async with in_process_hub(write_config(tmp_path_factory.mktemp("token-errors"), {}, auth=True)) as running:
        yield running


@pytest.fixture(scope="module")
async def agent(hub: InProcessHub) -> AgentCredentials:
    return await make_agent(hub, "error-prober", "tool:faults__*")


async def post(
    hub: InProcessHub, url: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> httpx2.Response:
    async with hub.client(timeout=10) as client:
        return await client.post(url, data=form, headers=headers or {})


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


REFUSED_CLIENTS = [
    "wrong secret (Basic)",
    "wrong secret (post)",
    "unknown client (Basic)",
    "malformed Basic",
    "another scheme in Authorization",
    "no client at all",
    "unknown public client",
    "garbage assertion",
    "wrong assertion type",
]


def refused_client(case: str, agent: AgentCredentials) -> tuple[dict[str, str], dict[str, str], bool]:
    """(form additions, headers, whether the client used HTTP Basic) for one way a client fails to authenticate."""
    cases: dict[str, tuple[dict[str, str], dict[str, str], bool]] = {
        "wrong secret (Basic)": ({}, basic(agent.client_id, "mcphs_wrong"), True),
        "wrong secret (post)": ({"client_id": agent.client_id, "client_secret": "mcphs_wrong"}, {}, False),
        "unknown client (Basic)": ({}, basic("agt_nobody", "mcphs_wrong"), True),
        "malformed Basic": ({}, {"Authorization": "Basic !!!not-base64"}, True),
        "another scheme in Authorization": ({}, {"Authorization": "Bearer something"}, False),
        "no client at all": ({}, {}, False),
        "unknown public client": ({"client_id": "agt_nobody"}, {}, False),
        "garbage assertion": ({"client_assertion_type": ASSERTION_TYPE, "client_assertion": "a.b.c"}, {}, False),
        "wrong assertion type": ({"client_assertion_type": "urn:x", "client_assertion": "a.b.c"}, {}, False),
    }
    return cases[case]


@pytest.mark.parametrize("endpoint", ["/oauth/token", "/oauth/revoke", "/oauth/introspect"])
@pytest.mark.parametrize("case", REFUSED_CLIENTS)
async def test_every_refused_client_gets_401_invalid_client_with_a_challenge(
    hub: InProcessHub, agent: AgentCredentials, endpoint: str, case: str
) -> None:
    """RFC 6749 §5.2 (mandated): `invalid_client` is 401, and a client that used the Authorization header gets
    a `WWW-Authenticate` of the scheme it used; RFC 7009 §2.1 and RFC 7662 §2.1 authenticate the same way.
    T02 (forged assertions)."""
    extra, headers, used_basic = refused_client(case, agent)
    form = {"grant_type": "client_credentials", "token": "anything", **extra}
    response = await post(hub, hub.base_url + endpoint, form, headers)

    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    challenge = response.headers["www-authenticate"]
    if used_basic:
        assert challenge.startswith("Basic ")


async def test_a_client_disabled_after_it_authenticated_is_invalid_client_401(
    hub: InProcessHub, agent: AgentCredentials
) -> None:
    """RFC 6749 §5.2 (mandated: 401): the race between client authentication and the grant, made deterministic
    by disabling the agent between the two steps; the error the grant raises is still 401."""
    service = auth_service(hub)
    identities = hub.hub.stores.identities
    record = await identities.agent_by_client_id(agent.client_id)
    assert record is not None
    late = await make_agent(hub, "disabled-in-between", "tool:faults__*")
    late_record = await identities.agent_by_client_id(late.client_id)
    assert late_record is not None
    await service.admin.set_agent_enabled(late.name, False)

    with pytest.raises(OAuthError) as refused:
        await service.granter.for_agent(late_record, None)
    response = oauth_error_response(refused.value)

    assert refused.value.error == "invalid_client"
    assert refused.value.status == 401
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")


def test_invalid_client_is_401_wherever_it_was_raised() -> None:
    """RFC 6749 §5.2 (mandated): the one mapping of OAuth errors to HTTP makes `invalid_client` 401 even when
    the code that raised it forgot the status; every other error keeps its own (400 by default)."""
    forgot = oauth_error_response(OAuthError("invalid_client", "no such client"))
    grant = oauth_error_response(OAuthError("invalid_grant", "expired"))

    assert forgot.status_code == 401
    assert forgot.headers["www-authenticate"] == 'Basic realm="mcp-hub"'
    assert grant.status_code == 400
    assert "www-authenticate" not in grant.headers


@pytest.mark.parametrize(
    ("resources", "problem"),
    [
        (["https://elsewhere.example/mcp"], "another server"),
        (["{base}"], "the hub's root instead of its MCP endpoint"),
        (["{base}/mcp/other"], "a path below the MCP endpoint"),
        (["{mcp}", "{mcp}"], "the right resource twice"),
        (["{mcp}", "https://elsewhere.example/mcp"], "two resources"),
    ],
)
async def test_a_token_for_any_other_resource_or_for_two_is_invalid_target(
    hub: InProcessHub, agent: AgentCredentials, resources: list[str], problem: str
) -> None:
    """RFC 8707 §2 (mandated: `invalid_target`) and T01: the hub issues tokens only for its own MCP endpoint;
    several `resource` values in one request are refused (our choice: one audience per token)."""
    values = [value.format(base=hub.base_url, mcp=hub.url) for value in resources]
    form = {"grant_type": "client_credentials", "resource": values}  # a list: the parameter repeated
    async with hub.client(timeout=10) as client:
        response = await client.post(
            f"{hub.base_url}/oauth/token", data=form, auth=(agent.client_id, agent.client_secret)
        )

    assert response.status_code == 400, problem
    assert response.json()["error"] == "invalid_target", problem
    assert "access_token" not in response.json()


async def test_the_default_lifetime_is_five_minutes(hub: InProcessHub, agent: AgentCredentials) -> None:
    """Issue 3 §3 (default 300 s): `expires_in` and the token's own `exp - iat` agree."""
    async with hub.client(timeout=10) as client:
        response = await client.post(
            f"{hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "resource": hub.url},
            auth=(agent.client_id, agent.client_secret),
        )
    body = response.json()
    claims = await auth_service(hub).tokens.verify(body["access_token"])

    assert body["expires_in"] == 300
    assert claims.expires_at - claims.issued_at == 300


async def test_the_lifetime_may_be_raised_to_one_hour_and_no_further(tmp_path: Path) -> None:
    """Issue 3 §3 (capped at 1 hour): 3600 s is honoured end to end; 3601 s is a configuration error naming
    the key, so the hub never starts with it."""
    (tmp_path / "hour").mkdir()
    (tmp_path / "more").mkdir()
    hour = write_config(tmp_path / "hour", {}, "[auth]\naccess_token_ttl_seconds = 3600\n", auth=True)
    more = write_config(tmp_path / "more", {}, "[auth]\naccess_token_ttl_seconds = 3601\n", auth=True)
    with pytest.raises(ConfigError) as refused:
        load_settings(more)
    async with in_process_hub(hour) as hub:
        agent = await make_agent(hub, "hour-long", "tool:faults__*")
        async with hub.client(timeout=10) as client:
            response = await client.post(
                f"{hub.base_url}/oauth/token",
                data={"grant_type": "client_credentials", "resource": hub.url},
                auth=(agent.client_id, agent.client_secret),
            )
        claims = await auth_service(hub).tokens.verify(response.json()["access_token"])

    assert refused.value.key is not None
    assert "access_token_ttl_seconds" in refused.value.key
    assert response.json()["expires_in"] == 3600
    assert claims.expires_at - claims.issued_at == 3600
