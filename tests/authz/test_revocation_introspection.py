"""Revocation (RFC 7009) and introspection (RFC 7662) at /oauth/revoke and /oauth/introspect."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.domain import Role
from tests.authz.conftest import AgentCredentials, auth_service, bearer, client_credentials_token, make_agent
from tests.authz.flow import PASSWORD, App, Pkce, code_for, exchange, make_app, mcp_status, refresh, tokens_for
from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config

pytestmark = pytest.mark.anyio

REDIRECT_URI = "http://127.0.0.1:33418/callback"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub with auth and no decision cache, so a revocation shows on the very next request (shared by the
    module's tests, whose agents and users all have names of their own)."""
    config = write_config(
        tmp_path_factory.mktemp("revocation"),
        {"faults": fault_connector()},
        "[auth]\ndecision_cache_seconds = 0\n",
        auth=True,
    )
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


async def post_form(
    hub: RunningHub, path: str, form: dict[str, str], credentials: AgentCredentials | None = None
) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        if credentials is None:
            return await client.post(f"{hub.base_url}{path}", data=form)
        return await client.post(
            f"{hub.base_url}{path}", data=form, auth=(credentials.client_id, credentials.client_secret)
        )


async def revoke(hub: RunningHub, token: str, credentials: AgentCredentials, **extra: str) -> httpx2.Response:
    return await post_form(hub, "/oauth/revoke", {"token": token, **extra}, credentials)


async def introspect(hub: RunningHub, token: str, credentials: AgentCredentials, **extra: str) -> dict[str, Any]:
    response = await post_form(hub, "/oauth/introspect", {"token": token, **extra}, credentials)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def echo(hub: RunningHub, token: str) -> bool:
    """Does a 2026-07-28 tools/call of faults__echo succeed with `token`?"""
    async with (
        bearer(token) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="2026-07-28") as client,
    ):
        return (await client.call_tool("faults__echo", {"text": "hi"})).is_error is False


async def confidential_app(hub: RunningHub) -> tuple[App, AgentCredentials]:
    """A confidential client registered by DCR, and a user (alice) who may call faults__echo."""
    service = auth_service(hub)
    alice = unique("alice")
    await service.admin.create_user(alice, Role.APPROVER, PASSWORD)
    await service.admin.add_grant(f"user:{alice}", "tool:faults__echo")
    async with httpx2.AsyncClient() as client:
        registered = (
            await client.post(
                f"{hub.base_url}/oauth/register",
                json={"redirect_uris": [REDIRECT_URI], "grant_types": ["authorization_code", "refresh_token"]},
            )
        ).json()
    app = App(client_id=registered["client_id"], redirect_uri=REDIRECT_URI, user=alice, password=PASSWORD)
    return app, AgentCredentials(name="app", client_id=app.client_id, client_secret=registered["client_secret"])


async def user_tokens(hub: RunningHub, app: App, credentials: AgentCredentials) -> dict[str, Any]:
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    response = await exchange(hub, app, code, pkce.verifier, client_secret=credentials.client_secret)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- revocation ---------------------------------------------------------------------------------------------


async def test_a_revoked_access_token_is_refused_on_the_next_mcp_call(hub: RunningHub) -> None:
    """RFC 7009 §2.1, threat T09: revoked → 401 within decision_cache_seconds (0 here)."""
    agent = await make_agent(hub, unique("worker"), "tool:faults__echo")
    token = await client_credentials_token(hub, agent)
    assert await echo(hub, token)

    response = await revoke(hub, token, agent, token_type_hint="access_token")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert await mcp_status(hub, token) == 401


async def test_revoking_a_refresh_token_ends_its_whole_family(hub: RunningHub) -> None:
    """RFC 7009 §2.1 (T09): a public client names its client_id; the refresh and its access tokens die."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    assert await mcp_status(hub, tokens["access_token"]) == 200

    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{hub.base_url}/oauth/revoke",
            data={"client_id": app.client_id, "token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        )
    refreshed = await refresh(hub, app, tokens["refresh_token"])

    assert response.status_code == 200
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, tokens["access_token"]) == 401


async def test_a_client_cannot_revoke_another_clients_token(hub: RunningHub) -> None:
    """RFC 7009 §2.1 (only the client's own tokens); chosen: the answer is 200 anyway, so it is no oracle."""
    owner = await make_agent(hub, unique("owner"), "tool:faults__echo")
    other = await make_agent(hub, unique("other"), "tool:faults__echo")
    token = await client_credentials_token(hub, owner)

    response = await revoke(hub, token, other)

    assert response.status_code == 200
    assert await echo(hub, token)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "x" * 5000, "eyJhbGciOiJub25lIn0.e30."])
async def test_unknown_or_malformed_tokens_are_answered_200(hub: RunningHub, token: str) -> None:
    """RFC 7009 §2.2: an invalid token is not an error."""
    agent = await make_agent(hub, unique("worker"), "tool:*")

    response = await revoke(hub, token, agent)

    assert response.status_code == 200


async def test_revocation_needs_an_authenticated_client_and_a_token(hub: RunningHub) -> None:
    """RFC 7009 §2.1 (client authentication), §2.2.1 (invalid_request)."""
    agent = await make_agent(hub, unique("worker"), "tool:*")
    token = await client_credentials_token(hub, agent)
    impostor = AgentCredentials(name="worker", client_id=agent.client_id, client_secret="wrong")

    wrong_secret = await revoke(hub, token, impostor)
    no_token = await post_form(hub, "/oauth/revoke", {}, agent)

    assert wrong_secret.status_code == 401
    assert wrong_secret.json()["error"] == "invalid_client"
    assert no_token.status_code == 400
    assert no_token.json()["error"] == "invalid_request"
    assert await echo(hub, token)


