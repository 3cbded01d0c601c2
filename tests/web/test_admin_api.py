"""The admin JSON API (`/admin/api/`, issue 13 §1), in-process through httpx2's ASGI transport.

One hub for the module (auth on, SQLite, no connector at start; the round-trip test adds one through the API), an
admin `root` and an approver `ann` signed in through `/login`, and an admin token from the real token endpoint.
Covers threats T10 (the admin API on its own audience; an agent's token refused there, an admin token refused at
`/mcp`), T06/T20 (CSRF and same origin on cookie-authenticated writes), T23 (secrets shown once, never audited,
never echoed), T26 (bounded, validated bodies). The refusals and statuses follow RFC 6750 §3 (mandated); the paths,
shapes and audit rows are our choice (docs/admin-api.md).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
import pytest

from mcp_hub.authz.scopes import ADMIN_SCOPE
from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import AuditOutcome, Health, PinStatus, Role
from mcp_hub.web.sessions import CSRF_HEADER
from tests.authz.conftest import auth_service, client_credentials_token, make_agent
from tests.conftest import FAULT_SERVER, PYTHON, InProcessHub, in_process_hub, unique, write_config

pytestmark = pytest.mark.anyio

API = "/admin/api"
PASSWORD = "correct horse battery staple"
EXTRA = """
[catalog]
review_poll_seconds = 0.2

[[approvals.rules]]
name = "pushes-need-a-human"
tools = ["*__push"]
approvers = ["role:admin"]
"""
VIRTUAL = 'name = "ops"\ndescription = "the operators\' tools"\ntools = ["added__*"]\n'


@dataclass
class Admin:
    hub: InProcessHub
    session: httpx2.AsyncClient
    """root's web session (an admin)."""
    csrf: str
    approver: httpx2.AsyncClient
    """ann's web session (an approver)."""
    token: str
    """An admin token (client credentials of an agent granted admin:api, audience <issuer>/admin/api)."""
    client_id: str
    """The client id of that token's agent."""

    def bearer(self, token: str | None = None) -> httpx2.AsyncClient:
        return self.hub.client(headers={"Authorization": f"Bearer {token or self.token}"})

    async def write(self, method: str, path: str, body: Any = None, **options: Any) -> httpx2.Response:
        """A write from root's session with its CSRF token, as the hub's own pages send it."""
        headers = {CSRF_HEADER: self.csrf, **options.pop("headers", {})}
        return await self.session.request(method, API + path, json=body, headers=headers, **options)

    async def audited(self, method: str, target: str) -> list[AuditEvent]:
        await self.hub.hub.audit.flush()
        events = await self.hub.hub.stores.audit.recent_audit(limit=1000)
        return [event for event in events if event.method == method and event.public_name == target]


async def signed_in(hub: InProcessHub, name: str) -> httpx2.AsyncClient:
    client = hub.client()
    response = await client.post("/login", data={"name": name, "password": PASSWORD, "next": "/approvals"})
    assert response.status_code == 303, response.text
    return client


async def admin_token(hub: InProcessHub, name: str) -> tuple[str, str]:
    """An admin token of a new agent `name` granted admin:api, and the agent's client id."""
    agent = await make_agent(hub, name, ADMIN_SCOPE)
    async with hub.client() as client:
        response = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "resource": hub.base_url + API},
            auth=(agent.client_id, agent.client_secret),
        )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == ADMIN_SCOPE
    token: str = response.json()["access_token"]
    return token, agent.client_id


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Admin]:
    directory = tmp_path_factory.mktemp("admin-api")
    (directory / "virtual").mkdir()
    (directory / "virtual" / "ops.toml").write_text(VIRTUAL)
    config = write_config(directory, {}, EXTRA, auth=True)
    async with in_process_hub(config) as hub:
        identity = auth_service(hub).admin
        await identity.create_user("root", Role.ADMIN, PASSWORD)
        await identity.create_user("ann", Role.APPROVER, PASSWORD)
        session = await signed_in(hub, "root")
        approver = await signed_in(hub, "ann")
        probe = await session.get(API + "/agents")
        assert probe.status_code == 200, probe.text
        try:
            token, client_id = await admin_token(hub, "admin-script")
            yield Admin(hub, session, probe.headers[CSRF_HEADER], approver, token, client_id)
        finally:
            await session.aclose()
            await approver.aclose()


# --- who may use it ------------------------------------------------------------------------------------------


