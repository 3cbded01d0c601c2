"""Sessions bound to their principal, per-caller lists marked private, and no token passthrough, with auth on.

- T13 (session hijack): a 2025-11-25 `Mcp-Session-Id` belongs to the principal that created it; another
  agent presenting it gets 404 as if it did not exist (our choice: the spec only says session ids must be
  unguessable and that a server MAY bind them; we do, and hide their existence). The same holds for the
  session's resumable streams: another agent can neither resume nor probe them.
- T27 (cross-agent cache leakage): a filtered `tools/list` carries `cacheScope: "private"`
  (spec 2026-07-28, basic/utilities/caching), and two agents' lists differ; unfiltered, `"public"`. The hub's
  own page cache shares a page only between agents with the same effective grants.
- T01 (token passthrough): the MCP security best practices forbid forwarding the client's token; a
  recording downstream never sees the agent's bearer token or any part of it, whatever credential the
  connector itself uses.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.domain import Role
from tests.authz.conftest import auth_service, bearer, client_credentials_token, make_agent
from tests.authz.flow import PASSWORD, REDIRECT_URI
from tests.conftest import RunningHub, connector_toml, fault_connector, running_hub, write_config
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
ACCEPT = "application/json, text/event-stream"
CANARY = "canary-hub-credential-71c4"


def legacy_headers(token: str, session: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT, "Authorization": f"Bearer {token}"}
    if session is not None:
        headers |= {"Mcp-Session-Id": session, "MCP-Protocol-Version": LEGACY}
    return headers


async def open_legacy_session(http: httpx2.AsyncClient, url: str, token: str) -> str:
    """`initialize` + `notifications/initialized` over raw HTTP; the session id the hub assigned."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
    }
    response = await http.post(url, headers=legacy_headers(token), json=initialize)
    assert response.status_code == 200, response.text
    session = response.headers["mcp-session-id"]
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    acknowledged = await http.post(url, headers=legacy_headers(token, session), json=initialized)
    assert acknowledged.status_code == 202, acknowledged.text
    return session


