"""Shared fixtures: a real hub (uvicorn on a loopback port) over real downstream servers."""

from __future__ import annotations

import asyncio
import asyncio.runners
import itertools
import json
import os
import shutil
import socket
import sys
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn
from anyio.abc import Process
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from mcp_hub.authz.egress import STRICT_EGRESS, EgressPolicy
from mcp_hub.config.connectors import load_connectors
from mcp_hub.config.settings import load_settings
from mcp_hub.db.engine import upgrade
from mcp_hub.domain import Health
from mcp_hub.runtime import Hub, Stores, build_app, server_config
from mcp_hub.telemetry.tracing import Tracing

REPO = Path(__file__).resolve().parent.parent
FAULT_SERVER = Path(__file__).resolve().parent / "fixtures" / "fault_server.py"
PYTHON = sys.executable
NODE_BIN = REPO / "node_modules" / ".bin"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def _report_tasks_left_at_runner_close() -> None:
    """Diagnostics for a rare CI stall: name the tasks the event loop still has when the test runner closes.

    A loaded CI run once hung in asyncio's `_cancel_all_tasks` after a module's hub shut down: some task
    outlived its hub and did not end when cancelled. pytest-timeout then fails the run, but says nothing
    about the task; this prints each leftover task's stack to the real stderr before it is cancelled.
    """
    original = getattr(asyncio.runners, "_cancel_all_tasks", None)
    if original is None:
        return

    def reporting(loop: asyncio.AbstractEventLoop) -> None:
        left = [task for task in asyncio.all_tasks(loop) if not task.done()]
        if left:
            print(f"\n[tests] {len(left)} task(s) left when the event loop closed:", file=sys.__stderr__)
            for task in left:
                print(f"[tests] {task!r}", file=sys.__stderr__)
                task.print_stack(limit=12, file=sys.__stderr__)
        original(loop)

    asyncio.runners._cancel_all_tasks = reporting  # pyright: ignore[reportAttributeAccessIssue]


_report_tasks_left_at_runner_close()