async def test_a_request_without_credentials_is_401_with_a_bearer_challenge(admin: Admin) -> None:
    """Mandated by RFC 6750 §3 and RFC 9110 §15.5.2 (a 401 carries a challenge); the admin API's own protected
    resource metadata (RFC 9728) is named in it. Threat T10."""
    async with admin.hub.client() as anonymous:
        response = await anonymous.get(API + "/agents")
        metadata = await anonymous.get("/.well-known/oauth-protected-resource/admin/api")
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert "oauth-protected-resource/admin/api" in challenge
    assert "error=" not in challenge  # no token was sent (RFC 6750 §3.1)
    assert metadata.json()["resource"] == admin.hub.base_url + API
    assert metadata.json()["scopes_supported"] == [ADMIN_SCOPE]


async def test_an_agents_mcp_token_is_refused_with_invalid_token(admin: Admin) -> None:
    """Mandated by RFC 6750 §3.1 and RFC 8707 (audience): a token for the MCP endpoint is no admin credential, even
    for an agent that holds every tool (threats T01, T10)."""
    agent = await make_agent(admin.hub, unique("mcp-agent"), "tool:*")
    token = await client_credentials_token(admin.hub, agent)
    async with admin.bearer(token) as client:
        response = await client.get(API + "/agents")
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.json()["error"] == "invalid_token"


async def test_an_admin_token_is_refused_at_the_mcp_endpoint(admin: Admin) -> None:
    """Our choice (threat T10): the admin API's audience is accepted nowhere else, so an admin token cannot call
    tools."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2025-11-25"}
    async with admin.bearer() as client:
        response = await client.post("/mcp", json=body, headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


async def test_only_an_agent_granted_admin_api_gets_an_admin_token(admin: Admin) -> None:
    """Our choice (threat T10): the token endpoint issues the admin audience only with the admin:api grant, and a
    token for the MCP endpoint never carries admin:api."""
    plain = await make_agent(admin.hub, unique("plain"), "tool:*")
    both = await make_agent(admin.hub, unique("both"), "tool:*", ADMIN_SCOPE)
    async with admin.hub.client() as client:
        refused = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "resource": admin.hub.base_url + API},
            auth=(plain.client_id, plain.client_secret),
        )
        for_mcp = await client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "resource": admin.hub.url},
            auth=(both.client_id, both.client_secret),
        )
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"
    assert for_mcp.json()["scope"] == "tool:*"
    minted = await auth_service(admin.hub).admin.mint_token(
        both.name, audience=admin.hub.base_url + API, admin=True
    )  # what `mcp-hub token NAME --resource <base>/admin/api` prints
    async with admin.bearer(minted["access_token"]) as client:
        assert (await client.get(API + "/users")).status_code == 200


async def test_a_token_whose_admin_grant_was_revoked_is_refused_with_insufficient_scope(admin: Admin) -> None:
    """Mandated by RFC 6750 §3.1 (`insufficient_scope`, 403); our choice that the stored grant decides at once
    (threats T09, T10)."""
    name = unique("revoked-admin")
    token, _ = await admin_token(admin.hub, name)
    assert (await admin.write("DELETE", f"/agents/{name}/grants", params={"pattern": ADMIN_SCOPE})).status_code == 200
    async with admin.bearer(token) as client:
        response = await client.get(API + "/agents")
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert f'scope="{ADMIN_SCOPE}"' in response.headers["WWW-Authenticate"]


async def test_an_approvers_session_is_403(admin: Admin) -> None:
    """Our choice: the admin API is for admins; an approver's session is refused (reads and writes)."""
    read = await admin.approver.get(API + "/agents")
    write = await admin.approver.post(API + "/keys/rotate", headers={CSRF_HEADER: "anything"})
    assert (read.status_code, write.status_code) == (403, 403)
    assert read.json()["error"] == "forbidden"


async def test_a_session_write_without_the_csrf_token_or_from_another_origin_changes_nothing(admin: Admin) -> None:
    """Our choice, per the OWASP CSRF cheat sheet (threats T06, T20): a cookie-authenticated write needs the
    session's token in X-CSRF-Token and the hub's own origin; a bearer token needs neither."""
    name = unique("csrf")
    without = await admin.session.post(API + "/agents", json={"name": name})
    wrong = await admin.session.post(API + "/agents", json={"name": name}, headers={CSRF_HEADER: "forged"})
    foreign = await admin.write("POST", "/agents", {"name": name}, headers={"Origin": "https://evil.example"})
    assert [r.status_code for r in (without, wrong, foreign)] == [403, 403, 403]
    assert without.json()["error"] == "csrf"
    assert (await admin.session.get(f"{API}/agents/{name}")).status_code == 404
    async with admin.bearer() as client:
        assert (await client.post(API + "/agents", json={"name": name})).status_code == 201