LIST_TOOLS: dict[str, Any] = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    config = write_config(tmp_path_factory.mktemp("sessions"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


async def test_another_agent_presenting_a_legacy_session_id_gets_404(hub: RunningHub) -> None:
    """T13, our choice: B with A's Mcp-Session-Id is told the session does not exist; A's session lives on."""
    alice = await make_agent(hub, "session-alice", "tool:faults__*")
    mallory = await make_agent(hub, "session-mallory", "tool:faults__*")
    alice_token = await client_credentials_token(hub, alice)
    mallory_token = await client_credentials_token(hub, mallory)
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_legacy_session(http, hub.url, alice_token)
        hijacked = await http.post(hub.url, headers=legacy_headers(mallory_token, session), json=LIST_TOOLS)
        hijacked_stream = await http.get(hub.url, headers=legacy_headers(mallory_token, session))
        hijacked_delete = await http.delete(hub.url, headers=legacy_headers(mallory_token, session))
        owner = await http.post(hub.url, headers=legacy_headers(alice_token, session), json=LIST_TOOLS)
    assert hijacked.status_code == 404
    assert hijacked.json()["error"]["message"] == "Session not found"
    assert hijacked_stream.status_code == 404
    assert hijacked_delete.status_code == 404
    assert owner.status_code == 200  # the DELETE did not end Alice's session


@pytest.mark.parametrize("forged", ["0" * 32, "f" * 32, "not-a-session", "x" * 200])
async def test_an_unknown_or_forged_session_id_gets_404_for_every_method(hub: RunningHub, forged: str) -> None:
    """T13, MCP 2025-11-25 transports (a server MUST answer an unknown session id with 404): a valid token does
    not make a session id the hub never issued usable; the binding fails closed."""
    agent = await make_agent(hub, f"session-forger-{len(forged)}-{forged[0]}", "tool:faults__*")
    token = await client_credentials_token(hub, agent)
    async with httpx2.AsyncClient(timeout=10) as http:
        posted = await http.post(hub.url, headers=legacy_headers(token, forged), json=LIST_TOOLS)
        streamed = await http.get(hub.url, headers=legacy_headers(token, forged))
        deleted = await http.delete(hub.url, headers=legacy_headers(token, forged))
    assert posted.status_code == 404
    assert posted.json()["error"]["message"] == "Session not found"
    assert streamed.status_code == 404
    assert deleted.status_code == 404


async def test_a_session_ended_by_its_owner_is_gone_for_everyone(hub: RunningHub) -> None:
    """T13, MCP 2025-11-25 transports: after DELETE the id is unknown, to its owner as to anyone; the binding
    ends with the session instead of lingering."""
    alice = await make_agent(hub, "session-ender", "tool:faults__*")
    token = await client_credentials_token(hub, alice)
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_legacy_session(http, hub.url, token)
        ended = await http.delete(hub.url, headers=legacy_headers(token, session))
        after = await http.post(hub.url, headers=legacy_headers(token, session), json=LIST_TOOLS)
    assert ended.status_code == 200
    assert after.status_code == 404


async def test_another_agent_can_neither_resume_nor_probe_a_sessions_streams(hub: RunningHub) -> None:
    """T13, our choice: Mallory presenting Alice's session id, with or without a `Last-Event-ID` of Alice's
    stream, gets the 404 of a session that does not exist; Alice's event store is not even consulted (nothing
    stored, no event id tested), and Alice still resumes her stream."""
    alice = await make_agent(hub, "streams-alice", "tool:faults__*")
    mallory = await make_agent(hub, "streams-mallory", "tool:faults__*")
    alice_token = await client_credentials_token(hub, alice)
    mallory_token = await client_credentials_token(hub, mallory)
    store = hub.hub.stream_events
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_legacy_session(http, hub.url, alice_token)
        async with http.stream("GET", hub.url, headers=legacy_headers(alice_token, session)) as stream:
            priming = await anext(aiter(stream.aiter_lines()))
        event_id = priming.removeprefix("id: ")
        held = store.stats()
        resumed = await http.get(hub.url, headers={**legacy_headers(mallory_token, session), "Last-Event-ID": event_id})
        opened = await http.get(hub.url, headers=legacy_headers(mallory_token, session))
        assert store.stats() == held
        async with http.stream(
            "GET", hub.url, headers={**legacy_headers(alice_token, session), "Last-Event-ID": event_id}
        ) as own:
            status = own.status_code
    assert priming.startswith("id: g.")
    assert (resumed.status_code, opened.status_code) == (404, 404)
    assert status == 200


async def test_one_app_acting_for_two_users_cannot_share_a_session(hub: RunningHub) -> None:
    """T13, our choice: a session belongs to the agent AND the user it acts for (the token's `sub`); the same
    app with another user's token is another principal and gets 404."""
    service = auth_service(hub)
    app = await service.admin.create_agent("session-app", [], public=True, redirect_uris=[REDIRECT_URI])
    tokens: list[str] = []
    for name in ("session-user-a", "session-user-b"):
        user = await service.admin.create_user(name, Role.APPROVER, PASSWORD)
        await service.admin.add_grant(f"user:{name}", "tool:faults__*")
        tokens.append(
            service.tokens.token_response(app.agent.client_id, ["tool:faults__*"], user_id=user.id)["access_token"]
        )
    first_user, second_user = tokens
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_legacy_session(http, hub.url, first_user)
        other_user = await http.post(hub.url, headers=legacy_headers(second_user, session), json=LIST_TOOLS)
        same_user = await http.post(hub.url, headers=legacy_headers(first_user, session), json=LIST_TOOLS)
    assert other_user.status_code == 404
    assert same_user.status_code == 200


async def test_an_agent_without_a_token_cannot_use_a_known_session_id(hub: RunningHub) -> None:
    """T13, MCP authorization spec: a session id is never a credential; without a token it is 401."""
    alice = await make_agent(hub, "session-owner", "tool:faults__*")
    token = await client_credentials_token(hub, alice)
    async with httpx2.AsyncClient(timeout=10) as http:
        session = await open_legacy_session(http, hub.url, token)
        headers = {"Content-Type": "application/json", "Accept": ACCEPT, "Mcp-Session-Id": session}
        response = await http.post(hub.url, headers={**headers, "MCP-Protocol-Version": LEGACY}, json=LIST_TOOLS)
    assert response.status_code == 401


async def modern_list(url: str, token: str | None) -> dict[str, Any]:
    """A raw 2026-07-28 `tools/list`: its `result`."""
    headers = {"Content-Type": "application/json", "Accept": ACCEPT, "MCP-Protocol-Version": MODERN}
    headers["Mcp-Method"] = "tools/list"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": meta}}
    async with httpx2.AsyncClient(timeout=10) as http:
        response = await http.post(url, headers=headers, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


async def test_two_agents_lists_are_private_and_differ(hub: RunningHub) -> None:
    """T27, spec 2026-07-28 (caching): a list filtered for its caller is `cacheScope: private`."""
    echo_only = await make_agent(hub, "cache-echo", "tool:faults__echo")
    pid_only = await make_agent(hub, "cache-pid", "tool:faults__pid")
    echo_list = await modern_list(hub.url, await client_credentials_token(hub, echo_only))
    pid_list = await modern_list(hub.url, await client_credentials_token(hub, pid_only))
    assert echo_list["cacheScope"] == pid_list["cacheScope"] == "private"
    assert [tool["name"] for tool in echo_list["tools"]] == ["faults__echo"]
    assert [tool["name"] for tool in pid_list["tools"]] == ["faults__pid"]
    # Issue 12 §1: the hub keeps each page per authorization context; an agent with the same effective grants is
    # served the page built for the first, an agent with other grants never is.
    hits = hub.hub.page_cache.hits
    twin = await make_agent(hub, "cache-echo-twin", "tool:faults__echo")
    assert await modern_list(hub.url, await client_credentials_token(hub, twin)) == echo_list
    assert hub.hub.page_cache.hits == hits + 1


async def test_with_auth_disabled_the_list_is_public(tmp_path: Path) -> None:
    """T27, spec 2026-07-28 (caching): the same list for every caller may be shared: `cacheScope: public`."""
    config = write_config(tmp_path, {"faults": fault_connector()})
    async with running_hub(config) as open_hub:
        await open_hub.wait_ready("faults")
        result = await modern_list(open_hub.url, None)
    assert result["cacheScope"] == "public"
    assert "faults__echo" in {tool["name"] for tool in result["tools"]}


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


def pieces(token: str, length: int = 12) -> list[str]:
    """Every run of `length` characters of the token: none may reach the downstream."""
    return [token[start : start + length] for start in range(len(token) - length + 1)]


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_downstream_never_sees_the_agents_bearer_token_or_any_part_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, era: str
) -> None:
    """T01, spec (security best practices: no token passthrough), with auth on and in both eras.

    Connector `web` has its own credential (it gets exactly that), connector `bare` none (it gets no
    Authorization header at all); both record the headers each call arrived with. `web` echoes its credential
    back, which the hub scrubs before the agent sees it (T30): the agent reads `Bearer [redacted]`.
    """
    monkeypatch.setenv("WEB_TOKEN", CANARY)
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    connectors = {
        "web": connector_toml(id="web", transport="http", url=url, headers={"Authorization": "Bearer ${WEB_TOKEN}"}),
        "bare": connector_toml(id="bare", transport="http", url=url),
    }
    config = write_config(tmp_path, connectors, auth=True)
    with http_fault_server(port):
        async with running_hub(config) as running:
            await running.wait_ready("web", "bare", within_seconds=30)
            agent = await make_agent(running, "passthrough-probe", "tool:web__headers", "tool:bare__headers")
            token = await client_credentials_token(running, agent)
            async with (
                bearer(token) as http,
                Client(streamable_http_client(running.url, http_client=http), mode=era) as client,
            ):
                with_credential = text_of(await client.call_tool("web__headers", {}))
                without_credential = text_of(await client.call_tool("bare__headers", {}))
    assert json.loads(with_credential)["authorization"] == "Bearer [redacted]"
    assert CANARY not in with_credential
    assert "authorization" not in json.loads(without_credential)
    for seen in (with_credential, without_credential):
        leaked = [piece for piece in pieces(token) if piece in seen]
        assert leaked == [], f"parts of the agent's token reached the downstream: {leaked[:3]}"
