"""`mcp-hub stdio` with identity: `--agent NAME` or `MCP_HUB_TOKEN` applies the same grants as HTTP (issue 3 §8).

Each test runs the real console script with a real SDK client over stdio. Stdio has no HTTP status, so a
call outside the grants is a JSON-RPC error (-32003) naming the scope; a hub that cannot name its caller
refuses to start. Threats: T02 (the token is verified like a bearer token), T10 (grants decide, the token
caps them), T09 (a revoked token stops working mid-session).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError

from mcp_hub.config.settings import load_settings
from mcp_hub.db.engine import upgrade
from mcp_hub.gateway.errors import FORBIDDEN as FORBIDDEN_CODE
from mcp_hub.gateway.stdio import TOKEN_ENV
from mcp_hub.runtime import AdminTools, admin_tools
from tests.cli_process import run_cli
from tests.conftest import fault_connector, write_config
from tests.test_stdio_front_door import ERAS, MCP_HUB, Era, StderrWatch

pytestmark = pytest.mark.anyio

START_TIMEOUT = 40
DEFAULT_DECISION_CACHE_SECONDS = 2.0


@asynccontextmanager
async def admin(config: Path) -> AsyncGenerator[AdminTools]:
    """The admin layer on the hub's database, as `mcp-hub agents|grants|token` use it."""
    async with admin_tools(load_settings(config)) as tools:
        yield tools


@pytest.fixture(scope="module")
async def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An auth-enabled hub config with the fault fixture, and agents: `echo-only`, `wide`, `switched-off`."""
    path = write_config(tmp_path_factory.mktemp("stdio-auth"), {"faults": fault_connector()}, auth=True)
    await upgrade(load_settings(path).database.url)
    async with admin(path) as tools:
        await tools.auth.admin.create_agent("echo-only", ["tool:faults__echo"])
        await tools.auth.admin.create_agent("wide", ["tool:faults__*"])
        await tools.auth.admin.create_agent("switched-off", ["tool:*"])
        await tools.auth.admin.set_agent_enabled("switched-off", False)
    return path


async def mint(config: Path, agent: str, scope: str | None = None) -> str:
    async with admin(config) as tools:
        response = await tools.auth.admin.mint_token(agent, scope)
    token = response["access_token"]
    assert isinstance(token, str)
    return token


@asynccontextmanager
async def stdio_client_of(
    config: Path, era: Era, *, args: tuple[str, ...] = (), env: Mapping[str, str] | None = None
) -> AsyncGenerator[Client]:
    """An SDK client of `era` on `mcp-hub stdio --config CONFIG ARGS...`, once the fault connector is ready."""
    params = StdioServerParameters(
        command=str(MCP_HUB), args=["stdio", "--config", str(config), *args], env=dict(env or {})
    )
    watch = StderrWatch()
    read_fd, write_fd = os.pipe()
    with os.fdopen(read_fd) as errread, os.fdopen(write_fd, "w") as errlog:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(watch.drain, errread)
            try:
                async with Client(stdio_client(params, errlog=errlog), mode=era) as client:
                    errlog.close()  # the hub holds its own copy: the pipe ends when the hub exits
                    await watch.wait_for("downstream ready")
                    yield client
            finally:
                errlog.close()


async def names_and_refusal(client: Client, refused_tool: str) -> tuple[list[str], MCPError]:
    names = [tool.name for tool in (await client.list_tools()).tools]
    with pytest.raises(MCPError) as refused:
        await client.call_tool(refused_tool, {})
    return names, refused.value


@pytest.mark.parametrize("era", ERAS)
async def test_stdio_with_an_agent_serves_only_its_granted_tools(config: Path, era: Era) -> None:
    """Issue 3 §8 (T10), our choice: `--agent` applies the agent's grants; outside them a JSON-RPC error -32003."""
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client_of(config, era, args=("--agent", "echo-only")) as client:
            echoed = await client.call_tool("faults__echo", {"text": "granted"})
            names, refused = await names_and_refusal(client, "faults__pid")
    assert names == ["faults__echo"]
    assert echoed.is_error is False
    assert refused.error.code == FORBIDDEN_CODE
    assert "tool:faults__pid" in refused.error.message


@pytest.mark.parametrize("era", ERAS)
async def test_stdio_with_a_token_in_the_environment_is_capped_by_its_scopes(config: Path, era: Era) -> None:
    """Issue 3 §8 (T10), our choice: MCP_HUB_TOKEN names the agent; its scopes cap the agent's wider grants."""
    token = await mint(config, "wide", "tool:faults__echo")
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client_of(config, era, env={TOKEN_ENV: token}) as client:
            echoed = await client.call_tool("faults__echo", {"text": "within the cap"})
            names, refused = await names_and_refusal(client, "faults__pid")
    assert names == ["faults__echo"]
    assert echoed.is_error is False
    assert refused.error.code == FORBIDDEN_CODE
    assert "tool:faults__pid" in refused.error.message


