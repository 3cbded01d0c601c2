"""The admin commands of issue 3 §7, run as an operator runs them: `mcp-hub` in a process of its own (forked from
one that imported the command already, tests/cli_process.py), beside a running hub on the same database, whose
effect is then checked over real HTTP.

The command's configuration names the running hub's public URL, so `mcp-hub token` mints tokens for the hub
that is actually listening. The hub's decision cache is 0.5 s: changes made by the command (another process)
must show within that bound (threats T09, T10). Each run of the command costs seconds of start-up (it imports
the MCP SDK), so setup that is not under test goes through the admin layer in-process, and independent runs
go in parallel.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import anyio
import httpx2
import pytest

from mcp_hub.audit.verify import verify_chain
from mcp_hub.db.audit_query import AuditFilter
from mcp_hub.domain import AuditOutcome, Role
from tests.authz.conftest import auth_service, client_credentials_token, make_agent
from tests.authz.flow import PASSWORD, make_app, mcp_status, refresh, tokens_for
from tests.authz.test_decisions import call_status
from tests.cli_process import run_cli
from tests.conftest import RunningHub, fault_connector, running_hub, write_config
from tests.test_cli import EXIT_FAILURE, hub_env
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

EXIT_USAGE = 2
DECISION_CACHE_SECONDS = 0.5
SLACK_SECONDS = 5.0
PARALLEL_RUNS = 3
COMMAND_SECONDS = 120  # generous: on a loaded machine the command's imports alone take several seconds


@dataclass(frozen=True)
class Admin:
    """`mcp-hub` pointed at the running hub's database and public URL."""

    hub: RunningHub
    config: Path

    async def run(self, *args: str, stdin: str | None = None) -> CompletedProcess[bytes]:
        argv = [*args, "--config", str(self.config)]
        return await run_cli(argv, env=hub_env(), stdin=stdin, within_seconds=COMMAND_SECONDS)

    async def ok(self, *args: str, stdin: str | None = None) -> str:
        completed = await self.run(*args, stdin=stdin)
        assert completed.returncode == 0, completed.stderr.decode()
        return completed.stdout.decode()


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Admin]:
    directory = tmp_path_factory.mktemp("admin-cli")
    (directory / "hub").mkdir()
    (directory / "cli").mkdir()
    database_url = f"sqlite+aiosqlite:///{directory / 'hub' / 'hub.db'}"
    settings = f"[auth]\ndecision_cache_seconds = {DECISION_CACHE_SECONDS}\n"
    hub_config = write_config(
        directory / "hub", {"faults": fault_connector()}, settings, auth=True, database_url=database_url
    )
    async with running_hub(hub_config) as hub:
        await hub.wait_ready("faults")
        cli_config = write_config(
            directory / "cli",
            {"faults": fault_connector()},
            settings + f'[hub]\npublic_base_url = "{hub.base_url}"\n',
            auth=True,
            database_url=database_url,
        )
        yield Admin(hub=hub, config=cli_config)


async def token_response(hub: RunningHub, client_id: str, secret: str) -> httpx2.Response:
    async with httpx2.AsyncClient(timeout=10) as client:
        return await client.post(
            f"{hub.base_url}/oauth/token",
            data={"grant_type": "client_credentials", "resource": hub.url},
            auth=(client_id, secret),
        )


async def within_the_decision_bound(condition: Callable[[], Awaitable[bool]]) -> None:
    """Poll until `condition` holds: the command changed the database, no event reaches the hub."""
    with anyio.fail_after(DECISION_CACHE_SECONDS + SLACK_SECONDS):
        while not await condition():  # noqa: ASYNC110 - another process's write, seen through the cache
            await anyio.sleep(0.05)


async def in_parallel(*runs: Awaitable[CompletedProcess[bytes]]) -> list[CompletedProcess[bytes]]:
    """Run independent commands at the same time (each one's start-up is the cost)."""
    results: list[CompletedProcess[bytes] | None] = [None] * len(runs)
    limiter = anyio.CapacityLimiter(PARALLEL_RUNS)

    async def one(index: int, run: Awaitable[CompletedProcess[bytes]]) -> None:
        async with limiter:
            results[index] = await run

    async with anyio.create_task_group() as tasks:
        for index, run in enumerate(runs):
            tasks.start_soon(one, index, run)
    return [result for result in results if result is not None]


