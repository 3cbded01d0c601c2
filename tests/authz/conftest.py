"""Fixtures for the authorization tests: a hub with auth enabled, and agents made through the admin layer."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest

from mcp_hub.runtime import Authorization
from tests.conftest import HubUnderTest, RunningHub, fault_connector, running_hub, write_config
from tests.db.conftest import fresh_postgres_database


@dataclass(frozen=True)
class AgentCredentials:
    name: str
    client_id: str
    client_secret: str


def auth_service(hub: HubUnderTest) -> Authorization:
    """The authorization parts of a hub started with auth."""
    service = hub.hub.auth
    assert service is not None, "the hub was started without auth"
    return service


async def make_agent(hub: HubUnderTest, name: str, *grants: str) -> AgentCredentials:
    """A confidential agent with `grants`, created the way `mcp-hub agents create` does."""
    created = await auth_service(hub).admin.create_agent(name, list(grants))
    assert created.client_secret is not None
    return AgentCredentials(name=name, client_id=created.agent.client_id, client_secret=created.client_secret)


async def client_credentials_token(hub: HubUnderTest, agent: AgentCredentials, scope: str | None = None) -> str:
    """An access token from the real token endpoint (client_secret_basic)."""
    form = {"grant_type": "client_credentials", "resource": hub.url}
    if scope is not None:
        form["scope"] = scope
    async with hub.client() as client:
        response = await client.post(
            f"{hub.base_url}/oauth/token", data=form, auth=(agent.client_id, agent.client_secret)
        )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> httpx2.AsyncClient:
    """An HTTP client that sends `token` on every request (for `mcp.Client(url, http_client=...)`)."""
    return httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)


@pytest.fixture(scope="module")
async def auth_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub with auth enabled and the fault fixture server as connector `faults` (legacy era, stdio), shared by
    the tests of one module: each test makes agents and users of its own names, so they do not interfere."""
    config = write_config(tmp_path_factory.mktemp("auth-hub"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def auth_hub_on_each_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[RunningHub]:
    """`auth_hub` on SQLite and on a fresh PostgreSQL database (issue 3: tests run on both)."""
    async with AsyncExitStack() as stack:
        url = None
        if request.param == "postgres":
            url = await stack.enter_async_context(fresh_postgres_database())
        config = write_config(tmp_path, {"faults": fault_connector()}, auth=True, database_url=url)
        hub = await stack.enter_async_context(running_hub(config))
        await hub.wait_ready("faults")
        yield hub
