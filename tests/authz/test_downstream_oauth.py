"""Downstream credentials (issue 3 §6): the hub authenticates to an OAuth-protected downstream by itself.

The downstream here is a second, real mcp-hub with auth enabled (its own authorization server, its own
agent for the first hub): hub A's connector gets client-credentials tokens from hub B; the agent talking to
hub A never sees them, and its own token never reaches hub B (T01). Renewal is tested on the connector's
auth flow (`ClientCredentialsAuth`, authlib's OAuth 2 client underneath) against hub B over real HTTP, with its
clock injected so the token's five minutes pass at once: renewed 30 s before it expires, and once (no more)
after a 401.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcp_hub.config.connectors import DownstreamOAuth
from mcp_hub.domain import ConnectorId, Health
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.errors import DownstreamAuthError
from tests.authz.conftest import AgentCredentials, auth_service, bearer, client_credentials_token, make_agent
from tests.conftest import RunningHub, connector_toml, fault_connector, running_hub, serving, write_config

pytestmark = pytest.mark.anyio


def upstream_connector(hub_b: RunningHub, client_id: str) -> str:
    return connector_toml(
        id="hub-b",
        transport="http",
        protocol="2026-07-28",
        url=hub_b.url,
        oauth={
            "token_url": f"{hub_b.base_url}/oauth/token",
            "client_id": client_id,
            "client_secret": "${HUB_B_CLIENT_SECRET}",
            "scope": "tool:faults__*",
        },
    )


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


async def test_a_connector_gets_its_own_token_from_the_downstreams_authorization_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 3 §6, T01: hub A calls hub B with a token B issued to A's connector, never with the agent's."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    config_b = write_config(tmp_path / "b", {"faults": fault_connector()}, auth=True)
    async with running_hub(config_b) as hub_b:
        await hub_b.wait_ready("faults")
        connector_identity = await make_agent(hub_b, "hub-a", "tool:faults__*")
        monkeypatch.setenv("HUB_B_CLIENT_SECRET", connector_identity.client_secret)
        config_a = write_config(
            tmp_path / "a", {"hub-b": upstream_connector(hub_b, connector_identity.client_id)}, auth=True
        )
        async with running_hub(config_a) as hub_a:
            await hub_a.wait_ready("hub-b")
            agent = await make_agent(hub_a, "worker", "tool:hub-b__*")
            agent_token = await client_credentials_token(hub_a, agent)
            async with (
                bearer(agent_token) as http,
                Client(streamable_http_client(hub_a.url, http_client=http), mode="2026-07-28") as client,
            ):
                names = [tool.name for tool in (await client.list_tools()).tools]
                echoed = await client.call_tool("hub-b__faults__echo", {"text": "through two hubs"})
                seen_headers = json.loads(text_of(await client.call_tool("hub-b__faults__meta", {})))
            await hub_b.hub.audit.flush()
            audit_b = await hub_b.hub.stores.audit.recent_audit(limit=50)
            report_a = json.dumps(hub_a.hub.health_report())
    assert "hub-b__faults__echo" in names
    assert text_of(echoed) == "through two hubs"
    # Hub B's calls (its catalog's review rows, issue 11, are written by the hub itself).
    assert {row.client for row in audit_b if row.method == "tools/call"} == {"agent:hub-a"}
    assert agent_token not in json.dumps(seen_headers)
    assert connector_identity.client_secret not in report_a


async def test_a_refused_connector_secret_leaves_the_connector_down_with_the_reason_and_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 3 §6 (our choice): a wrong downstream secret is a clear connector error; the secret is not shown."""
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir()
    config_b = write_config(tmp_path / "b", {"faults": fault_connector()}, auth=True)
    wrong_secret = "mcphs_wrong-secret-canary-7e2f"
    async with running_hub(config_b) as hub_b:
        connector_identity = await make_agent(hub_b, "hub-a", "tool:faults__*")
        monkeypatch.setenv("HUB_B_CLIENT_SECRET", wrong_secret)
        config_a = write_config(
            tmp_path / "a", {"hub-b": upstream_connector(hub_b, connector_identity.client_id)}, auth=True
        )
        async with running_hub(config_a) as hub_a:
            state = await hub_a.hub.pool.get("hub-b").wait_for(Health.DOWN)
            report = json.dumps(hub_a.hub.health_report())
    assert state.detail is not None
    assert "invalid_client" in state.detail
    assert wrong_secret not in report