# --- agents -----------------------------------------------------------------------------------------------


async def test_agents_create_shows_the_secret_once_and_the_listing_never_shows_it(admin: Admin) -> None:
    """Issue 3 §7 (T23: a secret is printed once, then stored only as SHA-256); the printed secret works."""
    created: dict[str, Any] = json.loads(
        await admin.ok("agents", "create", "cli-maker", "--grant", "tool:faults__echo", "--json")
    )
    listing_json = await admin.ok("agents", "list", "--json")
    listing_text = await admin.ok("agents", "list")
    token = await token_response(admin.hub, created["client_id"], created["client_secret"])

    assert created["name"] == "cli-maker"
    assert created["client_secret"].startswith("mcphs_")
    assert created["grants"] == ["tool:faults__echo"]
    assert created["token_endpoint"] == f"{admin.hub.base_url}/oauth/token"
    listed = {row["name"]: row for row in json.loads(listing_json)}
    assert listed["cli-maker"] == {
        "name": "cli-maker",
        "client_id": created["client_id"],
        "kind": "confidential",
        "source": "admin",
        "enabled": True,
        "grants": ["tool:faults__echo"],
    }
    assert created["client_secret"] not in listing_json
    assert created["client_secret"] not in listing_text
    assert "cli-maker" in listing_text
    assert token.status_code == 200, token.text


async def test_agents_disable_and_enable_take_effect_at_the_token_endpoint_and_at_mcp(admin: Admin) -> None:
    """Issue 3 §5 (T09): a disabled agent gets no token (401 invalid_client) and its live token is refused within
    the decision-cache bound; enabling it restores both."""
    agent = await make_agent(admin.hub, "cli-switch", "tool:faults__*")
    live_token = (await token_response(admin.hub, agent.client_id, agent.client_secret)).json()["access_token"]
    assert await mcp_status(admin.hub, live_token) == 200

    disabled = await admin.ok("agents", "disable", agent.name)
    refused = await token_response(admin.hub, agent.client_id, agent.client_secret)

    async def live_token_refused() -> bool:
        return await mcp_status(admin.hub, live_token) == 401

    await within_the_decision_bound(live_token_refused)
    enabled = await admin.ok("agents", "enable", agent.name)

    async def live_token_accepted() -> bool:
        return await mcp_status(admin.hub, live_token) == 200

    await within_the_decision_bound(live_token_accepted)
    again = await token_response(admin.hub, agent.client_id, agent.client_secret)

    assert disabled.strip() == "agent cli-switch disabled"
    assert enabled.strip() == "agent cli-switch enabled"
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    assert again.status_code == 200


async def test_rotate_secret_prints_a_new_secret_and_the_old_one_stops_working(admin: Admin) -> None:
    """Issue 3 §7: `agents rotate-secret` replaces the secret at once (T23: shown once)."""
    agent = await make_agent(admin.hub, "cli-rotor", "tool:faults__echo")
    output = await admin.ok("agents", "rotate-secret", agent.name)
    new_secret = next(word for word in output.split() if word.startswith("mcphs_"))
    old = await token_response(admin.hub, agent.client_id, agent.client_secret)
    new = await token_response(admin.hub, agent.client_id, new_secret)

    assert "shown once" in output
    assert new_secret != agent.client_secret
    assert old.status_code == 401
    assert new.status_code == 200, new.text


# --- grants and tokens ------------------------------------------------------------------------------------


async def test_grants_add_list_and_remove_decide_what_a_token_may_call(admin: Admin) -> None:
    """Issue 3 §5, §7 (T09, T10): grants made by the command decide calls; a removed grant is refused within
    the bound, even with a token that carries it."""
    agent = await make_agent(admin.hub, "cli-granted", "tool:faults__echo")
    added = await admin.ok("grants", "add", agent.name, "tool:faults__pid")
    added_again, listed = await in_parallel(
        admin.run("grants", "add", agent.name, "tool:faults__pid"), admin.run("grants", "list", agent.name)
    )
    token = await client_credentials_token(admin.hub, agent)
    assert await call_status(admin.hub, token, "faults__pid") == 200

    removed = await admin.ok("grants", "remove", agent.name, "tool:faults__pid")

    async def refused() -> bool:
        return await call_status(admin.hub, token, "faults__pid") == 403

    await within_the_decision_bound(refused)
    removed_again = await admin.run("grants", "remove", agent.name, "tool:faults__pid")

    assert added.strip() == "cli-granted: tool:faults__pid granted"
    assert added_again.stdout.decode().strip() == "cli-granted: tool:faults__pid was already granted"
    assert listed.stdout.decode().split() == ["tool:faults__echo", "tool:faults__pid"]
    assert removed.strip() == "cli-granted: tool:faults__pid removed"
    assert removed_again.returncode == EXIT_FAILURE
    assert removed_again.stdout.decode().strip() == "cli-granted: tool:faults__pid was not granted"
    assert await call_status(admin.hub, token, "faults__echo") == 200


