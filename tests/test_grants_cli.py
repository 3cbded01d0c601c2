"""Grants that make sense (issue 11 §8) and virtual servers from the command line (§6), run as an operator runs
them: the installed `mcp-hub` in a subprocess beside a running hub on the same database (whose `catalog_tools`
rows are what the commands check against)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator
from pathlib import Path
from subprocess import CompletedProcess

import anyio
import pytest

from mcp_hub.config.virtual import load_virtual_server
from tests.authz.conftest import make_agent
from tests.authz.test_admin_cli import EXIT_USAGE, Admin
from tests.conftest import fault_connector, running_hub, unique, write_config

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def admin(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Admin]:
    directory = tmp_path_factory.mktemp("grants-cli")
    (directory / "hub").mkdir()
    (directory / "cli").mkdir()
    database_url = f"sqlite+aiosqlite:///{directory / 'hub' / 'hub.db'}"
    connectors = {"faults": fault_connector(sensitive_tools=["crash"])}
    hub_config = write_config(directory / "hub", connectors, auth=True, database_url=database_url)
    async with running_hub(hub_config) as hub:
        await hub.wait_ready("faults")
        cli_config = write_config(
            directory / "cli",
            connectors,
            f'[hub]\npublic_base_url = "{hub.base_url}"\n',
            auth=True,
            database_url=database_url,
        )
        yield Admin(hub=hub, config=cli_config)


async def test_grants_add_warns_of_a_pattern_that_matches_no_tool_and_strict_refuses(admin: Admin) -> None:
    """Issue 11 §8: `tool:no_such_tool__x` is granted with a warning; with `--strict` it is refused (exit 1) and
    not granted; a pattern that matches a tool the hub saw is granted silently."""
    name = unique("granted")
    await make_agent(admin.hub, name)
    results: dict[str, CompletedProcess[bytes]] = {}

    async def run(label: str, *args: str) -> None:
        results[label] = await admin.run(*args)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run, "loose", "grants", "add", name, "tool:no_such_tool__x")
        tasks.start_soon(run, "strict", "grants", "add", name, "tool:other_missing__*", "--strict")
        tasks.start_soon(run, "fine", "grants", "add", name, "tool:faults__ec*", "--strict")
    grants = await admin.ok("grants", "list", name)

    assert results["loose"].returncode == 0
    assert b"warning: tool:no_such_tool__x matches none of the" in results["loose"].stderr
    assert results["strict"].returncode == 1
    assert b"refused: tool:other_missing__*" in results["strict"].stderr
    assert results["fine"].returncode == 0
    assert results["fine"].stderr == b""
    assert grants.split() == sorted(["tool:faults__ec*", "tool:no_such_tool__x"])


async def test_grants_list_effective_and_catalog_as_the_agent_sees_it(admin: Admin) -> None:
    """Issue 11 §8: `--effective` lists the tools the agent can call now; `catalog --agent` adds descriptions and
    which need a human's approval (`crash` is a connector's sensitive tool)."""
    name = unique("viewer")
    await make_agent(admin.hub, name, "tool:faults__echo", "tool:faults__cr*", "tool:gone__*")
    effective = (await admin.ok("grants", "list", name, "--effective")).split()
    catalog = json.loads(await admin.ok("catalog", "--agent", name, "--json"))

    assert effective == ["faults__crash", "faults__echo"]
    assert catalog == [
        {"name": "faults__crash", "description": "Exit the process", "approval": "always"},
        {"name": "faults__echo", "description": "Echo text", "approval": None},
    ]


async def test_virtual_add_list_remove_and_a_token_for_a_virtual_server(admin: Admin) -> None:
    """Issue 11 §6: `virtual add` writes a file the hub loads, `list` shows it, `remove` deletes it; `token
    --resource` mints a token for a virtual server the configuration names, and refuses another URL."""
    directory: Path = admin.config.parent / "virtual"
    added = await admin.ok(
        "virtual", "add", "desk", "--tool", "faults__echo", "--rename", "faults__echo=say", "--meta-tools", "add"
    )
    listed = await admin.ok("virtual", "list")
    agent = unique("desk-agent")
    await make_agent(admin.hub, agent, "tool:*")
    minted = await admin.ok("token", "--resource", f"{admin.hub.url}/v/desk", agent)
    elsewhere = await admin.run("token", "--resource", f"{admin.hub.url}/v/nope", agent)
    bad = await admin.run("virtual", "add", "Bad_Name", "--tool", "x")
    spec = load_virtual_server(directory / "desk.toml")
    removed = await admin.ok("virtual", "remove", "desk")

    assert "virtual server desk written" in added
    assert listed.startswith("desk")
    assert spec.rename == {"faults__echo": "say"}
    assert spec.meta_tools == "add"
    payload = minted.strip().split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == f"{admin.hub.url}/v/desk"
    assert elsewhere.returncode == 1
    assert b"virtual servers" in elsewhere.stderr
    assert bad.returncode == EXIT_USAGE
    assert "removed" in removed
    assert not (directory / "desk.toml").exists()
