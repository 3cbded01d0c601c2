"""The `mcp-hub` command, run as operators run it: each run a process of its own.

`serve`, and the options before the command, are the installed console script in a subprocess; the other
commands run in a child forked from a process that has imported the command already (tests/cli_process.py: the
same `main(argv)` without seconds of imports per run). Every run gets `--config` pointing at a temporary
configuration whose one real connector is the fault fixture server (stdio, pinned to the legacy era so no probe
waits).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import Process

from mcp_hub.config.settings import DATABASE_URL_ENV, load_settings
from mcp_hub.db.engine import create_engine, require_current_schema, schema_status, upgrade
from mcp_hub.errors import SchemaOutOfDateError
from tests.cli_process import run_cli
from tests.conftest import fault_connector, stop_process, write_config

pytestmark = pytest.mark.anyio

MCP_HUB = Path(sys.executable).parent / "mcp-hub"
EXIT_FAILURE, EXIT_CONFIG = 1, 2
BROKEN_COMMAND = "/nonexistent/mcp-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def hub_env() -> dict[str, str]:
    """This process's environment without a database override, so `--config` alone decides."""
    return {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}


async def mcp_hub(config: Path, *args: str, within_seconds: float = 40) -> CompletedProcess[bytes]:
    """Run `mcp-hub <args> --config <config>` to completion in a forked child (tests/cli_process.py)."""
    return await run_cli([*args, "--config", str(config)], env=hub_env(), within_seconds=within_seconds)


def configure(directory: Path, connectors: dict[str, str]) -> Path:
    """A config whose `listen_port` is free, so nothing answers there unless a test starts a hub."""
    return write_config(directory, connectors, extra=f"[hub]\nlisten_port = {free_port()}\n")


async def migrate(config: Path) -> None:
    await upgrade(load_settings(config).database.url)


@pytest.fixture(scope="module")
async def offline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated config with a working and a broken connector, and no hub running for it."""
    config = configure(
        tmp_path_factory.mktemp("offline"),
        {"faults": fault_connector(), "broken": fault_connector("broken", command=BROKEN_COMMAND)},
    )
    await migrate(config)
    return config


@dataclass
class ServedHub:
    config: Path
    base_url: str
    process: Process


async def wait_until_ready(base_url: str, process: Process, connector_id: str) -> None:
    """Poll `/healthz` of an external hub until `connector_id` is ready (no in-process event to await)."""
    async with httpx2.AsyncClient(timeout=2.0) as http:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"mcp-hub serve exited with {process.returncode}")
            try:
                body: dict[str, Any] = (await http.get(f"{base_url}/healthz")).json()
            except httpx2.TransportError:
                body = {}
            if body.get("connectors", {}).get(connector_id, {}).get("state") == "ready":
                return
            await anyio.sleep(0.1)


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[ServedHub]:
    """`mcp-hub serve` in a subprocess, on a free port, with its connector ready; stopped with SIGTERM."""
    directory = tmp_path_factory.mktemp("served")
    port = free_port()
    config = write_config(directory, {"faults": fault_connector()}, extra=f"[hub]\nlisten_port = {port}\n")
    await migrate(config)
    with (directory / "serve.log").open("wb") as log:
        process = await anyio.open_process(
            [str(MCP_HUB), "serve", "--config", str(config), "--port", str(port)],
            stdout=log,
            stderr=log,
            env=hub_env(),
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            with anyio.fail_after(30):
                await wait_until_ready(base_url, process, "faults")
            yield ServedHub(config=config, base_url=base_url, process=process)
        finally:
            await stop_process(process)


async def test_migrate_creates_the_schema(tmp_path: Path) -> None:
    """Issue 2 §8: `mcp-hub migrate` brings an empty database to the migration head."""
    config = configure(tmp_path, {"faults": fault_connector()})
    engine = create_engine(load_settings(config).database.url)
    try:
        with pytest.raises(SchemaOutOfDateError):
            await require_current_schema(engine)
        done = await mcp_hub(config, "migrate")
        assert done.returncode == 0, done.stderr.decode()
        status = await schema_status(engine)
    finally:
        await engine.dispose()
    assert status.is_current
    assert "database upgraded to head" in done.stderr.decode()


async def test_the_common_options_also_work_before_the_command(tmp_path: Path) -> None:
    """`mcp-hub --config X migrate` migrates X's database, not the one of ./config.toml."""
    config = configure(tmp_path, {"faults": fault_connector()})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with anyio.fail_after(40):
        done = await anyio.run_process(
            [str(MCP_HUB), "--config", str(config), "migrate"], check=False, env=hub_env(), cwd=elsewhere
        )
    assert done.returncode == 0, done.stderr.decode()
    engine = create_engine(load_settings(config).database.url)
    try:
        assert (await schema_status(engine)).is_current
    finally:
        await engine.dispose()


async def test_serve_on_an_unmigrated_database_exits_with_an_instruction_before_binding_its_port(
    tmp_path: Path,
) -> None:
    """Issue 2 §8, our choice: a stale schema stops the hub with `run mcp-hub migrate`, never a half-started hub."""
    config = configure(tmp_path, {"faults": fault_connector()})
    port = free_port()
    done = await mcp_hub(config, "serve", "--port", str(port))
    stderr = done.stderr.decode()
    assert done.returncode == EXIT_FAILURE
    assert "mcp-hub migrate" in stderr
    # uvicorn logs "Started server process" before binding and "Uvicorn running on" after: neither happened.
    assert "Started server process" not in stderr
    assert "Uvicorn running" not in stderr
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", port))  # the port is still free: nothing kept it