async def test_token_prints_an_access_token_the_running_hub_accepts(admin: Admin) -> None:
    """Issue 3 §3, §7: `mcp-hub token` mints a 5-minute token (the default) for the hub's resource, narrowed
    by `--scope`; `/mcp` accepts it and caps calls by it (T10)."""
    agent = await make_agent(admin.hub, "cli-scripted", "tool:faults__*")
    printed_run, narrowed_run = await in_parallel(
        admin.run("token", agent.name), admin.run("token", agent.name, "--scope", "tool:faults__echo", "--json")
    )
    assert printed_run.returncode == 0, printed_run.stderr.decode()
    printed = printed_run.stdout.decode().strip()
    narrowed: dict[str, Any] = json.loads(narrowed_run.stdout)
    claims = await auth_service(admin.hub).tokens.verify(printed)

    assert printed.count(".") == 2
    assert claims.client_id == agent.client_id
    assert claims.expires_at - claims.issued_at == 300
    assert await mcp_status(admin.hub, printed) == 200
    assert narrowed["expires_in"] == 300
    assert narrowed["scope"] == "tool:faults__echo"
    assert narrowed["token_type"] == "Bearer"
    assert await call_status(admin.hub, narrowed["access_token"], "faults__echo") == 200
    assert await call_status(admin.hub, narrowed["access_token"], "faults__pid") == 403


UNKNOWN_AGENT_COMMANDS = [
    ("agents", "disable", "nobody"),
    ("agents", "enable", "nobody"),
    ("agents", "rotate-secret", "nobody"),
    ("grants", "add", "nobody", "tool:faults__echo"),
    ("grants", "remove", "nobody", "tool:faults__echo"),
    ("grants", "list", "nobody"),
    ("token", "nobody"),
]


async def test_commands_naming_an_unknown_agent_exit_1_naming_it(admin: Admin) -> None:
    """Issue 3 §7, our choice: a clear one-line error on stderr, exit status 1, nothing on stdout."""
    runs = await in_parallel(*(admin.run(*command) for command in UNKNOWN_AGENT_COMMANDS))

    for command, completed in zip(UNKNOWN_AGENT_COMMANDS, runs, strict=True):
        assert completed.returncode == EXIT_FAILURE, command
        assert completed.stderr.decode().strip() == "mcp-hub: no agent named 'nobody'", command
        assert completed.stdout == b"", command


async def test_token_for_a_disabled_agent_is_refused(admin: Admin) -> None:
    """Issue 3 §5 (T09): no token for a disabled agent, from the command either."""
    agent = await make_agent(admin.hub, "cli-dormant", "tool:faults__*")
    await auth_service(admin.hub).admin.set_agent_enabled(agent.name, False)
    completed = await admin.run("token", agent.name)

    assert completed.returncode == EXIT_USAGE
    assert completed.stderr.decode().strip() == "mcp-hub: agent 'cli-dormant' is disabled"
    assert completed.stdout == b""


# --- users ------------------------------------------------------------------------------------------------