# --- agents and grants ---------------------------------------------------------------------------------------


async def test_an_agent_is_created_its_secret_shown_once_and_each_change_audited_with_its_admin(admin: Admin) -> None:
    """Our choice (threat T23): the secret is in the creation answer and the rotation answer only; every change is
    an audit row `admin/<resource>.<verb>` naming the admin, without the secret."""
    name = unique("bot")
    created = await admin.write("POST", "/agents", {"name": name, "grants": ["tool:time__*"]})
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    assert secret
    assert created.json()["grants"] == ["tool:time__*"]
    shown = await admin.session.get(f"{API}/agents/{name}")
    assert shown.json()["kind"] == "confidential"
    assert secret not in shown.text
    assert (await admin.write("POST", f"/agents/{name}/disable")).json()["enabled"] is False
    assert (await admin.write("POST", f"/agents/{name}/enable")).json()["enabled"] is True
    rotated = (await admin.write("POST", f"/agents/{name}/rotate-secret")).json()["client_secret"]
    assert rotated != secret
    for verb in ("create", "disable", "enable", "rotate_secret"):
        (event,) = await admin.audited(f"admin/agents.{verb}", name)
        assert event.client == "user:root"
        assert event.outcome == "ok"
        assert secret not in (event.detail or "")
        assert rotated not in (event.detail or "")
    assert (await admin.write("DELETE", f"/agents/{name}")).status_code == 204
    assert (await admin.session.get(f"{API}/agents/{name}")).status_code == 404
    assert len(await admin.audited("admin/agents.delete", name)) == 1


async def test_grants_are_added_listed_revoked_and_audited_with_an_admin_client(admin: Admin) -> None:
    """Our choice: an admin token's changes name `admin-client:<client_id>`; a repeated grant is not an error."""
    name = unique("granted")
    async with admin.bearer() as client:
        assert (await client.post(API + "/agents", json={"name": name})).status_code == 201
        first = await client.post(f"{API}/agents/{name}/grants", json={"pattern": "tool:faults__*"})
        again = await client.post(f"{API}/agents/{name}/grants", json={"pattern": "tool:faults__*"})
        listed = await client.get(f"{API}/agents/{name}/grants")
        revoked = await client.delete(f"{API}/agents/{name}/grants", params={"pattern": "tool:faults__*"})
        effective = await client.get(f"{API}/agents/{name}/effective")
    assert (first.json()["changed"], again.json()["changed"]) == (True, False)
    assert listed.json() == {"grants": ["tool:faults__*"]}
    assert revoked.json()["changed"] is True
    assert effective.json() == {"tools": [], "prompts": []}
    events = await admin.audited("admin/grants.add", name)
    assert {event.client for event in events} == {f"admin-client:{admin.client_id}"}


async def test_lists_are_paged_by_name(admin: Admin) -> None:
    """Our choice: keyset pages (`limit`, `after` = the previous page's `next`) over a name-sorted list."""
    prefix = unique("page")
    async with admin.bearer() as client:
        for index in range(3):
            assert (await client.post(API + "/agents", json={"name": f"{prefix}-{index}"})).status_code == 201
        seen: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 2} | ({"after": after} if after else {})
            body = (await client.get(API + "/agents", params=params)).json()
            assert len(body["items"]) <= 2
            seen += [item["name"] for item in body["items"]]
            after = body["next"]
            if after is None:
                break
    assert seen == sorted(seen)
    assert {f"{prefix}-{index}" for index in range(3)} <= set(seen)