async def test_serve_with_a_bad_connector_file_exits_2_naming_the_file_and_the_key(
    tmp_path: Path, offline: Path
) -> None:
    """Issue 2 §3/§8: the hub refuses to start rather than start without one of its connectors."""
    config = configure(tmp_path, {"faults": fault_connector(), "typo": fault_connector("typo", comand="x")})
    env = {**hub_env(), DATABASE_URL_ENV: load_settings(offline).database.url}  # a migrated database
    with anyio.fail_after(40):
        done = await anyio.run_process(
            [str(MCP_HUB), "serve", "--config", str(config), "--port", str(free_port())], check=False, env=env
        )
    stderr = done.stderr.decode()
    assert done.returncode == EXIT_CONFIG
    assert f"configuration error: {tmp_path / 'connectors' / 'typo.toml'}: comand: unknown key" in stderr
    assert "Started server process" not in stderr


async def test_connectors_check_connects_and_prints_the_tools(offline: Path) -> None:
    """Issue 2 §8: `connectors check <id>` proves a connector works before the hub is started."""
    done = await mcp_hub(offline, "connectors", "check", "faults")
    stdout = done.stdout.decode()
    assert done.returncode == 0, done.stderr.decode()
    assert stdout.startswith("faults: ready, ")
    assert {"  echo", "  pid", "  slow"} <= set(stdout.splitlines())


async def test_connectors_check_of_a_broken_connector_exits_1_with_the_reason(offline: Path) -> None:
    """Issue 2 §8: the failure says why (here the command does not exist)."""
    done = await mcp_hub(offline, "connectors", "check", "broken")
    stdout = done.stdout.decode()
    assert done.returncode == EXIT_FAILURE
    assert stdout.startswith("broken: down: ")
    assert "No such file or directory" in stdout
    assert BROKEN_COMMAND in stdout


async def test_connectors_check_of_an_unknown_id_names_the_configured_ones(offline: Path) -> None:
    """Our choice: a typo in the id lists what exists instead of connecting to nothing."""
    done = await mcp_hub(offline, "connectors", "check", "fault")
    assert done.returncode == EXIT_FAILURE
    assert "no connector 'fault' (configured: broken, faults)" in done.stderr.decode()


async def test_connectors_list_without_a_running_hub_shows_the_recorded_state(offline: Path) -> None:
    """Issue 2 §8: offline, the list comes from the database and says the hub is not running."""
    done = await mcp_hub(offline, "connectors", "list")
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr.decode()
    assert lines[0] == "# the hub is not running: last known state recorded in the database"
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert set(rows) == {"broken", "faults"}
    assert rows["faults"][1:4] == ["stdio", "legacy", "never-seen"]  # migrated, never served


async def test_connectors_list_json_against_a_running_hub_shows_live_states(served: ServedHub) -> None:
    """Issue 2 §4/§8: with the hub up, the list is its live `/healthz` view."""
    done = await mcp_hub(served.config, "connectors", "list", "--json")
    listing: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr.decode()
    assert listing["source"] == f"live, from {served.base_url}/healthz"
    (faults,) = listing["connectors"]
    assert faults["id"] == "faults"
    assert (faults["state"], faults["era"], faults["enabled"]) == ("ready", "2025-11-25", True)
    assert faults["tools"] >= 9


async def test_catalog_lists_the_public_names_the_hub_recorded(served: ServedHub, tmp_path: Path) -> None:
    """Issue 2 §5/§8: `catalog` reads the database; no connector is contacted.

    The config used here shares the served hub's database but declares no connectors at all, so every
    line can only come from what the hub recorded.
    """
    database_url = load_settings(served.config).database.url
    (tmp_path / "connectors").mkdir()
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    done = await mcp_hub(config, "catalog")
    lines = done.stdout.decode().splitlines()
    assert done.returncode == 0, done.stderr.decode()
    assert "faults__echo\tfaults" in lines
    assert "faults__pid\tfaults" in lines
    assert lines == sorted(lines)


async def test_catalog_live_connects_to_every_connector_and_prints_json(offline: Path) -> None:
    """Issue 2 §5/§8: `catalog --live` asks the connectors now (this database never saw a hub run)."""
    done = await mcp_hub(offline, "catalog", "--live", "--json")
    entries: list[dict[str, str]] = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr.decode()
    assert {"name": "faults__echo", "connector": "faults", "downstream_name": "echo"} in entries
    assert {entry["connector"] for entry in entries} == {"faults"}  # the broken connector contributes nothing


def _write_syscalls(pid: int) -> int:
    """The process's write system calls so far (Linux's `syscw`; uvloop sends on a socket with write(2))."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise AssertionError(f"no syscw in /proc/{pid}/io")


async def test_a_response_leaves_the_hub_in_one_write(served: ServedHub) -> None:
    """Issue 12: uvicorn writes a response's headers and its body apart; the hub's transport sends what one
    event-loop step wrote in one system call (one wake-up of the client instead of two). Counted by the kernel over
    many requests on one kept-alive connection: about one write for the response and one for its access-log line
    (the default level), where uvicorn's own transport makes three (measured 2.2 against 3.0)."""
    requests = 200
    port = int(served.base_url.rsplit(":", 1)[1])
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        await stream.receive()  # the first request's work is not counted
        before = _write_syscalls(served.process.pid)
        with anyio.fail_after(30):
            for _ in range(requests):
                await stream.send(request)
                await stream.receive()
        per_request = (_write_syscalls(served.process.pid) - before) / requests
    assert per_request < 2.6, f"{per_request:.2f} write calls per response"
