"""Every route under `/admin` (the console) and `/admin/api` (the JSON API), enumerated from the hub's own route
table, refuses an approver's session and an agent's MCP token, for every method it answers.

The routes are read from the built app, not listed by hand, so a route added later without the admin check fails
here. An approver sends its own valid CSRF token (forms) or header (API), so a refusal cannot come from the CSRF
check alone. Threats T10 (the admin surface for admins only; an agent's token is for `/mcp`) and T06; the one
public route, the OpenAPI document (docs/admin-api.md), is named explicitly. Our choice: fail closed on every route.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass

import httpx2
import pytest
from starlette.routing import BaseRoute, Mount, Route

from mcp_hub.authz.urls import ADMIN_API_PATH
from mcp_hub.console.base import ADMIN_PATH
from mcp_hub.domain import Role
from mcp_hub.web.sessions import CSRF_HEADER
from tests.authz.conftest import auth_service, client_credentials_token, make_agent
from tests.conftest import InProcessHub, in_process_hub, write_config
from tests.web.browser import hidden_field, sign_in

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery staple"
PUBLIC = {("GET", f"{ADMIN_API_PATH}/openapi.json")}
"""Routes under /admin that anyone may read: the API's description, which holds no data."""


@dataclass
class Callers:
    hub: InProcessHub
    approver: httpx2.AsyncClient
    approver_csrf: str
    agent_token: str


@pytest.fixture(scope="module")
async def callers(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Callers]:
    config = write_config(tmp_path_factory.mktemp("admin-routes"), {}, "", auth=True)
    async with in_process_hub(config) as hub:
        await auth_service(hub).admin.create_user("ann", Role.APPROVER, PASSWORD)
        agent = await make_agent(hub, "bot", "tool:*")
        token = await client_credentials_token(hub, agent)
        async with hub.client() as approver:
            signed_in = await sign_in(approver, hub.base_url, "ann", PASSWORD)
            assert signed_in.status_code == 303, signed_in.text
            page = await approver.get("/approvals")
            assert page.status_code == 200, page.text
            yield Callers(hub, approver, hidden_field(page.text, "csrf"), token)


def admin_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, concrete path) of every route under /admin, path parameters filled with a plain name."""
    for route in routes:
        if isinstance(route, Mount):
            yield from admin_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"\{[^}]+\}", "x", prefix + route.path)
            if path == ADMIN_PATH or path.startswith(ADMIN_PATH + "/"):
                for method in sorted((route.methods or set()) - {"HEAD"}):
                    if (method, path) not in PUBLIC:
                        yield method, path


async def ask(client: httpx2.AsyncClient, method: str, path: str, csrf: str | None) -> httpx2.Response:
    if method == "GET":
        return await client.get(path)
    if path.startswith(ADMIN_API_PATH):
        headers = {CSRF_HEADER: csrf} if csrf else {}
        return await client.request(method, path, json={}, headers=headers)
    return await client.request(method, path, data={"csrf": csrf or ""})


def enumerated(callers: Callers) -> list[tuple[str, str]]:
    routes = sorted(set(admin_routes(callers.hub.app.routes)))
    assert any(path.startswith(ADMIN_API_PATH + "/") for _, path in routes)
    assert any(method == "POST" and not path.startswith(ADMIN_API_PATH) for method, path in routes)
    assert len(routes) > 40, routes  # the console's and the API's routes were all found
    return routes


async def test_an_approvers_session_is_refused_on_every_admin_route(callers: Callers) -> None:
    """Our choice (threat T10, fail closed): the console and the admin API are for admins; an approver gets 403
    on every route and method, even with its own valid CSRF token."""
    answers = {
        (method, path): (await ask(callers.approver, method, path, callers.approver_csrf)).status_code
        for method, path in enumerated(callers)
    }
    assert {route: status for route, status in answers.items() if status != 403} == {}


async def test_an_agents_mcp_token_is_refused_on_every_admin_route(callers: Callers) -> None:
    """Mandated by RFC 8707 §2 and RFC 6750 §3.1 for the API (a token for the MCP endpoint's audience is 401
    `invalid_token` there); our choice for the console, which knows only web sessions: a bearer token is no
    session, so it is sent to sign in (threat T10)."""
    async with callers.hub.client(headers={"Authorization": f"Bearer {callers.agent_token}"}) as agent:
        answers = {(method, path): await ask(agent, method, path, None) for method, path in enumerated(callers)}
    wrong: dict[tuple[str, str], int] = {}
    for (method, path), answer in answers.items():
        if path.startswith(ADMIN_API_PATH):
            if answer.status_code != 401 or 'error="invalid_token"' not in answer.headers["WWW-Authenticate"]:
                wrong[method, path] = answer.status_code
        elif answer.status_code != 303 or not answer.headers["location"].startswith("/login"):
            wrong[method, path] = answer.status_code
    assert wrong == {}
