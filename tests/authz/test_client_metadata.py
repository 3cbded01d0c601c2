"""Client ID Metadata Documents and the egress guard that fetches them (threat T11)."""

from __future__ import annotations

import ipaddress
import json
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz.client_metadata import check_client_id_url
from mcp_hub.authz.egress import EgressPolicy, fetch_json, resolve_public
from mcp_hub.db.identities import AgentRecord
from mcp_hub.domain import Role
from mcp_hub.errors import EgressRefusedError
from tests.authz.conftest import auth_service
from tests.authz.flow import PASSWORD, App, Pkce, authorize_url, exchange, mcp_status
from tests.conftest import RunningHub, fault_connector, running_hub, write_config
from tests.web.browser import decide, open_consent, query_of

pytestmark = pytest.mark.anyio

LOOPBACK_FOR_TESTS = EgressPolicy(allow_loopback_http=True, timeout_seconds=1.0)
REDIRECT_URI = "http://127.0.0.1:33418/callback"


@dataclass
class DocumentServer:
    """A local web server that serves client metadata documents (and misbehaves on request)."""

    base_url: str
    answers: dict[str, tuple[int, dict[str, str], bytes]] = field(
        default_factory=dict[str, tuple[int, dict[str, str], bytes]]
    )
    hits: Counter[str] = field(default_factory=Counter[str])
    release: anyio.Event = field(default_factory=anyio.Event)
    """Set at teardown: requests for `hang.json` wait for it."""

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def serve(self, name: str, body: object, status: int = 200, headers: dict[str, str] | None = None) -> str:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[name] = (status, {"Content-Type": "application/json", **(headers or {})}, content)
        return self.url(name)

    def document(self, name: str, **members: Any) -> str:
        """Serve a valid public-client document at `name` (members override or, as None, drop fields)."""
        url = self.url(name)
        document: dict[str, Any] = {
            "client_id": url,
            "client_name": "Example CIMD App",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_method": "none",
        }
        document.update(members)
        return self.serve(name, {key: value for key, value in document.items() if value is not None})


@asynccontextmanager
async def document_server() -> AsyncGenerator[DocumentServer]:
    started = anyio.Event()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncGenerator[None]:
        started.set()
        yield

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        server = DocumentServer(base_url=f"http://127.0.0.1:{listener.getsockname()[1]}")

        async def answer(request: Request) -> Response:
            name = request.path_params["name"]
            server.hits[name] += 1
            if name == "hang.json":
                await server.release.wait()
            status, headers, body = server.answers.get(name, (404, {}, b"not found"))
            return Response(body, status_code=status, headers=headers)

        app = Starlette(routes=[Route("/{name:path}", answer)], lifespan=lifespan)
        uvicorn_server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(uvicorn_server.serve, [listener])
            with anyio.fail_after(10):
                await started.wait()
            try:
                yield server
            finally:
                server.release.set()
                uvicorn_server.should_exit = True


@pytest.fixture
async def documents() -> AsyncGenerator[DocumentServer]:
    async with document_server() as server:
        yield server