async def test_users_create_stores_an_argon2id_hash_and_refuses_short_passwords(admin: Admin) -> None:
    """Issue 3 §1 (memory-hard hash; Argon2id per RFC 9106); our choice: at least 12 characters."""
    created_run, short = await in_parallel(
        admin.run("users", "create", "cli-carol", "--role", "approver", "--password-stdin", stdin=PASSWORD),
        admin.run("users", "create", "cli-dave", "--role", "admin", "--password-stdin", stdin="too short"),
    )
    created = created_run.stdout.decode()
    listed: list[dict[str, Any]] = json.loads(await admin.ok("users", "list", "--json"))
    stored = await admin.hub.hub.stores.identities.user_by_name("cli-carol")

    assert created.strip() == "user cli-carol created with role approver"
    assert stored is not None
    assert stored.password_hash.startswith("$argon2id$")
    assert PASSWORD not in stored.password_hash
    assert short.returncode == EXIT_USAGE
    assert short.stderr.decode().strip() == "mcp-hub: a password needs at least 12 characters"
    assert await admin.hub.hub.stores.identities.user_by_name("cli-dave") is None
    assert {"name": "cli-carol", "role": "approver", "enabled": True} in listed


async def test_a_disabled_user_cannot_sign_in_loses_web_sessions_and_tokens_acting_for_them(admin: Admin) -> None:
    """Issue 3 §5 and docs/oauth.md (T09): `users disable` refuses sign-in, ends the user's web sessions at once
    (so `users enable` revives none), refuses access tokens issued for them within the decision-cache bound,
    and their refresh tokens get `invalid_grant` (RFC 6749 §5.2)."""
    hub = admin.hub
    app = await make_app(hub, agent="cli-erin-app", user="cli-erin")
    erin = app.user
    tokens = await tokens_for(hub, app)
    assert await mcp_status(hub, tokens["access_token"]) == 200
    async with httpx2.AsyncClient() as browser, httpx2.AsyncClient() as later:
        assert (await sign_in(browser, hub.base_url, erin, PASSWORD)).status_code == 303
        assert "Signed in" in (await browser.get(f"{hub.base_url}/login")).text

        disabled = await admin.ok("users", "disable", erin)
        session_after_disable = await browser.get(f"{hub.base_url}/login")
        sign_in_while_disabled = await sign_in(later, hub.base_url, erin, PASSWORD)

        async def token_refused() -> bool:
            return await mcp_status(hub, tokens["access_token"]) == 401

        await within_the_decision_bound(token_refused)
        refreshed = await refresh(hub, app, tokens["refresh_token"])

        await admin.ok("users", "enable", erin)
        session_after_enable = await browser.get(f"{hub.base_url}/login")
        sign_in_after_enable = await sign_in(later, hub.base_url, erin, PASSWORD)

    assert disabled.strip() == f"user {erin} disabled"
    assert "Sign in to mcp-hub" in session_after_disable.text
    assert sign_in_while_disabled.status_code == 400
    assert "Wrong name or password." in sign_in_while_disabled.text
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"
    assert "Sign in to mcp-hub" in session_after_enable.text
    assert sign_in_after_enable.status_code == 303


async def test_set_password_replaces_the_password_and_ends_open_sessions(admin: Admin) -> None:
    """Issue 3 §1, OWASP Session Management (our choice): after a password reset only the new password signs
    in, and sessions opened with the old one are over (T06: a stolen session does not outlive the reset).
    Unknown users get a one-line error naming them, exit status 1."""
    hub = admin.hub
    new_password = "a different long passphrase"
    await auth_service(hub).admin.create_user("cli-frank", Role.ADMIN, PASSWORD)
    async with httpx2.AsyncClient() as browser, httpx2.AsyncClient() as later:
        assert (await sign_in(browser, hub.base_url, "cli-frank", PASSWORD)).status_code == 303
        reset = await admin.ok("users", "set-password", "cli-frank", "--password-stdin", stdin=new_password)
        old_session = await browser.get(f"{hub.base_url}/login")
        old_password = await sign_in(later, hub.base_url, "cli-frank", PASSWORD)
        new = await sign_in(later, hub.base_url, "cli-frank", new_password)
    too_short, unknown, disable_unknown, enable_unknown = await in_parallel(
        admin.run("users", "set-password", "cli-frank", "--password-stdin", stdin="short"),
        admin.run("users", "set-password", "nobody", "--password-stdin", stdin=new_password),
        admin.run("users", "disable", "nobody"),
        admin.run("users", "enable", "nobody"),
    )

    assert "password of user cli-frank replaced" in reset
    assert "Sign in to mcp-hub" in old_session.text
    assert old_password.status_code == 400
    assert new.status_code == 303
    assert too_short.returncode == EXIT_USAGE
    assert unknown.returncode == EXIT_FAILURE
    for completed in (unknown, disable_unknown, enable_unknown):
        assert completed.returncode == EXIT_FAILURE
        assert completed.stderr.decode().strip() == "mcp-hub: no user named 'nobody'"