async def test_invalid_input_is_422_naming_the_field_and_unknown_ids_404_and_duplicates_409(admin: Admin) -> None:
    """Our choice (threat T26): bodies are bounded and validated by their models; the answer names the field."""
    async with admin.bearer() as client:
        bad_name = await client.post(API + "/agents", json={"name": "Not A Name"})
        bad_grant = await client.post(API + "/agents", json={"name": unique("x"), "grants": ["tools:*"]})
        extra = await client.post(API + "/agents", json={"name": unique("x"), "admin": True})
        not_json = await client.post(API + "/agents", content=b"{", headers={"Content-Type": "application/json"})
        not_object = await client.post(API + "/agents", json=["x"])
        form = await client.post(API + "/agents", data={"name": "x"})
        huge = await client.post(API + "/agents", json={"name": "x" * 70_000})
        bad_limit = await client.get(API + "/agents", params={"limit": 0})
        unknown = await client.get(API + "/agents/nobody-at-all")
        unknown_write = await client.post(API + "/agents/nobody-at-all/disable")
        name = unique("twice")
        await client.post(API + "/agents", json={"name": name})
        duplicate = await client.post(API + "/agents", json={"name": name})
    assert bad_name.status_code == 422
    assert bad_name.json()["errors"][0]["field"] == "body.name"
    assert bad_grant.status_code == 422
    assert bad_grant.json()["errors"][0]["field"] == "body.grants.0"
    assert extra.status_code == 422
    assert extra.json()["errors"][0]["field"] == "body.admin"
    assert bad_limit.status_code == 422
    assert bad_limit.json()["errors"][0]["field"] == "query.limit"
    assert (not_json.status_code, not_object.status_code, form.status_code) == (400, 400, 415)
    assert huge.status_code in (400, 413)
    assert (unknown.status_code, unknown_write.status_code, duplicate.status_code) == (404, 404, 409)
    (refused,) = await admin.audited("admin/agents.disable", "nobody-at-all")
    assert refused.outcome == "admin_refused"


# --- users, keys, limits, configuration ----------------------------------------------------------------------


async def test_users_are_created_given_a_role_disabled_and_enabled_but_an_admin_cannot_lock_themselves_out(
    admin: Admin,
) -> None:
    """Our choice: the password is never echoed nor audited; role changes end the user's sessions; an admin
    cannot disable or demote themselves (409)."""
    name = unique("user")
    created = await admin.write("POST", "/users", {"name": name, "role": "approver", "password": PASSWORD})
    assert created.status_code == 201
    assert PASSWORD not in created.text
    short = await admin.write("POST", "/users", {"name": unique("user"), "role": "admin", "password": "short"})
    assert short.status_code == 422
    assert short.json()["errors"][0]["field"] == "body.password"
    assert (await admin.write("PUT", f"/users/{name}/role", {"role": "admin"})).json()["role"] == "admin"
    assert (await admin.write("POST", f"/users/{name}/disable")).json()["enabled"] is False
    assert (await admin.write("POST", f"/users/{name}/enable")).json()["enabled"] is True
    assert (await admin.write("POST", "/users/root/disable")).status_code == 409
    assert (await admin.write("PUT", "/users/root/role", {"role": "approver"})).status_code == 409
    names = [user["name"] for user in (await admin.session.get(API + "/users")).json()["items"]]
    assert {"root", "ann", name} <= set(names)
    (event,) = await admin.audited("admin/users.create", name)
    assert PASSWORD not in (event.detail or "")


async def test_a_key_rotation_publishes_a_new_key_and_lists_only_public_halves(admin: Admin) -> None:
    """Our choice (threat T03): rotation through the API is the KeyRing's; no private key material is shown."""
    before = (await admin.session.get(API + "/keys")).json()["items"]
    rotated = await admin.write("POST", "/keys/rotate")
    after = (await admin.session.get(API + "/keys")).json()["items"]
    assert rotated.status_code == 201
    assert rotated.json()["kid"] in {key["kid"] for key in after} - {key["kid"] for key in before}
    assert all("d" not in key["public_jwk"] for key in after)
    assert len(await admin.audited("admin/keys.rotate", "signing-keys")) >= 1


async def test_an_agents_own_limits_are_set_read_and_cleared(admin: Admin) -> None:
    """Our choice: PATCH semantics (a field left out is kept, null drops it); what the hub could not use is 422."""
    name = unique("limited")
    await admin.write("POST", "/agents", {"name": name})
    set_ = await admin.write("PATCH", f"/agents/{name}/limits", {"per_agent": {"rate": 2, "burst": 5}})
    more = await admin.write("PATCH", f"/agents/{name}/limits", {"daily_calls": 100})
    bad = await admin.write("PATCH", f"/agents/{name}/limits", {"per_agent": {"rate": 0, "burst": 5}})
    assert set_.json()["own"] == {"per_agent": {"rate": 2.0, "burst": 5}}
    assert more.json()["own"] == {"per_agent": {"rate": 2.0, "burst": 5}, "daily_calls": 100}
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "body.per_agent.rate"
    assert (await admin.write("DELETE", f"/agents/{name}/limits")).status_code == 204
    assert (await admin.session.get(f"{API}/agents/{name}/limits")).json()["own"] == {}
    assert (await admin.session.get(f"{API}/agents/nobody-at-all/limits")).status_code == 404