@pytest.fixture(scope="module")
async def trusting_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub like `auth_hub` whose egress guard also admits loopback http: it may fetch documents from the
    local document server (the override exists only in code, for tests). Shared by the module's tests: each
    names its clients by a document server of its own."""
    config = write_config(tmp_path_factory.mktemp("trusting-hub"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config, egress=LOOPBACK_FOR_TESTS) as hub:
        await hub.wait_ready("faults")
        yield hub


async def resolve_client(hub: RunningHub, client_id: str) -> AgentRecord | None:
    return await auth_service(hub).clients.resolve(client_id)


async def revoke_as_public_client(hub: RunningHub, client_id: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        return await client.post(f"{hub.base_url}/oauth/revoke", data={"client_id": client_id, "token": "unknown"})


# --- the guard, without DNS or network --------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address the guard must refuse, not one we bind
        "224.0.0.1",
        "255.255.255.255",
        "::1",
        "[::1]",
        "::",
        "fe80::1",
        "fd00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:a00:1::",
        "64:ff9b::a9fe:a9fe",
    ],
)
async def test_the_guard_refuses_every_address_that_is_not_public(address: str) -> None:
    """T11: loopback, private, link-local (cloud metadata), CGNAT, multicast, reserved; also inside IPv6 wrappers."""
    with pytest.raises(EgressRefusedError, match="not a public address"):
        await resolve_public(address, 443)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700:4700::1111"])
async def test_the_guard_accepts_public_addresses_without_asking_dns(address: str) -> None:
    """A literal address is judged as it is: no resolver is involved."""
    assert await resolve_public(address, 443) == [ipaddress.ip_address(address)]


@pytest.mark.parametrize(("address", "allowed"), [("127.0.0.1", True), ("::1", True), ("10.0.0.5", False)])
async def test_the_test_override_admits_loopback_only(address: str, allowed: bool) -> None:
    """Chosen: the override exists for local test servers; private and link-local ranges stay refused."""
    if allowed:
        assert await resolve_public(address, 80, LOOPBACK_FOR_TESTS) == [ipaddress.ip_address(address)]
    else:
        with pytest.raises(EgressRefusedError):
            await resolve_public(address, 80, LOOPBACK_FOR_TESTS)
    with pytest.raises(EgressRefusedError):
        await resolve_public("169.254.169.254", 80, LOOPBACK_FOR_TESTS)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://93.184.215.14/client.json", "only https"),
        ("https://127.0.0.1/client.json", "not a public address"),
        ("https://169.254.169.254/latest/meta-data/", "not a public address"),
        ("https://10.0.0.1/client.json", "not a public address"),
        ("https://user@93.184.215.14/client.json", "user information"),
        ("ftp://93.184.215.14/client.json", "only https"),
    ],
)
async def test_the_strict_guard_refuses_before_connecting(url: str, problem: str) -> None:
    """T11: the scheme and every resolved address are checked before any connection is made."""
    with pytest.raises(EgressRefusedError, match=problem):
        await fetch_json(url)


@pytest.mark.parametrize(
    "client_id",
    [
        "https://app.example.com",
        "https://app.example.com/",
        "https://app.example.com/client.json?v=1",
        "https://app.example.com/client.json#me",
        "https://app.example.com/a/../client.json",
        "https://app.example.com/./client.json",
        "https://user@app.example.com/client.json",
        "http://app.example.com/client.json",
        "https://app.example.com/" + "a" * 600,
    ],
)
def test_client_id_urls_follow_the_drafts_rules(client_id: str) -> None:
    """draft-ietf-oauth-client-id-metadata-document §3 (and our refusal of query strings)."""
    with pytest.raises(EgressRefusedError):
        check_client_id_url(client_id)


# --- documents through a running hub ---------------------------------------------------------------------


async def test_a_metadata_document_becomes_a_cimd_agent_and_is_cached(
    trusting_hub: RunningHub, documents: DocumentServer
) -> None:
    """MCP 2025-11-25 client registration: the document describes the client; one fetch serves many requests."""
    url = documents.document("client.json")

    first = await resolve_client(trusting_hub, url)
    again = await resolve_client(trusting_hub, url)

    assert first is not None
    assert first.source == "cimd"
    assert first.auth_method == "none"
    assert first.redirect_uris == (REDIRECT_URI,)
    assert first.display_name == "Example CIMD App"
    assert first.grant_types == ("authorization_code", "refresh_token")
    assert await trusting_hub.hub.stores.identities.grants_of(agent_id=first.id) == []
    assert again == first
    assert documents.hits["client.json"] == 1


async def test_the_strict_guard_refuses_a_loopback_document_end_to_end(
    auth_hub: RunningHub, trusting_hub: RunningHub, documents: DocumentServer
) -> None:
    """T11 end to end: the hub's own (strict) resolver never connects to loopback or cloud metadata addresses;
    the same document is fetched by a hub built with the tests' loosened guard."""
    url = documents.document("client.json")
    same_server_over_https = url.replace("http://", "https://")

    loopback = await revoke_as_public_client(auth_hub, same_server_over_https)
    cloud_metadata = await revoke_as_public_client(auth_hub, "https://169.254.169.254/latest/meta-data/client.json")
    private = await resolve_client(auth_hub, "https://10.0.0.1/client.json")
    plain_http = await resolve_client(auth_hub, url)
    hits_under_the_strict_guard = documents.hits["client.json"]
    trusted = await revoke_as_public_client(trusting_hub, url)

    assert loopback.status_code == 401
    assert cloud_metadata.status_code == 401
    assert private is None
    assert plain_http is None
    assert hits_under_the_strict_guard == 0
    assert trusted.status_code == 200, trusted.text
    assert documents.hits["client.json"] == 1


UNTRUSTWORTHY = [
    "client_id of another URL",
    "redirect to a good document",
    "larger than 64 KiB",
    "shared-secret method",
    "not found",
    "HTML",
    "never answers",
    "javascript redirect URI",
    "not an object",
]


@pytest.mark.parametrize("case", UNTRUSTWORTHY)
async def test_documents_the_hub_must_not_trust_are_refused(
    trusting_hub: RunningHub, documents: DocumentServer, case: str
) -> None:
    """draft §4 (client_id must equal the URL, no shared secrets) and T11 (no redirects, size and time caps)."""
    good = documents.document("good.json")
    urls = {
        "client_id of another URL": lambda: documents.document("mismatch.json", client_id=good),
        "redirect to a good document": lambda: documents.serve("moved.json", b"", 302, {"Location": good}),
        "larger than 64 KiB": lambda: documents.document("huge.json", padding="x" * 70_000),
        "shared-secret method": lambda: documents.document(
            "secret.json", token_endpoint_auth_method="client_secret_basic"
        ),
        "not found": lambda: documents.url("missing.json"),
        "HTML": lambda: documents.serve("page.json", b"<html></html>", headers={"Content-Type": "text/html"}),
        "never answers": lambda: documents.url("hang.json"),
        "javascript redirect URI": lambda: documents.document("script.json", redirect_uris=["javascript:alert(1)"]),
        "not an object": lambda: documents.serve("list.json", [1, 2, 3]),
    }
    url = urls[case]()

    with anyio.fail_after(10):
        resolved = await resolve_client(trusting_hub, url)

    assert resolved is None
    assert await trusting_hub.hub.stores.identities.agent_by_client_id(url) is None
    assert documents.hits["good.json"] == 0