async def test_a_user_disabled_through_the_admin_layer_is_refused_by_this_process_at_once(admin: Admin) -> None:
    """T09, our choice: a change made through this hub's own service clears its decision cache at once."""
    hub = admin.hub
    app = await make_app(hub, agent="cli-gina-app", user="cli-gina")
    tokens = await tokens_for(hub, app)
    assert await mcp_status(hub, tokens["access_token"]) == 200
    await auth_service(hub).admin.set_user_enabled(app.user, False)

    assert await mcp_status(hub, tokens["access_token"]) == 401


# --- the audit trail of the commands ----------------------------------------------------------------------


async def test_every_change_a_command_makes_is_an_audit_row_naming_the_operator_and_no_secret(admin: Admin) -> None:
    """Issue 13 §1 applied to the commands (T23, T24): each change, a minted token and a refused change are audit
    rows `admin/<resource>.<verb>` naming `cli:<login>`, in the hub's one hash chain; no secret, password or token
    is in any row."""
    operator = f"cli:{getpass.getuser()}"
    password, new_password = "a long enough passphrase", "another long passphrase"
    created = json.loads(await admin.ok("agents", "create", "cli-audited", "--json"))
    granted, limited, user, refused = await in_parallel(
        admin.run("grants", "add", "cli-audited", "tool:faults__echo"),
        admin.run("limits", "set", "cli-audited", "--daily-calls", "50"),
        admin.run("users", "create", "cli-audited-user", "--role", "approver", "--password-stdin", stdin=password),
        admin.run("grants", "add", "nobody-here", "tool:faults__echo"),
    )
    token, rotated, reset = await in_parallel(
        admin.run("token", "cli-audited"),
        admin.run("agents", "rotate-secret", "cli-audited"),
        admin.run("users", "set-password", "cli-audited-user", "--password-stdin", stdin=new_password),
    )
    removed = await admin.run("grants", "remove", "cli-audited", "tool:faults__echo")
    for completed in (granted, token, limited, user, rotated, removed, reset):
        assert completed.returncode == 0, completed.stderr.decode()
    assert refused.returncode == EXIT_FAILURE
    rows = [row async for row in admin.hub.hub.stores.audit_query.export(AuditFilter())]
    targets = {"cli-audited", "cli-audited-user", "nobody-here"}  # the module's other tests change others
    mine = [row for row in rows if row.public_name in targets]
    by_change = {(row.method, row.public_name): row for row in mine}
    assert {row.client for row in mine} == {operator}

    assert {(method, row.outcome) for (method, _), row in by_change.items()} == {
        ("admin/agents.create", AuditOutcome.OK),
        ("admin/grants.add", AuditOutcome.OK),
        ("admin/grants.add", AuditOutcome.ADMIN_REFUSED),
        ("admin/tokens.mint", AuditOutcome.OK),
        ("admin/limits.set", AuditOutcome.OK),
        ("admin/users.create", AuditOutcome.OK),
        ("admin/agents.rotate_secret", AuditOutcome.OK),
        ("admin/grants.remove", AuditOutcome.OK),
        ("admin/users.set_password", AuditOutcome.OK),
    }
    assert by_change["admin/grants.add", "nobody-here"].outcome is AuditOutcome.ADMIN_REFUSED
    assert by_change["admin/grants.add", "cli-audited"].detail == "tool:faults__echo"
    assert by_change["admin/limits.set", "cli-audited"].detail == "daily_calls=50"
    assert by_change["admin/tokens.mint", "cli-audited"].detail == "scope tool:faults__echo; audience the hub"
    secrets = [
        created["client_secret"],
        token.stdout.decode().strip(),
        rotated.stdout.decode().split(": ", 1)[1].split()[0],
        password,
        new_password,
    ]
    for row in mine:
        text = json.dumps(row.to_json())
        assert not [secret for secret in secrets if secret in text], row
    # Three commands and the hub wrote at once: the one chain still verifies.
    assert (await verify_chain(admin.hub.hub.stores.audit_chain)).intact