async def test_stdio_with_a_token_of_a_widely_granted_agent_sees_all_it_may_call(config: Path) -> None:
    """Issue 3 §8, our choice: a token without a narrower scope carries all the agent's grants over stdio too."""
    token = await mint(config, "wide")
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client_of(config, "2026-07-28", env={TOKEN_ENV: token}) as client:
            names = [tool.name for tool in (await client.list_tools()).tools]
            pid = await client.call_tool("faults__pid", {})
    assert {"faults__echo", "faults__pid"} <= set(names)
    assert all(name.startswith("faults__") for name in names)
    assert pid.is_error is False


async def refused_start(config: Path, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    """Run `mcp-hub stdio` expecting it to refuse: (exit code, stdout, stderr). A process of its own, forked
    from one that imported the command already (tests/cli_process.py): the sessions above run the console script."""
    environment = {key: value for key, value in os.environ.items() if key != TOKEN_ENV}
    argv = ["stdio", "--config", str(config), *args]
    completed = await run_cli(argv, env={**environment, **(env or {})}, within_seconds=START_TIMEOUT)
    return completed.returncode, completed.stdout.decode(), completed.stderr.decode()


async def test_stdio_without_an_identity_refuses_to_start(config: Path) -> None:
    """Issue 3 §8, our choice (fail closed): with auth on, no --agent and no MCP_HUB_TOKEN is a clear refusal."""
    code, stdout, stderr = await refused_start(config)
    assert code == 1
    assert stdout == ""
    assert "--agent NAME" in stderr
    assert TOKEN_ENV in stderr
    assert "hub started" not in stderr  # nothing was served, no downstream launched


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--agent", "nobody"), "no agent named 'nobody'"),
        (("--agent", "switched-off"), "agent:switched-off is disabled"),
    ],
)
async def test_stdio_for_an_unknown_or_disabled_agent_refuses_to_start(
    config: Path, args: tuple[str, ...], expected: str
) -> None:
    """Issue 3 §8, our choice (fail closed): the named agent must exist and be enabled."""
    code, stdout, stderr = await refused_start(config, *args)
    assert code == 1
    assert stdout == ""
    assert expected in stderr
    assert "hub started" not in stderr


async def test_stdio_with_a_bad_token_refuses_to_start_and_never_prints_it(config: Path) -> None:
    """T02 (the token is verified exactly as on /mcp), T23: the refusal says why without echoing the token."""
    token = await mint(config, "wide")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    code, stdout, stderr = await refused_start(config, env={TOKEN_ENV: tampered})
    assert code == 1
    assert stdout == ""
    assert f"{TOKEN_ENV} is not a usable access token" in stderr
    assert signature[:-4] not in stderr
    assert payload not in stderr


async def test_stdio_refuses_both_an_agent_and_a_token(config: Path) -> None:
    """Issue 3 §8, our choice: the caller is named once, so two possibly different identities are refused."""
    token = await mint(config, "echo-only")
    code, _, stderr = await refused_start(config, "--agent", "wide", env={TOKEN_ENV: token})
    assert code == 1
    assert "not both" in stderr


async def test_a_stdio_session_refuses_every_request_once_its_token_is_revoked(config: Path) -> None:
    """T09, our choice: a session named by a token is worth no more than the token; revocation shows within
    `auth.decision_cache_seconds` (2 s by default) as JSON-RPC error -32003 on every request."""
    token = await mint(config, "wide")
    refusal: MCPError | None = None
    with anyio.fail_after(START_TIMEOUT):
        async with stdio_client_of(config, "2026-07-28", env={TOKEN_ENV: token}) as client:
            assert (await client.call_tool("faults__echo", {"text": "before"})).is_error is False
            async with admin(config) as tools:
                claims = await tools.auth.tokens.verify(token)
                await tools.stores.oauth.revoke_access_token(claims.jti, datetime.fromtimestamp(claims.expires_at, UTC))

            async def refused() -> MCPError | None:
                try:
                    await client.call_tool("faults__echo", {"text": "after"})
                except MCPError as exc:
                    return exc
                return None

            with anyio.fail_after(DEFAULT_DECISION_CACHE_SECONDS + 3):
                while (refusal := await refused()) is None:  # noqa: ASYNC110 - the revocation is a database row
                    await anyio.sleep(0.05)
            with pytest.raises(MCPError) as listing:
                await client.list_tools()
    assert refusal.error.code == FORBIDDEN_CODE
    assert (
        refusal.error.message
        == f"the access token in {TOKEN_ENV} is no longer valid: the access token has been revoked"
    )
    assert listing.value.error.code == FORBIDDEN_CODE