async def test_a_cimd_client_with_a_jwks_uri_authenticates_with_a_signed_assertion(
    trusting_hub: RunningHub, documents: DocumentServer
) -> None:
    """draft §4 + RFC 7523: keys from the document's jwks_uri (fetched through the guard) verify the assertion."""
    key = ECKey.generate_key("P-256", private=True)
    jwks_uri = documents.serve("jwks.json", {"keys": [key.as_dict(private=False)]})
    url = documents.document("keyed.json", token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_uri)
    now = int(time.time())
    claims = {
        "iss": url,
        "sub": url,
        "aud": trusting_hub.base_url,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"])

    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{trusting_hub.base_url}/oauth/introspect",
            data={
                "token": "not-a-token",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )

    assert response.status_code == 200, response.text
    assert response.json() == {"active": False}


async def test_an_admin_can_disable_a_cimd_agent_and_the_cache_does_not_hide_it(
    trusting_hub: RunningHub, documents: DocumentServer
) -> None:
    """Chosen: the document is cached, the agent row is not; `agents disable` shows at once."""
    service = auth_service(trusting_hub)
    url = documents.document("client.json")
    agent = await resolve_client(trusting_hub, url)
    assert agent is not None

    await service.admin.set_agent_enabled(agent.name, False)
    disabled = await resolve_client(trusting_hub, url)
    refused = await revoke_as_public_client(trusting_hub, url)

    assert disabled is not None
    assert disabled.enabled is False
    assert refused.status_code == 401
    assert documents.hits["client.json"] == 1


async def test_documents_are_not_fetched_when_the_admin_turned_them_off(
    tmp_path: Path, documents: DocumentServer
) -> None:
    """`[auth] client_id_metadata_documents = false`: URL client ids name nobody."""
    config = write_config(
        tmp_path, {"faults": fault_connector()}, "[auth]\nclient_id_metadata_documents = false\n", auth=True
    )
    url = documents.document("client.json")
    async with running_hub(config, egress=LOOPBACK_FOR_TESTS) as hub:
        resolved = await resolve_client(hub, url)

    assert resolved is None
    assert documents.hits["client.json"] == 0


async def test_a_metadata_document_client_completes_the_code_flow_at_the_authorization_endpoint(
    trusting_hub: RunningHub, documents: DocumentServer
) -> None:
    """MCP 2025-11-25 client registration (Client ID Metadata Documents, preferred) through the real pages: a
    URL `client_id` the hub has never seen is fetched at `/oauth/authorize`, the consent page names the
    document's `client_name`, and the code it yields is exchanged by the same URL for a token carrying the
    user's grants (T05: only the document's redirect URI; T06: consent first; T11: fetched through the guard)."""
    service = auth_service(trusting_hub)
    url = documents.document("ide.json", client_name="Document-Registered IDE")
    await service.admin.create_user("cimd-user", Role.APPROVER, PASSWORD)
    await service.admin.add_grant("user:cimd-user", "tool:faults__echo")
    app = App(client_id=url, redirect_uri=REDIRECT_URI, user="cimd-user", password=PASSWORD)
    pkce = Pkce.new()

    async with httpx2.AsyncClient() as browser:
        consent = await open_consent(
            browser, trusting_hub.base_url, authorize_url(trusting_hub, app, pkce), app.user, PASSWORD
        )
        answer = await decide(browser, trusting_hub.base_url, consent.text)
    code = query_of(answer.headers["location"])["code"]
    exchanged = await exchange(trusting_hub, app, code, pkce.verifier)
    agent = await trusting_hub.hub.stores.identities.agent_by_client_id(url)
    wrong_redirect = await hub_get(
        trusting_hub, authorize_url(trusting_hub, app, pkce, redirect_uri=REDIRECT_URI + "x")
    )

    assert consent.status_code == 200, consent.text
    assert "Document-Registered IDE" in consent.text
    assert url in consent.text
    assert answer.headers["location"].startswith(REDIRECT_URI + "?")
    assert exchanged.status_code == 200, exchanged.text
    assert exchanged.json()["scope"] == "tool:faults__echo"
    assert await mcp_status(trusting_hub, exchanged.json()["access_token"]) == 200
    assert agent is not None
    assert agent.source == "cimd"
    assert wrong_redirect.status_code == 400
    assert "location" not in wrong_redirect.headers
    assert documents.hits["ide.json"] == 1


async def hub_get(hub: RunningHub, url: str) -> httpx2.Response:
    async with httpx2.AsyncClient() as client:
        return await client.get(url)