@dataclass
class Clock:
    """The monotonic clock `ClientCredentialsAuth` reads, moved by the test."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Recorder:
    """Every request the connector's HTTP clients send, the auth flow's token requests included, as
    (path, Authorization header) at the moment it was sent (the auth flow re-sends the same request object)."""

    sent: list[tuple[str, str]]

    async def __call__(self, request: httpx2.Request) -> None:
        self.sent.append((urlsplit(str(request.url)).path, request.headers.get("authorization", "")))

    def token_requests(self) -> int:
        return sum(path == "/oauth/token" for path, _ in self.sent)

    def bearer_tokens(self) -> list[str]:
        """The tokens sent to the MCP endpoint, in order."""
        return [authorization.removeprefix("Bearer ") for path, authorization in self.sent if path == "/mcp"]


MODERN_LIST: dict[str, Any] = {
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
MODERN_HEADERS = {
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
    "Mcp-Method": "tools/list",
}


def connector_oauth(hub_b: RunningHub, credentials: AgentCredentials) -> DownstreamOAuth:
    declared = DownstreamOAuth(
        token_url=f"{hub_b.base_url}/oauth/token",
        client_id=credentials.client_id,
        client_secret="${HUB_B_CLIENT_SECRET}",
        scope="tool:faults__*",
    )
    return declared.model_copy(update={"client_secret": credentials.client_secret})  # as `resolved_oauth` does


async def test_the_connectors_token_is_renewed_before_it_expires_and_once_after_a_401(tmp_path: Path) -> None:
    """Issue 3 §6, our choice (docs/oauth.md): a token of 300 s is reused until 30 s before it expires, then
    renewed; a 401 from the downstream (here: the token was revoked, RFC 7009) makes exactly one renewal and
    one retry; if the renewal is refused too, the error surfaces instead of a loop. T01: only hub B's tokens."""
    config_b = write_config(tmp_path, {"faults": fault_connector()}, "[auth]\ndecision_cache_seconds = 0\n", auth=True)
    async with running_hub(config_b) as hub_b:
        await hub_b.wait_ready("faults")
        credentials = await make_agent(hub_b, "hub-a", "tool:faults__*")
        clock = Clock()
        recorder = Recorder(sent=[])
        hooks = {"request": [recorder]}
        async with (
            ClientCredentialsAuth(
                ConnectorId("hub-b"),
                connector_oauth(hub_b, credentials),
                hub_b.url,
                timeout=10,
                clock=clock,
                event_hooks=hooks,
            ) as auth,
            httpx2.AsyncClient(auth=auth, event_hooks=hooks, timeout=10) as client,
        ):

            async def list_status() -> int:
                return (await client.post(hub_b.url, json=MODERN_LIST, headers=MODERN_HEADERS)).status_code

            statuses = [await list_status(), await list_status()]
            tokens_while_fresh = recorder.token_requests()
            clock.now += 300 - 30 - 1  # one second before the renewal point: still the same token
            statuses.append(await list_status())
            tokens_just_before = recorder.token_requests()
            clock.now += 1  # 30 s before expiry: renewed before use
            statuses.append(await list_status())
            tokens_at_renewal = recorder.token_requests()

            revoked = await client_b_revokes(hub_b, credentials, recorder.bearer_tokens()[-1])
            statuses.append(await list_status())  # 401 with the revoked token → one renewal → retried
            tokens_after_401 = recorder.token_requests()
            bearers_after_401 = recorder.bearer_tokens()

            await auth_service(hub_b).admin.set_agent_enabled(credentials.name, False)
            with pytest.raises(DownstreamAuthError) as refused:
                await list_status()
            tokens_after_refusal = recorder.token_requests()

    assert statuses == [200, 200, 200, 200, 200]
    assert tokens_while_fresh == 1
    assert tokens_just_before == 1
    assert tokens_at_renewal == 2
    assert revoked.status_code == 200
    assert tokens_after_401 == 3
    assert bearers_after_401[-2] != bearers_after_401[-1]  # the retry carried the renewed token
    assert len(set(bearers_after_401)) == 3
    assert "invalid_client" in str(refused.value)
    assert credentials.client_secret not in str(refused.value)
    assert tokens_after_refusal == 4  # exactly one renewal attempt after the second 401


async def client_b_revokes(hub_b: RunningHub, credentials: AgentCredentials, token: str) -> httpx2.Response:
    """Hub B's client revokes its own access token (RFC 7009), as an operator might after a leak."""
    async with httpx2.AsyncClient(timeout=10) as client:
        return await client.post(
            f"{hub_b.base_url}/oauth/revoke",
            data={"token": token, "token_type_hint": "access_token"},
            auth=(credentials.client_id, credentials.client_secret),
        )


async def test_an_access_token_that_could_split_the_authorization_header_is_refused_and_never_sent() -> None:
    """RFC 6750 §2.1 (`b64token`), threat T32: a token endpoint answering a token with CR/LF (or spaces) would
    smuggle header fields into every request to the downstream; the connector's auth refuses it with a clear
    reason that does not repeat the token, and the next answer, a proper token, is used."""
    tokens = iter(["abc\r\nX-Smuggled: yes", "good-token_1.2~+/=="])

    async def token_endpoint(request: Request) -> JSONResponse:
        del request
        return JSONResponse({"access_token": next(tokens), "token_type": "Bearer", "expires_in": 300})

    app = Starlette(routes=[Route("/token", token_endpoint, methods=["POST"])])
    async with serving(app) as base_url:
        oauth = DownstreamOAuth(token_url=f"{base_url}/token", client_id="hub", client_secret="${S}")
        oauth = oauth.model_copy(update={"client_secret": "secret"})
        async with ClientCredentialsAuth(ConnectorId("down"), oauth, "http://down.example/mcp", timeout=5) as auth:
            with pytest.raises(DownstreamAuthError) as refused:
                await auth.bearer()
            accepted = await auth.bearer()

    assert "not a b64token" in str(refused.value)
    assert "Smuggled" not in str(refused.value)
    assert accepted == "good-token_1.2~+/=="