async def test_virtual_servers_and_approval_rules_are_shown(admin: Admin) -> None:
    """Our choice: configuration files are shown read-only (the rules live in config.toml, not the database)."""
    servers = (await admin.session.get(API + "/virtual-servers")).json()["items"]
    one = await admin.session.get(API + "/virtual-servers/ops")
    rules = (await admin.session.get(API + "/approval-rules")).json()
    assert [server["name"] for server in servers] == ["ops"]
    assert one.json()["tools"] == ["added__*"]
    assert (await admin.session.get(API + "/virtual-servers/nope")).status_code == 404
    assert rules["editable"] is False
    assert rules["items"][0]["name"] == "pushes-need-a-human"
    assert (rules["items"][0]["after"], rules["items"][0]["within_seconds"]) == ([], None)  # no sequence (T18)


# --- connectors and the review queue -------------------------------------------------------------------------


async def settled(admin: Admin, predicate: Any) -> None:
    """Wait (no sleeping) until `predicate()` holds: each listing or decision the hub applies is a chance."""
    sync = admin.hub.hub.catalog_sync
    with anyio.fail_after(30):
        while not predicate():
            await sync.wait_applied(sync.applied + 1)


async def test_a_connector_added_through_the_api_is_reloaded_reviewed_and_its_tools_offered(admin: Admin) -> None:
    """Our choice (issue 11 §5, threats T15/T16, T23): the file is validated by the hub's own loader, written
    atomically, picked up by the live reload at once; its definitions wait for review; an approval through the API
    puts the tool in the catalog; values that are not ${NAME} references are never echoed; removal retires it."""
    spec = {
        "id": "added",
        "transport": "stdio",
        "protocol": "legacy",
        "command": PYTHON,
        "args": [str(FAULT_SERVER)],
        "env": {"MODE": "a literal value"},
        "trust": "review",
    }
    invalid = await admin.write("POST", "/connectors", {"id": "broken", "transport": "stdio"})
    assert invalid.status_code == 422
    assert not (admin.hub.hub.settings.connectors_dir / "broken.toml").exists()
    created = await admin.write("POST", "/connectors", spec)
    assert created.status_code == 201, created.text
    assert created.json()["config"]["env"] == {"MODE": "********"}
    assert "a literal value" not in created.text
    assert (await admin.write("POST", "/connectors", spec)).status_code == 409
    with anyio.fail_after(30):
        await admin.hub.hub.pool.get("added").wait_for(Health.READY)
    listed = {item["id"]: item for item in (await admin.session.get(API + "/connectors")).json()["items"]}
    assert listed["added"]["health"]["state"] == "ready"
    assert listed["added"]["calls"]["breaker"]["state"] == "closed"

    queue = (await admin.session.get(API + "/catalog/review")).json()["items"]
    assert "added__echo" in {pin["name"] for pin in queue if pin["status"] == PinStatus.PENDING}
    approved = await admin.write("POST", "/catalog/review/approve", {"name": "added__echo"})
    assert approved.status_code == 200
    assert approved.json()["items"][0]["status"] == "approved"
    await settled(admin, lambda: "added__echo" in admin.hub.hub.catalog.tools)
    agent = unique("user-of-added")
    await admin.write("POST", "/agents", {"name": agent, "grants": ["tool:added__*"]})
    effective = (await admin.session.get(f"{API}/agents/{agent}/effective")).json()["tools"]
    assert effective == ["added__echo"]
    decisions = await admin.audited("catalog/review", "added__echo")
    assert [event.client for event in decisions if event.outcome == "definition_approved"] == ["user:root"]
    assert (await admin.audited("admin/catalog.approve", "added__echo"))[0].client == "user:root"
    assert (await admin.write("POST", "/catalog/review/approve", {"name": "added__echo"})).status_code == 404
    pins = (await admin.session.get(API + "/catalog/pins")).json()["items"]
    assert [pin["name"] for pin in pins if pin["connector"] == "added"] == ["added__echo"]
    history = (await admin.session.get(API + "/catalog/history", params={"name": "added__echo"})).json()["items"]
    assert [pin["status"] for pin in history] == ["approved"]

    disabled = await admin.write("POST", "/connectors/added/disable")
    assert disabled.json()["config"]["enabled"] is False
    await settled(admin, lambda: "added__echo" not in admin.hub.hub.catalog.tools)
    assert (await admin.write("DELETE", "/connectors/added")).status_code == 204
    assert (await admin.session.get(API + "/connectors/added")).status_code == 404
    for verb in ("add", "disable", "remove"):
        events = await admin.audited(f"admin/connectors.{verb}", "added")
        assert [event.outcome for event in events if event.outcome == "ok"] == ["ok"]
        assert {event.client for event in events} == {"user:root"}