# The files that take longest, run first: pytest-xdist hands out whole files (`--dist loadfile`, with
# `--no-loadscope-reorder`), and one of these started last would keep a worker busy long after the others are done.
# Measured with `--durations`; the order of every other file, and of the tests in a file, stays as collected.
SLOWEST_FILES = (
    "tests/test_replicas.py",
    "tests/conformance/test_direct.py",
    "tests/conformance/test_through_hub.py",
    "tests/test_deployment.py",
    "tests/test_fast_path_differential.py",
    "tests/test_catalog_pins.py",
    "tests/approvals/test_web_approvals.py",
    "tests/test_catalog.py",
    "tests/test_live_connectors.py",
    "tests/test_credentials.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {path: index for index, path in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


_NAMES = itertools.count(1)


async def stop_process(process: Process, grace_seconds: float = 15.0) -> None:
    """Stop a child the test started: SIGTERM (unless it has exited), then SIGKILL after `grace_seconds`."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(grace_seconds):
            await process.wait()
    if process.returncode is None:
        process.kill()
        await process.wait()
    await process.aclose()


def unique(stem: str) -> str:
    """`stem` with a number no other call in this test session got: names for agents and users of tests that
    share one hub (a module-scoped fixture), so that they never collide. Under pytest-xdist the worker's id is
    part of it, so that names made by two workers differ too."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return f"{stem}-{worker}-{next(_NAMES)}" if worker else f"{stem}-{next(_NAMES)}"


MODERN = "2026-07-28"


def modern_envelope(capabilities: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `_meta` every 2026-07-28 request carries: the protocol version and the client's capabilities."""
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": dict(capabilities or {}),
    }


def modern_call_headers(name: str, token: str | None = None) -> dict[str, str]:
    """The HTTP headers of a 2026-07-28 `tools/call` of `name` (spec: `Mcp-Method` and `Mcp-Name` mirror the body)."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": name,
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def modern_call_body(
    name: str,
    arguments: Any,
    *,
    capabilities: Mapping[str, Any] | None = None,
    request_id: int = 1,
    **params: Any,
) -> bytes:
    """The JSON-RPC body of a 2026-07-28 `tools/call`; `params` adds members (`inputResponses`, `requestState`).
    `arguments` is any JSON value: fuzz tests send what no client should."""
    call_params = {"name": name, "arguments": arguments, **params, "_meta": modern_envelope(capabilities)}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": call_params}).encode()


async def modern_call(
    url: str,
    name: str,
    arguments: Mapping[str, Any],
    *,
    token: str | None = None,
    capabilities: Mapping[str, Any] | None = None,
    **params: Any,
) -> httpx2.Response:
    """One raw 2026-07-28 `tools/call` POSTed to `url` (a hub's MCP endpoint, a replica's or a balancer's): for
    tests that look at what the SDK client hides (status codes, headers, `requestState`)."""
    body = modern_call_body(name, arguments, capabilities=capabilities, **params)
    async with httpx2.AsyncClient(timeout=60) as http:  # generous: a replica's call may be held for seconds
        return await http.post(url, content=body, headers=modern_call_headers(name, token))


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        elements: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
        return "[" + ", ".join(toml_value(item) for item in elements) + "]"
    if isinstance(value, dict):
        table: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return "{ " + ", ".join(f"{key} = {toml_value(item)}" for key, item in table.items()) + " }"
    raise TypeError(f"no TOML form for {value!r}")


def connector_toml(**fields: Any) -> str:
    """A connector file. `trust` defaults to "auto" here (a real connector file without it gets "review"): the
    tests that are not about review need tools callable as soon as they are listed (issue 11 §1)."""
    fields = {"trust": "auto", **fields}
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in fields.items())


def fault_connector(connector_id: str = "faults", **fields: Any) -> str:
    """A stdio connector running the fault fixture server (both eras)."""
    defaults: dict[str, Any] = {
        "id": connector_id,
        "transport": "stdio",
        "protocol": "legacy",
        "command": PYTHON,
        "args": [str(FAULT_SERVER)],
    }
    return connector_toml(**{**defaults, **fields})


def time_connector(connector_id: str = "time", **fields: Any) -> str:
    """The PyPI reference server mcp-server-time over stdio."""
    command = shutil.which("mcp-server-time") or str(Path(PYTHON).parent / "mcp-server-time")
    defaults: dict[str, Any] = {
        "id": connector_id,
        "transport": "stdio",
        "protocol": "auto",
        "command": command,
        "args": ["--local-timezone", "UTC"],
    }
    return connector_toml(**{**defaults, **fields})


def write_config(
    directory: Path,
    connectors: Mapping[str, str],
    extra: str = "",
    *,
    auth: bool = False,
    database_url: str | None = None,
) -> Path:
    """A config.toml (SQLite in `directory`, fast reconnects) and one file per connector.

    Authentication is off unless `auth` is set: the federation tests exercise the open loopback hub. The OAuth
    and sign-in limits are wide unless `extra` sets `[limits.endpoints]`: a module's tests share a hub and sign
    in, register and fetch tokens from one address (the limits themselves: tests/test_endpoint_limits.py).
    """
    connectors_dir = directory / "connectors"
    connectors_dir.mkdir(exist_ok=True)
    for connector_id, text in connectors.items():
        (connectors_dir / f"{connector_id}.toml").write_text(text)
    config = directory / "config.toml"
    url = database_url or f"sqlite+aiosqlite:///{directory / 'hub.db'}"
    config.write_text(
        "[database]\n"
        f'url = "{url}"\n'
        "[timeouts]\n"
        "connect_seconds = 20\n"
        "call_seconds = 10\n"
        "reconnect_initial_seconds = 0.05\n"
        "reconnect_max_seconds = 0.5\n"
        + ("" if auth else "[auth]\nenabled = false\n")
        + ("" if "[limits.endpoints]" in extra else WIDE_ENDPOINT_LIMITS)
        + extra
    )
    return config


WIDE_ENDPOINT_LIMITS = (
    "[limits.endpoints]\n"
    + "".join(
        f"{name} = {{ rate = 1000.0, burst = 10000 }}\n"
        for name in (
            "token_per_address",
            "token_per_client",
            "register_per_address",
            "authorize_per_address",
            "revoke_introspect_per_address",
            "login_per_address",
        )
    )
    + "failed_sign_ins_per_address = 10000\n"
)


@dataclass
class RunningHub:
    """A hub served by uvicorn on a loopback port: for tests that need real HTTP (SSE streams, SDK clients,
    subprocesses, browsers)."""

    hub: Hub
    url: str
    """The MCP endpoint, e.g. http://127.0.0.1:PORT/mcp."""
    base_url: str

    async def wait_ready(self, *connector_ids: str, within_seconds: float = 30) -> None:
        with anyio.fail_after(within_seconds):
            for connector_id in connector_ids or tuple(self.hub.pool.connections):
                await self.hub.pool.get(connector_id).wait_for(Health.READY)

    def client(self, **options: Any) -> httpx2.AsyncClient:
        """An HTTP client for the hub (absolute URLs under `base_url`)."""
        return httpx2.AsyncClient(**options)


@dataclass
class InProcessHub:
    """A hub whose HTTP app is called in-process through httpx2's ASGI transport: no socket and no server, for
    tests of HTTP endpoints that need no downstream and no streaming response."""

    hub: Hub
    app: Starlette
    url: str
    base_url: str

    def client(self, **options: Any) -> httpx2.AsyncClient:
        """An HTTP client whose requests go straight to the app (absolute URLs under `base_url` work as well)."""
        return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=self.app), base_url=self.base_url, **options)