# --- introspection -----------------------------------------------------------------------------------------


async def test_a_client_introspects_its_own_active_token(hub: RunningHub) -> None:
    """RFC 7662 §2.2: active, with the token's claims."""
    agent = await make_agent(hub, unique("worker"), "tool:faults__echo")
    token = await client_credentials_token(hub, agent)

    body = await introspect(hub, token, agent)

    assert body["active"] is True
    assert body["scope"] == "tool:faults__echo"
    assert body["client_id"] == agent.client_id
    assert body["sub"] == agent.client_id
    assert body["aud"] == hub.url
    assert body["iss"] == hub.base_url
    assert body["token_type"] == "Bearer"
    assert body["exp"] > body["iat"]
    assert isinstance(body["jti"], str)


async def test_revoked_foreign_and_malformed_tokens_are_inactive_and_say_nothing_else(hub: RunningHub) -> None:
    """RFC 7662 §2.2 (inactive carries only active: false); chosen: a client sees only its own tokens."""
    agent = await make_agent(hub, unique("worker"), "tool:*")
    other = await make_agent(hub, unique("other"), "tool:*")
    revoked = await client_credentials_token(hub, agent)
    await revoke(hub, revoked, agent)
    foreign = await client_credentials_token(hub, other)

    assert await introspect(hub, revoked, agent) == {"active": False}
    assert await introspect(hub, foreign, agent) == {"active": False}
    assert await introspect(hub, "garbage", agent) == {"active": False}
    assert (await introspect(hub, foreign, other))["active"] is True


async def test_introspection_is_for_authenticated_confidential_clients_only(hub: RunningHub) -> None:
    """RFC 7662 §2.1 and §4: no anonymous or public-client token scanning (401)."""
    agent = await make_agent(hub, unique("worker"), "tool:*")
    token = await client_credentials_token(hub, agent)
    app = await make_app(hub)

    anonymous = await post_form(hub, "/oauth/introspect", {"token": token})
    public = await post_form(hub, "/oauth/introspect", {"token": token, "client_id": app.client_id})

    assert anonymous.status_code == 401
    assert public.status_code == 401
    assert public.json()["error"] == "invalid_client"


async def test_a_disabled_agents_token_is_never_reported_active(hub: RunningHub) -> None:
    """Issue 3 §5: a disabled agent can no longer authenticate (401), and no other client sees its token."""
    agent = await make_agent(hub, unique("worker"), "tool:*")
    other = await make_agent(hub, unique("other"), "tool:*")
    token = await client_credentials_token(hub, agent)

    await auth_service(hub).admin.set_agent_enabled(agent.name, False)
    itself = await post_form(hub, "/oauth/introspect", {"token": token}, agent)

    assert itself.status_code == 401
    assert await introspect(hub, token, other) == {"active": False}


async def test_user_tokens_are_inactive_once_the_user_is_disabled(hub: RunningHub) -> None:
    """Issue 3 §5: the subject's state is read at introspection time, access and refresh tokens alike."""
    app, credentials = await confidential_app(hub)
    tokens = await user_tokens(hub, app, credentials)
    user = await hub.hub.stores.identities.user_by_name(app.user)
    assert user is not None

    access = await introspect(hub, tokens["access_token"], credentials)
    refresh_token = await introspect(hub, tokens["refresh_token"], credentials, token_type_hint="refresh_token")
    await hub.hub.stores.identities.set_user_enabled(app.user, False)

    assert access["active"] is True
    assert access["sub"] == user.id
    assert refresh_token["active"] is True
    assert refresh_token["scope"] == "tool:faults__echo"
    assert await introspect(hub, tokens["access_token"], credentials) == {"active": False}
    assert await introspect(hub, tokens["refresh_token"], credentials) == {"active": False}


async def test_a_revoked_refresh_token_is_inactive(hub: RunningHub) -> None:
    """RFC 7009 + RFC 7662: a confidential client revokes its refresh token; both it and the access token die."""
    app, credentials = await confidential_app(hub)
    tokens = await user_tokens(hub, app, credentials)

    response = await revoke(hub, tokens["refresh_token"], credentials)

    assert response.status_code == 200
    assert await introspect(hub, tokens["refresh_token"], credentials) == {"active": False}
    assert await introspect(hub, tokens["access_token"], credentials) == {"active": False}


async def test_a_key_agent_introspects_with_an_assertion_for_the_introspection_endpoint(hub: RunningHub) -> None:
    """RFC 7523 §3 item 3: the endpoint's own URL is an acceptable audience there."""
    key = ECKey.generate_key("P-256", private=True)
    created = await auth_service(hub).admin.create_key_agent(
        unique("keyed"), ["tool:*"], {"keys": [key.as_dict(private=False)]}
    )
    client_id = created.agent.client_id
    token = auth_service(hub).tokens.token_response(created.agent.client_id, ["tool:*"])["access_token"]
    now = int(time.time())
    endpoint = f"{hub.base_url}/oauth/introspect"
    claims = {"iss": client_id, "sub": client_id, "aud": endpoint, "exp": now + 60, "jti": uuid.uuid4().hex}

    response = await post_form(
        hub,
        "/oauth/introspect",
        {
            "token": token,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"]),
        },
    )

    assert response.status_code == 200, response.text
    assert response.json()["active"] is True
    assert response.json()["client_id"] == client_id