# --- the document --------------------------------------------------------------------------------------------


async def test_the_openapi_document_describes_every_route_with_its_security(admin: Admin) -> None:
    """Mandated by OpenAPI 3.1 for the shape; our choice that it is generated from the route declarations."""
    document = (await admin.hub.client().get(API + "/openapi.json")).json()
    assert document["openapi"] == "3.1.0"
    assert set(document["components"]["securitySchemes"]) == {"adminToken", "adminSession"}
    flows = document["components"]["securitySchemes"]["adminToken"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == admin.hub.base_url + "/oauth/token"
    operations = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert ("POST", API + "/agents") in operations
    assert ("DELETE", API + "/connectors/{id}") in operations
    assert ("POST", API + "/catalog/review/approve") in operations
    create = document["paths"][API + "/agents"]["post"]
    assert set(create["responses"]) >= {"201", "401", "403", "409", "422"}
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")


# --- the audit trail -----------------------------------------------------------------------------------------


async def test_the_audit_trail_is_filtered_paged_and_exported_as_json_lines_and_the_export_is_audited(
    admin: Admin,
) -> None:
    """Our choice (issue 13 §1, threat T24): the API's filters are the audit query layer's; pages follow `next`;
    the export is JSON lines, oldest first, with each row's chain hashes; exporting is itself an audit row."""
    names = [unique("audited") for _ in range(3)]
    for name in names:
        assert (await admin.write("POST", "/agents", {"name": name})).status_code == 201
    await admin.hub.hub.audit.flush()
    params = {"method": "admin/agents.create", "outcome": "ok", "limit": 2}
    first = (await admin.session.get(API + "/audit", params=params)).json()
    second = (await admin.session.get(API + "/audit", params={**params, "cursor": first["next"]})).json()
    newest = [record["public_name"] for record in first["items"] + second["items"]]
    assert newest[:3] == names[::-1]
    assert all(record["client"] == "user:root" for record in first["items"])
    assert all(len(record["row_hash"]) == 64 for record in first["items"])
    bad = await admin.session.get(API + "/audit", params={"outcome": "ok,fine", "since": "yesterday"})
    assert bad.status_code == 422
    assert {problem["field"] for problem in bad.json()["errors"]} == {"query.outcome", "query.since"}
    assert (await admin.session.get(API + "/audit", params={"cursor": "forged"})).status_code == 422

    exported = await admin.session.get(API + "/audit/export", params={"method": "admin/agents.create"})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in exported.text.splitlines()]
    assert [line["public_name"] for line in lines][-3:] == names
    assert [line["id"] for line in lines] == sorted(line["id"] for line in lines)
    (export,) = await admin.audited("admin/audit.export", "audit")
    assert export.client == "user:root"
    assert "admin/agents.create" in (export.detail or "")


async def test_usage_is_reported_per_agent_per_day(admin: Admin) -> None:
    """Our choice (issue 13 §8): the audit query layer's usage per agent and UTC day, filtered by agent."""
    name = unique("busy")
    now = datetime.now(UTC)
    await admin.hub.hub.audit.record(
        AuditEvent(
            at=now,
            client=f"agent:{name}",
            session=None,
            public_name="faults__echo",
            connector_id="faults",
            downstream_name="echo",
            outcome=AuditOutcome.OK,
            latency_ms=3.0,
            detail=None,
            downstream_ms=2.0,
        )
    )
    await admin.hub.hub.audit.flush()
    async with admin.bearer() as client:
        usage = (await client.get(API + "/usage", params={"agent": name})).json()["items"]
    assert usage == [
        {
            "day": now.date().isoformat(),
            "agent": name,
            "calls": 1,
            "errors": 0,
            "refused": 0,
            "downstream_ms": 2.0,
            "approvals_requested": 0,
            "approvals_approved": 0,
            "approvals_denied": 0,
            "approvals_expired": 0,
            "outcomes": {"ok": 1},
        }
    ]