HubUnderTest = RunningHub | InProcessHub


@asynccontextmanager
async def in_process_hub(config: Path) -> AsyncGenerator[InProcessHub]:
    """Migrate, build the hub's app and run its lifespan (the hub's components) without serving it anywhere."""
    settings = load_settings(config)
    await upgrade(settings.database.url)
    hub = Hub(settings, load_connectors(settings.connectors_dir))
    app = build_app(hub)
    async with app.router.lifespan_context(app):
        yield InProcessHub(hub=hub, app=app, url=settings.mcp_resource_url, base_url=settings.public_base_url)


@asynccontextmanager
async def serving(app: Starlette) -> AsyncGenerator[str]:
    """Serve `app` with uvicorn on a free loopback port for the block; yields its base URL (a receiver of the
    hub's outgoing requests: webhooks, sinks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{listener.getsockname()[1]}"
            finally:
                server.should_exit = True


@asynccontextmanager
async def running_hub(
    config: Path,
    *,
    egress: EgressPolicy = STRICT_EGRESS,
    stores: Callable[[AsyncEngine], Stores] = Stores.over,
    tracing: Tracing | None = None,
) -> AsyncGenerator[RunningHub]:
    """Migrate, start the hub on a free loopback port, and stop it (and its children) on exit.

    `egress` is the hub's egress guard for URLs clients name (tests of metadata documents loosen it); `stores`
    makes its stores (tests that pin a race down order the approval store's steps); `tracing` its tracer (tests
    of spans export them to memory)."""
    settings = load_settings(config)
    await upgrade(settings.database.url)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        # The hub's public URL (issuer, token audience) must be the one clients reach.
        settings = settings.with_listen(None, port)
        hub = Hub(settings, load_connectors(settings.connectors_dir), egress=egress, stores=stores, tracing=tracing)
        started = anyio.Event()
        app = build_app(hub, on_started=started.set)
        server = uvicorn.Server(server_config(app, settings))  # as `mcp-hub serve`
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(server.serve, [listener])
            with anyio.fail_after(30):
                await started.wait()
            base_url = f"http://127.0.0.1:{port}"
            try:
                yield RunningHub(hub=hub, url=f"{base_url}{settings.hub.mcp_path}", base_url=base_url)
            finally:
                server.should_exit = True
