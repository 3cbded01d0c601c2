"""A third-party client through an auth-enabled hub: the MCP Inspector CLI with a bearer token, both eras.

The Inspector (TypeScript SDK v2) is an independent implementation of the client side of Streamable HTTP
and of MCP authorization: a list and a call it completes with `--header "Authorization: Bearer ..."`, and
its recognising our 401 as "OAuth required", are interoperability evidence our own SDK cannot give.
Threats: T10 (it sees only the granted tools and cannot call others), T02 (a bad token is refused).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.authz.conftest import client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, write_config
from tests.npm_peers import INSPECTOR, INSPECTOR_TIMEOUT, NODE22, ProtocolEra, require_npm_peers, run_inspector

pytestmark = [pytest.mark.anyio, pytest.mark.node]

ERAS: tuple[ProtocolEra, ...] = ("modern", "legacy")
EXIT_AUTH_REQUIRED = 3
"""The Inspector CLI's exit code when the server demands OAuth and it may not run an interactive flow."""
EXIT_TOOL_NOT_FOUND = 5


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    require_npm_peers()
    config = write_config(tmp_path_factory.mktemp("inspector-auth"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


@pytest.fixture(scope="module")
async def token(hub: RunningHub) -> str:
    """A token of an agent granted `faults__echo` only."""
    agent = await make_agent(hub, "inspector", "tool:faults__echo")
    return await client_credentials_token(hub, agent)


async def refused_inspection(url: str, era: ProtocolEra, home: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the Inspector CLI expecting it to fail: its exit code and the JSON error it writes to stderr."""
    command = [str(NODE22), str(INSPECTOR), "--cli", url, "--transport", "http", "--protocol-era", era]
    command += ["--format", "json", *args]
    env = {key: value for key, value in os.environ.items() if key != "MCP_AUTO_OPEN_ENABLED"}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "NO_COLOR": "1"}
    with anyio.fail_after(INSPECTOR_TIMEOUT):
        completed = await anyio.run_process(command, env=env, check=False, stdin=subprocess.DEVNULL)
    stderr = completed.stderr.decode()
    assert completed.returncode != 0, completed.stdout.decode()
    error: dict[str, Any] = json.loads(stderr.strip().splitlines()[-1])
    return completed.returncode, error


@pytest.mark.parametrize("era", ERAS)
async def test_the_inspector_with_a_bearer_token_lists_and_calls_only_granted_tools(
    hub: RunningHub, token: str, era: ProtocolEra, tmp_path: Path
) -> None:
    """T10, MCP authorization spec (`Authorization: Bearer` on every request): an independent client is served."""
    authorization = ("--header", f"Authorization: Bearer {token}")
    listing = await run_inspector(hub.url, era, tmp_path, *authorization, "--method", "tools/list")
    called = await run_inspector(
        hub.url,
        era,
        tmp_path,
        *authorization,
        "--method",
        "tools/call",
        "--tool-name",
        "faults__echo",
        "--tool-arg",
        f"text=inspected in {era}",
    )
    assert [tool["name"] for tool in listing["result"]["tools"]] == ["faults__echo"]
    assert called["result"]["content"] == [{"type": "text", "text": f"inspected in {era}"}]
    assert called["result"].get("isError", False) is False


@pytest.mark.parametrize("era", ERAS)
async def test_the_inspector_cannot_call_a_tool_outside_the_grants(
    hub: RunningHub, token: str, era: ProtocolEra, tmp_path: Path
) -> None:
    """T10, our design (one decision for list and call): the ungranted tool does not exist for this client."""
    code, error = await refused_inspection(
        hub.url,
        era,
        tmp_path,
        "--header",
        f"Authorization: Bearer {token}",
        "--method",
        "tools/call",
        "--tool-name",
        "faults__pid",
    )
    assert code == EXIT_TOOL_NOT_FOUND
    assert error["error"]["code"] == "tool_not_found"


@pytest.mark.parametrize("era", ERAS)
async def test_the_inspector_recognises_the_401_of_a_bad_token_as_oauth_required(
    hub: RunningHub, era: ProtocolEra, tmp_path: Path
) -> None:
    """T02, MCP authorization spec + RFC 9728: our 401 challenge leads a real client to OAuth discovery."""
    code, error = await refused_inspection(
        hub.url, era, tmp_path, "--header", "Authorization: Bearer not-a-token", "--method", "tools/list"
    )
    assert code == EXIT_AUTH_REQUIRED
    assert error["error"]["code"] == "auth_required"
