"""Refresh tokens: rotation in families, reuse detection, scope rules (issue 3; threat T07)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.authz.flow import auth_service, code_flow_hub, make_app, mcp_status, refresh, sdk_provider, tokens_for
from tests.conftest import RunningHub

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    async with code_flow_hub(tmp_path_factory.mktemp("refresh")) as running:
        yield running


async def test_a_refresh_rotates_the_refresh_token(hub: RunningHub) -> None:
    """OAuth 2.1 §4.3.1 (public clients: rotation): a new access and refresh token; the new one refreshes."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    first = await refresh(hub, app, tokens["refresh_token"])
    assert first.status_code == 200, first.text
    second = await refresh(hub, app, first.json()["refresh_token"])

    assert second.status_code == 200, second.text
    body = first.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["scope"] == "tool:faults__echo"
    assert first.headers["cache-control"] == "no-store"
    claims = await auth_service(hub).tokens.verify(body["access_token"])
    original = await auth_service(hub).tokens.verify(tokens["access_token"])
    assert claims.family_id == original.family_id
    assert claims.user_id == original.user_id


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(hub: RunningHub) -> None:
    """T07 (RFC 9700 §4.14.2): an old refresh token presented again ends every token of its family."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    rotated = (await refresh(hub, app, tokens["refresh_token"])).json()
    assert await mcp_status(hub, rotated["access_token"]) == 200

    reused = await refresh(hub, app, tokens["refresh_token"])
    newest = await refresh(hub, app, rotated["refresh_token"])

    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    assert newest.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, rotated["access_token"]) == 401
    assert await mcp_status(hub, tokens["access_token"]) == 401


async def test_parallel_refreshes_with_one_token_have_exactly_one_winner_and_then_the_family_dies(
    hub: RunningHub,
) -> None:
    """T07 (atomic consume): N=10 concurrent refreshes with the same token → one 200, nine invalid_grant;
    the losers' reuse revokes the family, so even the winner's new tokens stop working."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    responses: list[httpx2.Response] = []

    async def attempt() -> None:
        responses.append(await refresh(hub, app, tokens["refresh_token"]))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            for _ in range(10):
                tasks.start_soon(attempt)

    winners = [response for response in responses if response.status_code == 200]
    losers = [response for response in responses if response.status_code != 200]
    assert len(winners) == 1, [response.text for response in responses]
    assert all(response.status_code == 400 for response in losers)
    assert {response.json()["error"] for response in losers} == {"invalid_grant"}
    winner = winners[0].json()
    after = await refresh(hub, app, winner["refresh_token"])
    assert after.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, winner["access_token"]) == 401


async def test_a_refresh_may_narrow_the_scope_but_never_widen_it(hub: RunningHub) -> None:
    """RFC 6749 §6: the requested scope must not include any scope not originally granted."""
    app = await make_app(hub, grants=("tool:faults__echo", "tool:faults__pid"))
    tokens = await tokens_for(hub, app, scope="tool:faults__echo tool:faults__pid")
    narrowed = await refresh(hub, app, tokens["refresh_token"], scope="tool:faults__echo")
    assert narrowed.status_code == 200, narrowed.text
    widened = await refresh(hub, app, narrowed.json()["refresh_token"], scope="tool:*")
    unchanged = await refresh(hub, app, narrowed.json()["refresh_token"])

    assert tokens["scope"] == "tool:faults__echo tool:faults__pid"
    assert narrowed.json()["scope"] == "tool:faults__echo"
    assert widened.status_code == 400
    assert widened.json()["error"] == "invalid_scope"
    # The refused request did not use the token up, and the family keeps its approved scope (§6).
    assert unchanged.status_code == 200, unchanged.text
    assert unchanged.json()["scope"] == "tool:faults__echo tool:faults__pid"


async def test_a_refresh_is_decided_again_against_the_users_current_grants(hub: RunningHub) -> None:
    """Chosen by us (issue 3): a refreshed token never carries a scope the user has lost."""
    app = await make_app(hub, grants=("tool:faults__echo", "tool:faults__pid"))
    tokens = await tokens_for(hub, app)
    await auth_service(hub).admin.remove_grant(f"user:{app.user}", "tool:faults__pid")
    refreshed = await refresh(hub, app, tokens["refresh_token"])

    assert tokens["scope"] == "tool:faults__echo tool:faults__pid"
    assert refreshed.json()["scope"] == "tool:faults__echo"


async def test_a_disabled_user_cannot_refresh(hub: RunningHub) -> None:
    """RFC 6749 §5.2 invalid_grant: the user the grant was made for may no longer act."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    await hub.hub.stores.identities.set_user_enabled(app.user, False)
    auth_service(hub).decider.forget()
    refreshed = await refresh(hub, app, tokens["refresh_token"])

    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, tokens["access_token"]) == 401


async def test_another_client_presenting_the_refresh_token_gets_nothing_and_revokes_the_family(
    hub: RunningHub,
) -> None:
    """T07 (RFC 6749 §6: the token is bound to its client); chosen by us: a token in the wrong hands is
    treated as stolen."""
    app = await make_app(hub)
    thief = await make_app(hub, agent="thief-app")
    tokens = await tokens_for(hub, app)
    stolen = await refresh(hub, thief, tokens["refresh_token"])

    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, tokens["access_token"]) == 401


async def test_unknown_and_missing_refresh_tokens_are_refused(hub: RunningHub) -> None:
    """RFC 6749 §5.2: invalid_grant for a token the hub never issued, invalid_request for none at all."""
    app = await make_app(hub)
    unknown = await refresh(hub, app, "mcphr_not-a-token")
    async with httpx2.AsyncClient() as client:
        missing = await client.post(
            f"{hub.base_url}/oauth/token", data={"grant_type": "refresh_token", "client_id": app.client_id}
        )

    assert unknown.json()["error"] == "invalid_grant"
    assert missing.json()["error"] == "invalid_request"


async def test_the_sdk_client_refreshes_when_its_access_token_expires(hub: RunningHub) -> None:
    """MCP authorization spec: the SDK's client refreshes by itself; rotation leaves the old token dead."""
    app = await make_app(hub)
    provider, storage = sdk_provider(hub, app)
    async with httpx2.AsyncClient(auth=provider, timeout=30) as http:
        async with Client(streamable_http_client(hub.url, http_client=http), mode="2026-07-28") as client:
            await client.list_tools()
        assert storage.tokens is not None
        first = storage.tokens
        provider.context.token_expiry_time = time.time() - 1  # the clock says the access token has expired
        async with Client(streamable_http_client(hub.url, http_client=http), mode="2026-07-28") as client:
            echoed = await client.call_tool("faults__echo", {"text": "after a refresh"})

    assert echoed.is_error is False
    assert storage.tokens.refresh_token is not None
    assert storage.tokens.refresh_token != first.refresh_token
    assert first.refresh_token is not None
    assert (await refresh(hub, app, first.refresh_token)).json()["error"] == "invalid_grant"
