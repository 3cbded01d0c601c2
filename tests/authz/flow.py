"""Helpers for the authorization code and refresh tests: a hub, a user, a public app, PKCE, token calls."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx2
from mcp.client.auth import OAuthClientProvider
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from mcp_hub.domain import Role
from mcp_hub.runtime import Authorization
from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config
from tests.web.browser import authorize_as

REDIRECT_URI = "http://127.0.0.1:8976/callback"
PASSWORD = "correct horse battery staple"


def auth_service(hub: RunningHub) -> Authorization:
    service = hub.hub.auth
    assert service is not None, "the hub was started without auth"
    return service


@asynccontextmanager
async def code_flow_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    """A hub with auth, the fault server as `faults`, and no decision cache (revocations apply at once); the
    modules that use it share one per module."""
    config = write_config(tmp_path, {"faults": fault_connector()}, "[auth]\ndecision_cache_seconds = 0\n", auth=True)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


@dataclass(frozen=True)
class App:
    """A public client registered by the admin, and the user who signs in to it."""

    client_id: str
    redirect_uri: str
    user: str
    password: str


async def make_app(
    hub: RunningHub,
    *,
    agent: str = "desktop-app",
    user: str = "alice",
    grants: tuple[str, ...] = ("tool:faults__echo",),
    redirect_uri: str = REDIRECT_URI,
) -> App:
    """A public app and its user, named `agent` and `user` plus a number of their own (tests share hubs)."""
    service = auth_service(hub)
    agent, user = unique(agent), unique(user)
    if await hub.hub.stores.identities.user_by_name(user) is None:
        await service.admin.create_user(user, Role.APPROVER, PASSWORD)
    for pattern in grants:
        await service.admin.add_grant(f"user:{user}", pattern)
    created = await service.admin.create_agent(agent, [], public=True, redirect_uris=[redirect_uri])
    return App(client_id=created.agent.client_id, redirect_uri=redirect_uri, user=user, password=PASSWORD)


@dataclass(frozen=True)
class Pkce:
    verifier: str
    challenge: str

    @staticmethod
    def new() -> Pkce:
        verifier = secrets.token_urlsafe(48)
        digest = hashlib.sha256(verifier.encode()).digest()
        return Pkce(verifier, base64.urlsafe_b64encode(digest).decode().rstrip("="))


def authorize_url(hub: RunningHub, app: App, pkce: Pkce | None, **overrides: str | None) -> str:
    """An authorization request as a well-behaved client sends it; `overrides` change or (None) drop fields."""
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": app.redirect_uri,
        "state": "state-" + secrets.token_urlsafe(8),
        "code_challenge": None if pkce is None else pkce.challenge,
        "code_challenge_method": "S256",
        "resource": hub.url,
    }
    params.update(overrides)
    return f"{hub.base_url}/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


async def token_request(hub: RunningHub, form: dict[str, str], *, dpop: str | None = None) -> httpx2.Response:
    """POST `form` to the token endpoint, with a `DPoP` proof header when one is given (RFC 9449 §5)."""
    headers = {"DPoP": dpop} if dpop is not None else {}
    async with httpx2.AsyncClient(timeout=30) as client:
        return await client.post(f"{hub.base_url}/oauth/token", data=form, headers=headers)


async def exchange(
    hub: RunningHub, app: App, code: str, verifier: str, *, dpop: str | None = None, **overrides: str
) -> httpx2.Response:
    form = {
        "grant_type": "authorization_code",
        "client_id": app.client_id,
        "code": code,
        "redirect_uri": app.redirect_uri,
        "code_verifier": verifier,
        "resource": hub.url,
    }
    return await token_request(hub, {**form, **overrides}, dpop=dpop)


async def refresh(
    hub: RunningHub, app: App, refresh_token: str, *, dpop: str | None = None, **extra: str
) -> httpx2.Response:
    form = {"grant_type": "refresh_token", "client_id": app.client_id, "refresh_token": refresh_token}
    return await token_request(hub, {**form, "resource": hub.url, **extra}, dpop=dpop)


async def code_for(hub: RunningHub, app: App, pkce: Pkce, **overrides: str | None) -> str:
    """Sign in, approve, and return the authorization code the redirect carries."""
    async with httpx2.AsyncClient() as browser:
        answer = await authorize_as(
            browser, hub.base_url, authorize_url(hub, app, pkce, **overrides), app.user, app.password
        )
    return answer["code"]


async def tokens_for(hub: RunningHub, app: App, **overrides: str | None) -> dict[str, Any]:
    """The token response of a complete, successful authorization code flow."""
    pkce = Pkce.new()
    response = await exchange(hub, app, await code_for(hub, app, pkce, **overrides), pkce.verifier)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def mcp_status(hub: RunningHub, access_token: str) -> int:
    """The HTTP status of a valid 2026-07-28 tools/list with `access_token`: 200, or 401 when it is refused."""
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            hub.url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/list",
                "params": {
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    }
                },
            },
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/list",
            },
        )
    return response.status_code


class MemoryStorage:
    """The SDK's `TokenStorage` in memory, optionally pre-seeded with a client the admin registered."""

    def __init__(self, client_info: OAuthClientInformationFull | None = None) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def sdk_provider(hub: RunningHub, app: App) -> tuple[OAuthClientProvider, MemoryStorage]:
    """The SDK's OAuth client, whose "browser" signs in and approves through the hub's real pages."""
    redirect = AnyUrl(app.redirect_uri)
    storage = MemoryStorage(
        OAuthClientInformationFull(
            client_id=app.client_id,
            redirect_uris=[redirect],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
        )
    )
    answers: list[dict[str, str]] = []

    async def redirect_handler(url: str) -> None:
        async with httpx2.AsyncClient() as browser:
            answers.append(await authorize_as(browser, hub.base_url, url, app.user, app.password))

    async def callback_handler() -> AuthorizationCodeResult:
        answer = answers.pop()
        return AuthorizationCodeResult(code=answer["code"], state=answer.get("state"), iss=answer.get("iss"))

    metadata = OAuthClientMetadata(
        redirect_uris=[redirect],
        token_endpoint_auth_method="none",
        grant_types=["authorization_code", "refresh_token"],
        client_name="desktop-app",
    )
    provider = OAuthClientProvider(
        hub.url, metadata, storage, redirect_handler=redirect_handler, callback_handler=callback_handler
    )
    return provider, storage
