"""What the hub adds to a trivial `tools/call`: direct to a downstream vs through `mcp-hub serve`, auth on and off.

    .venv/bin/python bench/overhead.py [--quick] [--auth both|on|off] [--driver raw|sdk] [--no-wrk]
        [--calls N] [--latency-rounds N] [--rounds N] [--seconds S] [--concurrency 20]
        [--wait-quiet SECONDS] [--extra-tools N] [--extra-config TOML|@FILE] [--json FILE] [--py-spy DIR]

Two downstreams (`bench/echo_server.py`, an `echo` tool): one served over Streamable HTTP by its own process,
one each hub spawns over stdio ("direct" for stdio spawns the same server from the load generator). One hub per
auth mode runs as its own process (`mcp-hub migrate`, then `mcp-hub serve`, SQLite), with both connectors pinned
to the 2026-07-28 era; with auth on, every call carries the bearer token of an agent granted `tool:*`. The hubs
and the echo servers run on the same kind of event loop (uvloop when installed: uvicorn's `auto`, and anyio's
`use_uvloop` for the stdio echo); the report names the loop each process has loaded.

Load generators, all speaking 2026-07-28:
- `raw`: JSON-RPC posted with one keep-alive `httpx2.AsyncClient` per worker, the era's headers and the
  `_meta` envelope the SDK client stamps (for the direct stdio path: the same JSON lines over the pipes).
- `sdk`: `mcp.Client(url, mode="2026-07-28")` per worker (one shared stdio client for direct stdio),
  protocol-correct but CPU-heavy: on a 2-core machine its own cost shows in every figure.
- `wrk` (if installed: `apt-get install -y wrk`): a C load generator with a Lua script; HTTP targets only.

Method: every figure is measured once per round, and rounds alternate the routes (direct, hub with auth off,
hub with auth on; the order rotates each round) so that drift on a shared machine hits every route alike. A
figure is reported as the median of its rounds with their range, `median [min-max]`: that range is the noise.
"Added" latency is the hub's percentile minus the direct one of the same round; the throughput ratio is the
hub's calls/s over the direct calls/s of the same round. Every response is checked (the echoed text), and any
failure aborts the run. "hub cpu" is the hub process's CPU time per call (from /proc), which a busy machine
disturbs far less than wall-clock figures; "echo cpu" is the downstream's; "gen cpu" the load generator's own.
The direct stdio route has no HTTP leg at all (the load generator writes lines to its child's pipes: ~0.1 ms of
its CPU per call, against ~0.6 ms for an HTTP call), so stdio's "added" also counts the load generator's HTTP
client and the loopback TCP hop that reaching any hub takes, not only the hub's own work. `--json FILE` writes
every figure (read by `bench/chart.py`); `--extra-config` is TOML merged over every hub's configuration (a fast path
switched on or off, say). `--py-spy DIR` samples the hubs during the raw throughput rounds; read the result with
`bench/profile_summary.py`. See docs/benchmarks.md for results and analysis.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from harness import (
    ECHO_SERVER,
    HAS_UVLOOP,
    PYTHON,
    READY_TIMEOUT_SECONDS,
    BenchError,
    Spread,
    child,
    child_running,
    cpu_seconds,
    event_loop_of,
    extra_config,
    free_port,
    hub_command,
    log,
    machine_json,
    merged,
    percentile,
    tail,
    toml_text,
    wait_for_hub,
    wait_for_quiet,
    write_json,
)
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

MODERN = "2026-07-28"
HTTP_CONNECTOR = "http-echo"
STDIO_CONNECTOR = "stdio-echo"
ECHO_TEXT = "hi"
# The targets of issue 12 (shared/docs/benchmarks.md), for auth on.
TARGET_ADDED_P50_MS = 0.5
TARGET_THROUGHPUT_RATIO = 0.80
CALL_TIMEOUT_SECONDS = 30.0
MAX_LINE_BYTES = 1 << 20
AUTH_MODES = ("off", "on")

Call = Callable[[], Awaitable[None]]


# --- the wire ------------------------------------------------------------------------------------------


def request_body(tool: str, request_id: int) -> dict[str, Any]:
    """A 2026-07-28 `tools/call` as the SDK client stamps it (`_make_modern_stamp`), minus clientInfo."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": {"text": ECHO_TEXT},
            "_meta": {
                types.PROTOCOL_VERSION_META_KEY: MODERN,
                types.CLIENT_CAPABILITIES_META_KEY: {},
            },
        },
    }


def request_headers(tool: str, token: str | None = None) -> dict[str, str]:
    headers = {
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def check_echo(message: Any, request_id: int | None = None) -> None:
    """Raise `BenchError` unless `message` is the JSON-RPC answer of a successful echo."""
    try:
        result = message["result"]
        ok = (
            (request_id is None or message["id"] == request_id)
            and result["isError"] is False
            and result["content"][0]["text"] == ECHO_TEXT
        )
    except (KeyError, IndexError, TypeError):
        ok = False
    if not ok:
        raise BenchError(f"unexpected answer: {json.dumps(message)[:300]}")


# --- targets and callers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One way to reach the echo tool."""

    label: str  # e.g. "http direct"
    tool: str
    url: str | None = None  # Streamable HTTP endpoint; None: spawn the echo server over stdio
    token: str | None = None  # bearer token for a hub with auth enabled (--auth)


@asynccontextmanager
async def raw_http_callers(target: Target, count: int) -> AsyncGenerator[list[Call]]:
    """`count` callers, each with its own keep-alive connection."""
    assert target.url is not None
    url = target.url
    headers = request_headers(target.tool, target.token)
    async with AsyncExitStack() as stack:
        callers: list[Call] = []
        for _ in range(count):
            client = httpx2.AsyncClient(
                timeout=CALL_TIMEOUT_SECONDS, headers=headers, limits=httpx2.Limits(max_connections=1)
            )
            await stack.enter_async_context(client)
            callers.append(_raw_http_call(client, url, target.tool))
        yield callers


def _raw_http_call(client: httpx2.AsyncClient, url: str, tool: str) -> Call:
    counter = iter(range(1, 1 << 62))

    async def call() -> None:
        request_id = next(counter)
        response = await client.post(url, content=json.dumps(request_body(tool, request_id)).encode())
        if response.status_code != 200:
            raise BenchError(f"{url}: HTTP {response.status_code}: {response.text[:300]}")
        check_echo(response.json(), request_id)

    return call


class StdioMultiplexer:
    """Newline-delimited JSON-RPC to one stdio child, shared by many callers (answers matched by id)."""

    def __init__(self, process: Process) -> None:
        assert process.stdin is not None
        assert process.stdout is not None
        self._process = process
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self._waiting: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._next_id = 0
        self._write_lock = anyio.Lock()

    async def read_forever(self) -> None:
        while True:
            line = await self._stdout.receive_until(b"\n", MAX_LINE_BYTES)
            message: Any = json.loads(line)
            slot = self._waiting.pop(message.get("id"), None)
            if slot is not None:
                slot[1].append(message)
                slot[0].set()

    async def call(self, tool: str) -> None:
        self._next_id += 1
        request_id = self._next_id
        done, box = anyio.Event(), list[Any]()
        self._waiting[request_id] = (done, box)
        line = json.dumps(request_body(tool, request_id)).encode() + b"\n"
        async with self._write_lock:
            await self._stdin.send(line)
        with anyio.fail_after(CALL_TIMEOUT_SECONDS):
            await done.wait()
        check_echo(box[0], request_id)


@asynccontextmanager
async def raw_stdio_callers(target: Target, count: int) -> AsyncGenerator[list[Call]]:
    """`count` callers sharing one spawned echo server, as the hub's callers share its one stdio child."""
    async with await anyio.open_process(
        [PYTHON, str(ECHO_SERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None
    ) as process:
        mux = StdioMultiplexer(process)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(mux.read_forever)

            async def call() -> None:
                await mux.call(target.tool)

            try:
                yield [call] * count
            finally:
                tasks.cancel_scope.cancel()
                process.terminate()


@asynccontextmanager
async def sdk_callers(target: Target, count: int) -> AsyncGenerator[list[Call]]:
    """`count` SDK clients over HTTP; one shared SDK client (one child) for stdio."""
    async with AsyncExitStack() as stack:
        clients: list[Client] = []
        if target.url is None:
            shared = Client(StdioServerParameters(command=PYTHON, args=[str(ECHO_SERVER)]), mode=MODERN)
            clients = [await stack.enter_async_context(shared)] * count
        else:
            for _ in range(count):
                auth = {"Authorization": f"Bearer {target.token}"} if target.token else {}
                http = await stack.enter_async_context(httpx2.AsyncClient(headers=auth, timeout=30))
                transport = streamable_http_client(target.url, http_client=http)
                clients.append(await stack.enter_async_context(Client(transport, mode=MODERN)))
        yield [_sdk_call(client, target.tool) for client in clients]


def _sdk_call(client: Client, tool: str) -> Call:
    async def call() -> None:
        result = await client.call_tool(tool, {"text": ECHO_TEXT}, read_timeout_seconds=CALL_TIMEOUT_SECONDS)
        content = result.content[0] if result.content else None
        if result.is_error or not isinstance(content, types.TextContent) or content.text != ECHO_TEXT:
            raise BenchError(f"{tool}: unexpected result {result!r}"[:300])

    return call


def callers_for(driver: str, target: Target, count: int) -> AbstractAsyncContextManager[list[Call]]:
    """The async context manager yielding `count` callers of `target` for `driver` ("raw" or "sdk")."""
    if driver == "sdk":
        return sdk_callers(target, count)
    if target.url is None:
        return raw_stdio_callers(target, count)
    return raw_http_callers(target, count)


# --- CPU accounting ------------------------------------------------------------------------------------


# --- routes and rounds -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One way to the echo tool, with the processes whose CPU a call through it costs."""

    name: str  # "direct", "hub auth off", "hub auth on"
    target: Target
    auth: str | None = None  # "on" / "off" for a hub, None for direct
    hub_pid: int | None = None
    echo_pid: int | None = None  # the downstream serving this route's calls, when known


@dataclass
class Sample:
    """One round of one route: calls, wall time, latencies and the CPU the processes spent meanwhile."""

    calls: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list[float])
    hub_cpu_s: float = float("nan")
    echo_cpu_s: float = float("nan")
    gen_cpu_s: float = float("nan")
    """The load generator's own CPU: its HTTP client for an HTTP route, only pipe writes and reads for direct stdio."""
    p50_ms: float | None = None  # wrk reports percentiles itself
    p99_ms: float | None = None

    def p50(self) -> float:
        return self.p50_ms if self.p50_ms is not None else percentile(self.latencies_ms, 50)

    def p99(self) -> float:
        return self.p99_ms if self.p99_ms is not None else percentile(self.latencies_ms, 99)

    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else float("nan")

    def hub_cpu_ms(self) -> float:
        return self.hub_cpu_s / self.calls * 1000 if self.calls else float("nan")

    def echo_cpu_ms(self) -> float:
        return self.echo_cpu_s / self.calls * 1000 if self.calls else float("nan")

    def gen_cpu_ms(self) -> float:
        return self.gen_cpu_s / self.calls * 1000 if self.calls else float("nan")


RoundBody = Callable[[Route, Sample], Awaitable[None]]


async def alternate(routes: Sequence[Route], rounds: int, body: RoundBody) -> dict[str, list[Sample]]:
    """`rounds` rounds of `body` over every route, the order rotating each round; the samples per route."""
    samples: dict[str, list[Sample]] = {route.name: [] for route in routes}
    for index in range(rounds):
        shift = index % len(routes)
        for route in [*routes[shift:], *routes[:shift]]:
            sample = Sample()
            hub_before, echo_before = cpu_seconds(route.hub_pid), cpu_seconds(route.echo_pid)
            gen_before = time.process_time()
            await body(route, sample)
            sample.gen_cpu_s = time.process_time() - gen_before
            sample.hub_cpu_s = cpu_seconds(route.hub_pid) - hub_before
            sample.echo_cpu_s = cpu_seconds(route.echo_pid) - echo_before
            samples[route.name].append(sample)
    return samples


@dataclass
class Measurement:
    """The rounds of one kind of run (sequential or under load) for one downstream and driver."""

    kind: str  # "latency" (concurrency 1) or "throughput"
    downstream: str  # "http" or "stdio"
    driver: str  # "raw", "sdk", "wrk"
    concurrency: int
    samples: dict[str, list[Sample]]  # per route name, one per round

    def rows(self) -> list[dict[str, Any]]:
        """One JSON row per hub route: its figures against the direct route's, round by round."""
        direct = self.samples.get("direct")
        rows: list[dict[str, Any]] = []
        for name, hub in self.samples.items():
            if name == "direct":
                continue
            figures = latency_figures(direct, hub) if self.kind == "latency" else throughput_figures(direct, hub)
            rows.append(
                {
                    "kind": self.kind,
                    "downstream": self.downstream,
                    "driver": self.driver,
                    "auth": name.rpartition(" ")[2],
                    "concurrency": self.concurrency,
                    "rounds": len(hub),
                    "calls": sum(sample.calls for sample in hub),
                    "figures": {key: spread.as_json() for key, spread in figures.items()},
                }
            )
        return rows


def _paired(direct: list[Sample] | None, hub: list[Sample], figure: Callable[[Sample, Sample], float]) -> Spread:
    if direct is None:
        return Spread.of([float("nan")] * len(hub))
    return Spread.of([figure(d, h) for d, h in zip(direct, hub, strict=True)])


def _each(samples: list[Sample] | None, figure: Callable[[Sample], float]) -> Spread:
    return Spread.of([figure(sample) for sample in samples or []])


def latency_figures(direct: list[Sample] | None, hub: list[Sample]) -> dict[str, Spread]:
    return {
        "added_p50_ms": _paired(direct, hub, lambda d, h: h.p50() - d.p50()),
        "added_p99_ms": _paired(direct, hub, lambda d, h: h.p99() - d.p99()),
        "direct_p50_ms": _each(direct, Sample.p50),
        "direct_p99_ms": _each(direct, Sample.p99),
        "hub_p50_ms": _each(hub, Sample.p50),
        "hub_p99_ms": _each(hub, Sample.p99),
        "hub_cpu_ms_per_call": _each(hub, Sample.hub_cpu_ms),
        "echo_cpu_ms_per_call_direct": _each(direct, Sample.echo_cpu_ms),
        "echo_cpu_ms_per_call_hub": _each(hub, Sample.echo_cpu_ms),
        "gen_cpu_ms_per_call_direct": _each(direct, Sample.gen_cpu_ms),
        "gen_cpu_ms_per_call_hub": _each(hub, Sample.gen_cpu_ms),
    }


def throughput_figures(direct: list[Sample] | None, hub: list[Sample]) -> dict[str, Spread]:
    return {
        "ratio": _paired(direct, hub, lambda d, h: h.rps() / d.rps()),
        "direct_rps": _each(direct, Sample.rps),
        "hub_rps": _each(hub, Sample.rps),
        "direct_p50_ms": _each(direct, Sample.p50),
        "hub_p50_ms": _each(hub, Sample.p50),
        "hub_cpu_ms_per_call": _each(hub, Sample.hub_cpu_ms),
        "echo_cpu_ms_per_call_direct": _each(direct, Sample.echo_cpu_ms),
        "echo_cpu_ms_per_call_hub": _each(hub, Sample.echo_cpu_ms),
    }


# --- the SDK and raw drivers ----------------------------------------------------------------------------


async def _timed(call: Call, sink: list[float]) -> None:
    started = time.perf_counter()
    await call()
    sink.append((time.perf_counter() - started) * 1000)


async def sequential(driver: str, routes: Sequence[Route], calls: int, rounds: int, warmup: int) -> Measurement:
    """`calls` sequential calls per route, in `rounds` alternating blocks."""
    per_round = max(1, calls // rounds)
    async with AsyncExitStack() as stack:
        callers: dict[str, Call] = {}
        for route in routes:
            callers[route.name] = (await stack.enter_async_context(callers_for(driver, route.target, 1)))[0]
        for _ in range(warmup):
            for call in callers.values():
                await call()

        async def block(route: Route, sample: Sample) -> None:
            call = callers[route.name]
            started = time.perf_counter()
            for _ in range(per_round):
                await _timed(call, sample.latencies_ms)
            sample.seconds = time.perf_counter() - started
            sample.calls = per_round

        samples = await alternate(routes, rounds, block)
    return Measurement("latency", routes[0].target.label.split()[0], driver, 1, samples)


async def _load_round(callers: Sequence[Call], seconds: float, sample: Sample) -> None:
    """Run every caller in a loop for `seconds`, counting completed calls into `sample`."""
    start = anyio.Event()
    started = deadline = 0.0

    async def worker(call: Call) -> None:
        await start.wait()
        while time.perf_counter() < deadline:
            await _timed(call, sample.latencies_ms)
            sample.calls += 1

    async with anyio.create_task_group() as tasks:
        for call in callers:
            tasks.start_soon(worker, call)
        await anyio.sleep(0.05)
        started = time.perf_counter()
        deadline = started + seconds
        start.set()
    sample.seconds = time.perf_counter() - started


async def throughput(
    driver: str, routes: Sequence[Route], concurrency: int, seconds: float, rounds: int
) -> Measurement:
    """Alternating timed rounds of `concurrency` workers per route."""
    async with AsyncExitStack() as stack:
        callers: dict[str, list[Call]] = {}
        for route in routes:
            callers[route.name] = await stack.enter_async_context(callers_for(driver, route.target, concurrency))
        for route in routes:  # warm-up: connections, caches
            await _load_round(callers[route.name], min(1.0, seconds / 3), Sample())

        async def block(route: Route, sample: Sample) -> None:
            await _load_round(callers[route.name], seconds, sample)

        samples = await alternate(routes, rounds, block)
    return Measurement("throughput", routes[0].target.label.split()[0], driver, concurrency, samples)


# --- wrk -------------------------------------------------------------------------------------------------

_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) bad = 0 end
function response(status, headers, body)
  local ok = status == 200 and string.find(body, '"text":"{text}"', 1, true)
  if not (ok and string.find(body, '"isError":false', 1, true)) then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("BAD_RESPONSES %d\\n", total))
  io.write(string.format("P50_US %d\\nP99_US %d\\n", latency:percentile(50), latency:percentile(99)))
end
"""


async def run_wrk(wrk: str, target: Target, connections: int, seconds: float, scripts: Path, sample: Sample) -> None:
    """One wrk run against `target`, its figures into `sample` (any bad response aborts the benchmark)."""
    assert target.url is not None
    script = scripts / f"{target.tool}-{target.token is not None}.lua"
    headers = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in request_headers(target.tool, target.token).items()
    )
    body = json.dumps(request_body(target.tool, 1), separators=(",", ":"))
    script.write_text(_WRK_SCRIPT.format(body=body, headers=headers, text=ECHO_TEXT))
    threads = min(connections, 2)
    duration = max(1, round(seconds))
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{duration}s", "-s", str(script), target.url]
    with anyio.fail_after(duration + 60):
        completed = await anyio.run_process(command, check=False)
    output = completed.stdout.decode(errors="replace")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"BAD_RESPONSES (\d+)", output)
    p50, p99 = re.search(r"P50_US (\d+)", output), re.search(r"P99_US (\d+)", output)
    requests = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    if completed.returncode != 0 or rps is None or bad is None or p50 is None or p99 is None or requests is None:
        raise BenchError(f"wrk failed on {target.label}: {output}{completed.stderr.decode(errors='replace')}")
    errors = re.search(r"Socket errors: .*|Non-2xx or 3xx responses: \d+", output)
    if int(bad.group(1)) or errors:
        raise BenchError(f"wrk saw {bad.group(1)} bad responses on {target.label}: {output}")
    sample.calls = int(requests.group(1))
    sample.seconds = sample.calls / float(rps.group(1)) if float(rps.group(1)) else float("nan")
    sample.p50_ms = int(p50.group(1)) / 1000
    sample.p99_ms = int(p99.group(1)) / 1000


async def measure_wrk(
    wrk: str, downstream: str, routes: Sequence[Route], options: Options, scripts: Path
) -> list[Measurement]:
    """Alternating wrk rounds at one connection (latency) and at `--concurrency` (throughput)."""
    reachable = [route for route in routes if route.target.url is not None]  # direct stdio has no URL
    measurements: list[Measurement] = []
    for kind, connections, rounds in (
        ("latency", 1, options.latency_rounds),
        ("throughput", options.concurrency, options.rounds),
    ):
        log(f"wrk: {downstream}, {kind}, {connections} connection(s), {rounds} rounds per route")

        async def block(route: Route, sample: Sample, connections: int = connections) -> None:
            await run_wrk(wrk, route.target, connections, options.seconds, scripts, sample)

        samples = await alternate(reachable, rounds, block)
        measurements.append(Measurement(kind, downstream, "wrk", connections, samples))
    return measurements


# --- profiling -------------------------------------------------------------------------------------------


@asynccontextmanager
async def py_spy(exe: str | None, out_dir: Path | None, pid: int, name: str, seconds: float) -> AsyncGenerator[None]:
    """Sample process `pid` with py-spy (collapsed stacks into `out_dir/name.txt`) while the body runs."""
    if exe is None or out_dir is None:
        yield
        return
    command = [
        exe,
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--nonblocking",
        "--duration",
        str(max(1, round(seconds))),
        "--output",
        str(out_dir / f"{name}.txt"),
    ]
    async with await anyio.open_process(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as process:
        await anyio.sleep(0.5)  # py-spy attaches before the load starts
        try:
            yield
        finally:
            with anyio.move_on_after(seconds + 30) as scope:
                await process.wait()
            if scope.cancelled_caught:
                process.kill()


# --- the run ---------------------------------------------------------------------------------------------


@dataclass
class Options:
    calls: int
    concurrency: int
    seconds: float
    rounds: int
    latency_rounds: int
    warmup: int
    drivers: list[str]
    use_wrk: bool
    era: str
    py_spy_dir: Path | None
    quick: bool
    auth_modes: list[str]
    extra_tools: int = 0
    wait_quiet: float = 0.0
    json_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict[str, Any])
    hub_log_level: str = "warning"
    """The hubs' `--log-level`: `info` (the shipped default) adds a call line and an access line per call."""


@dataclass
class RunningHub:
    auth: str
    pid: int
    url: str
    token: str | None
    stdio_echo_pid: int | None


@dataclass
class Report:
    measurements: list[Measurement] = field(default_factory=list[Measurement])
    loops: dict[str, str] = field(default_factory=dict[str, str])
    notes: list[str] = field(default_factory=list[str])
    busy_before: float = float("nan")


def routes_for(downstream: str, direct: Target, hubs: Sequence[RunningHub], http_echo_pid: int) -> list[Route]:
    connector = HTTP_CONNECTOR if downstream == "http" else STDIO_CONNECTOR
    routes = [Route("direct", direct, echo_pid=http_echo_pid if downstream == "http" else None)]
    for hub in hubs:
        target = Target(f"{downstream} hub auth {hub.auth}", f"{connector}__echo", hub.url, hub.token)
        echo_pid = http_echo_pid if downstream == "http" else hub.stdio_echo_pid
        routes.append(Route(f"hub auth {hub.auth}", target, hub.auth, hub.pid, echo_pid))
    return routes


async def measure(
    options: Options, directs: dict[str, Target], hubs: Sequence[RunningHub], http_echo_pid: int, scripts: Path
) -> Report:
    """Every measurement, against hubs and a downstream already running."""
    report = Report()
    report.loops["load generator"] = event_loop_of(os.getpid())
    # A raw request must succeed through every hub, on both connectors, before anything is timed.
    for downstream, direct in directs.items():
        for route in routes_for(downstream, direct, hubs, http_echo_pid)[1:]:
            async with raw_http_callers(route.target, 1) as callers:
                await callers[0]()
    py_spy_exe = _py_spy_exe(options.py_spy_dir)
    wrk = shutil.which("wrk") if options.use_wrk else None
    if options.use_wrk and wrk is None:
        report.notes.append("wrk is not installed (apt-get install -y wrk): its rows are skipped")
    for downstream, direct in directs.items():
        routes = routes_for(downstream, direct, hubs, http_echo_pid)
        for driver in options.drivers:
            log(f"sequential: {downstream}, {driver}, {options.calls} calls per route, {options.latency_rounds} rounds")
            report.measurements.append(
                await sequential(driver, routes, options.calls, options.latency_rounds, options.warmup)
            )
            log(
                f"throughput: {downstream}, {driver}, {options.concurrency} clients, "
                f"{options.rounds} x {options.seconds:g} s per route"
            )
            profile_dir = options.py_spy_dir if driver == "raw" else None
            seconds = options.rounds * options.seconds * len(routes) + 3
            async with AsyncExitStack() as profiles:
                for hub in hubs:
                    name = f"hub-auth-{hub.auth}-{downstream}-{driver}"
                    await profiles.enter_async_context(py_spy(py_spy_exe, profile_dir, hub.pid, name, seconds))
                report.measurements.append(
                    await throughput(driver, routes, options.concurrency, options.seconds, options.rounds)
                )
        if wrk is not None:
            report.measurements.extend(await measure_wrk(wrk, downstream, routes, options, scripts))
    return report


def _py_spy_exe(out_dir: Path | None) -> str | None:
    if out_dir is None:
        return None
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(exe).exists():
        raise BenchError("--py-spy needs py-spy (.venv/bin/pip install py-spy)")
    out_dir.mkdir(parents=True, exist_ok=True)
    return exe


def write_config(
    directory: Path, hub_port: int, http_port: int, options: Options, auth: bool, extra: dict[str, Any]
) -> Path:
    """The hub's config.toml (SQLite in `directory`, `extra` merged over it) and its two connector files."""
    connectors = directory / "connectors"
    connectors.mkdir()
    (connectors / f"{HTTP_CONNECTOR}.toml").write_text(
        f'id = "{HTTP_CONNECTOR}"\ntransport = "http"\nprotocol = "{options.era}"\ntrust = "auto"\n'
        f'url = "http://127.0.0.1:{http_port}/mcp"\nmax_concurrent_calls = 256\n'
    )
    (connectors / f"{STDIO_CONNECTOR}.toml").write_text(
        f'id = "{STDIO_CONNECTOR}"\ntransport = "stdio"\nprotocol = "{options.era}"\ntrust = "auto"\n'
        f"command = {json.dumps(PYTHON)}\nmax_concurrent_calls = 256\n"
        f'args = [{json.dumps(str(ECHO_SERVER))}, "--extra-tools", "{options.extra_tools}"]\n'
    )
    room = {"rate": 1_000_000.0, "burst": 1_000_000}
    config: dict[str, Any] = {
        "hub": {"listen_host": "127.0.0.1", "listen_port": hub_port},
        "database": {"url": f"sqlite+aiosqlite:///{directory / 'hub.db'}"},
        "timeouts": {"connect_seconds": 20, "call_seconds": 30},
        "auth": {"access_token_ttl_seconds": 3600} if auth else {"enabled": False},
        # The limits are checked on every call as in production, with room for the benchmark's load (and its
        # echo, the same call again and again, is not a loop to stop).
        "limits": {
            "per_agent": room,
            "per_agent_connector": room,
            "per_agent_tool": room,
            "loops": [{"max_repeats": 1_000_000, "window_seconds": 1}],
        },
    }
    path = directory / "config.toml"
    path.write_text(toml_text(merged(config, extra)))
    return path


def wait_for_echo(target: Target, process: subprocess.Popen[bytes], log_file: Path) -> None:
    """Poll the HTTP downstream with a real call until it answers (bounded)."""
    assert target.url is not None
    body = json.dumps(request_body(target.tool, 1))
    with httpx2.Client(timeout=2.0, headers=request_headers(target.tool)) as client:
        for _ in range(round(READY_TIMEOUT_SECONDS / 0.1)):
            if process.poll() is not None:
                raise BenchError(f"the echo server exited ({process.returncode}):\n{tail(log_file)}")
            try:
                response = client.post(target.url, content=body)
            except httpx2.TransportError:
                time.sleep(0.1)
                continue
            check_echo(response.json(), 1)
            return
    raise BenchError(f"the echo server did not answer within {READY_TIMEOUT_SECONDS:g} s:\n{tail(log_file)}")


def start_hub(stack: ExitStack, options: Options, auth: str, directory: Path, http_port: int) -> RunningHub:
    """Configure, migrate and start one hub (auth `on` or `off`) in `directory`; ready when it returns."""
    directory.mkdir()
    hub_port = free_port()
    config = write_config(directory, hub_port, http_port, options, auth == "on", options.extra)
    options_after = ["--config", str(config), "--log-level", "warning"]
    serve_options = ["--config", str(config), "--log-level", options.hub_log_level]
    hub_command("migrate", *options_after)
    token: str | None = None
    if auth == "on":
        hub_command("agents", "create", "bench", "--grant", "tool:*", *options_after)
        token = hub_command("token", "bench", *options_after).strip()
    hub_log = directory / "hub.log"
    process = stack.enter_context(child([PYTHON, "-m", "mcp_hub", "serve", *serve_options], hub_log))
    base_url = f"http://127.0.0.1:{hub_port}"
    health = wait_for_hub(base_url, process, hub_log, {HTTP_CONNECTOR, STDIO_CONNECTOR})
    eras = {name: c.get("era") for name, c in health["connectors"].items()}
    log(f"hub with auth {auth} ready (pid {process.pid}); downstream eras: {eras}")
    return RunningHub(auth, process.pid, f"{base_url}/mcp", token, child_running(process.pid, ECHO_SERVER))


def run(options: Options) -> Report:
    """Start the echo server and one hub per auth mode as their own processes, measure, stop everything."""
    with tempfile.TemporaryDirectory(prefix="mcp-hub-bench-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        http_port = free_port()
        directs = {
            "http": Target("http direct", "echo", f"http://127.0.0.1:{http_port}/mcp"),
            "stdio": Target("stdio direct", "echo"),
        }
        echo_log = directory / "echo.log"
        echo_command = [PYTHON, str(ECHO_SERVER), "--http", str(http_port), "--extra-tools", str(options.extra_tools)]
        echo_process = stack.enter_context(child(echo_command, echo_log))
        wait_for_echo(directs["http"], echo_process, echo_log)
        hubs = [
            start_hub(stack, options, auth, directory / f"hub-auth-{auth}", http_port) for auth in options.auth_modes
        ]
        busy_before = wait_for_quiet(options.wait_quiet)
        # The load generator's full collections would pause both paths alike and blur the p99: what it holds so
        # far is frozen out of its collector's sight, as the hub does after its start.
        gc.collect()
        gc.freeze()
        report = anyio.run(
            measure, options, directs, hubs, echo_process.pid, directory, backend_options={"use_uvloop": HAS_UVLOOP}
        )
        report.busy_before = busy_before
        report.loops["echo (http)"] = event_loop_of(echo_process.pid)
        for hub in hubs:
            report.loops[f"hub auth {hub.auth}"] = event_loop_of(hub.pid)
            report.loops[f"echo (stdio, child of hub auth {hub.auth})"] = event_loop_of(hub.stdio_echo_pid)
        hub_loops = {loop for name, loop in report.loops.items() if name.startswith("hub")}
        echo_loops = {loop.split("+")[0] for name, loop in report.loops.items() if name.startswith("echo")}
        if {loop.split("+")[0] for loop in hub_loops} != echo_loops:
            report.notes.append(f"the hubs ({hub_loops}) and the echo servers ({echo_loops}) run different loops")
    return report


# --- output ----------------------------------------------------------------------------------------------


def document(report: Report, options: Options) -> dict[str, Any]:
    """Every figure of the run, for `--json` and `bench/chart.py`."""
    return {
        "benchmark": "overhead",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_json(report.busy_before),
        "event_loops": report.loops,
        "options": {
            "calls": options.calls,
            "latency_rounds": options.latency_rounds,
            "rounds": options.rounds,
            "seconds": options.seconds,
            "concurrency": options.concurrency,
            "drivers": options.drivers,
            "auth": options.auth_modes,
            "era": options.era,
            "extra_tools": options.extra_tools,
            "quick": options.quick,
            "extra_config": options.extra,
        },
        "targets": {"added_p50_ms": TARGET_ADDED_P50_MS, "throughput_ratio": TARGET_THROUGHPUT_RATIO},
        "rows": [row for measurement in report.measurements for row in measurement.rows()],
        "notes": report.notes,
    }


def _spread(row: dict[str, Any], name: str) -> Spread:
    rounds: list[float | None] = row["figures"][name]["rounds"]
    return Spread.of([float("nan") if value is None else value for value in rounds])


def render(doc: dict[str, Any]) -> str:
    machine, options = doc["machine"], doc["options"]
    busy = machine["busy_before"]
    lines = [
        f"machine: {machine['cpus']} CPUs, {'?' if busy is None else f'{busy:.0%}'} busy with other work before "
        f"the run, load average now {' '.join(f'{v:.2f}' for v in machine['load_average'])}; "
        f"Python {machine['python']}",
        "event loops: " + "; ".join(f"{name}: {loop}" for name, loop in doc["event_loops"].items()),
        f"hub -> downstream era {options['era']}; catalog {2 * options['extra_tools'] + 4} tools; "
        f"auth {' and '.join(options['auth'])} (on: bearer token, tool:* grant)",
        "figures: median of the rounds [min-max over rounds]",
        "",
        f"Concurrency 1, ms; {options['calls']} calls per route in {options['latency_rounds']} alternating rounds",
        f"{'down':<6} {'driver':<6} {'auth':<4} {'direct p50':>18} {'hub p50':>18} {'added p50':>18} "
        f"{'added p99':>20} {'hub cpu/call':>18} {'echo cpu d/h':>12} {'gen cpu d/h':>12}",
    ]
    rows: list[dict[str, Any]] = doc["rows"]
    for row in (r for r in rows if r["kind"] == "latency"):
        echo_direct, echo_hub = _spread(row, "echo_cpu_ms_per_call_direct"), _spread(row, "echo_cpu_ms_per_call_hub")
        echo = "/".join(f"{s.median:.2f}" if s.median == s.median else "-" for s in (echo_direct, echo_hub))
        gen_direct, gen_hub = _spread(row, "gen_cpu_ms_per_call_direct"), _spread(row, "gen_cpu_ms_per_call_hub")
        gen = "/".join(f"{s.median:.2f}" if s.median == s.median else "-" for s in (gen_direct, gen_hub))
        lines.append(
            f"{row['downstream']:<6} {row['driver']:<6} {row['auth']:<4} {_spread(row, 'direct_p50_ms').show():>18} "
            f"{_spread(row, 'hub_p50_ms').show():>18} {_spread(row, 'added_p50_ms').show():>18} "
            f"{_spread(row, 'added_p99_ms').show():>20} {_spread(row, 'hub_cpu_ms_per_call').show():>18} {echo:>12} "
            f"{gen:>12}"
        )
    lines += [
        "",
        f"Throughput at {options['concurrency']} concurrent clients, calls/s; {options['rounds']} alternating "
        f"rounds of {options['seconds']:g} s per route",
        f"{'down':<6} {'driver':<6} {'auth':<4} {'direct':>18} {'hub':>18} {'hub/direct':>18} {'hub cpu/call':>18}",
    ]
    for row in (r for r in rows if r["kind"] == "throughput"):
        lines.append(
            f"{row['downstream']:<6} {row['driver']:<6} {row['auth']:<4} "
            f"{_spread(row, 'direct_rps').show(digits=0):>18} {_spread(row, 'hub_rps').show(digits=0):>18} "
            f"{_spread(row, 'ratio').show(percent=True):>18} {_spread(row, 'hub_cpu_ms_per_call').show():>18}"
        )
    lines += ["", *verdict(rows)]
    lines.extend(f"note: {note}" for note in doc["notes"])
    return "\n".join(lines)


def verdict(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The targets of issue 12 (they apply with auth on; auth off is shown for comparison), on the medians."""
    lines = [
        f"Targets (auth on, medians): added p50 <= {TARGET_ADDED_P50_MS:g} ms at concurrency 1; "
        f"hub/direct >= {TARGET_THROUGHPUT_RATIO:.0%} at 20 clients"
    ]
    for row in rows:
        if row["kind"] == "latency":
            value, figure = _spread(row, "added_p50_ms").median, "added p50"
            ok, shown = value <= TARGET_ADDED_P50_MS, f"{value:6.2f} ms"
        else:
            value, figure = _spread(row, "ratio").median, "throughput"
            ok, shown = value >= TARGET_THROUGHPUT_RATIO, f"{value:6.0%}   "
        if value != value:  # NaN: no direct route (wrk cannot reach a stdio server directly)
            continue
        mark = ("PASS" if ok else "FAIL") if row["auth"] == "on" else ("(ok)" if ok else "(miss)")
        lines.append(f"  {figure:<10} {row['downstream']:<6} {row['driver']:<4} auth {row['auth']:<3} {shown} {mark}")
    return lines


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, help="sequential calls per route (default 2000; 150 with --quick)")
    parser.add_argument("--latency-rounds", type=int, help="alternating sequential rounds (default 5; 3 quick)")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients for throughput (default 20)")
    parser.add_argument("--seconds", type=float, help="length of one throughput round (default 5; 1 with --quick)")
    parser.add_argument("--rounds", type=int, help="alternating throughput rounds per route (default 5; 2 quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a minute or two")
    parser.add_argument("--driver", action="append", choices=["raw", "sdk"], help="load generator(s) (default both)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk rows even if wrk is installed")
    parser.add_argument(
        "--auth",
        nargs="?",
        const="on",
        default="both",
        choices=["both", "on", "off"],
        help="hubs to compare: both (default: one hub each, side by side), on, off; bare --auth means on",
    )
    parser.add_argument("--era", default=MODERN, choices=[MODERN, "legacy"], help="the hub's era with the downstreams")
    parser.add_argument(
        "--extra-tools", type=int, default=0, help="inert tools per downstream (a hub catalog of 2N+4 tools)"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="S", help="wait up to S seconds for an idle machine first"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON to FILE")
    parser.add_argument(
        "--extra-config", metavar="TOML|@FILE", help="TOML merged over every hub's configuration (e.g. a fast path)"
    )
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the hubs (collapsed stacks) into DIR")
    parser.add_argument(
        "--hub-log-level", choices=["debug", "info", "warning", "error"], default="warning",
        help="the hubs' log level (default warning; info, the shipped default, logs 2 lines per call)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    quick: bool = args.quick
    calls: int = args.calls if args.calls is not None else (150 if quick else 2000)
    latency_rounds: int = args.latency_rounds if args.latency_rounds is not None else (3 if quick else 5)
    rounds: int = args.rounds if args.rounds is not None else (2 if quick else 5)
    if min(calls, args.concurrency, latency_rounds, rounds) <= 0:
        parser.error("--calls, --concurrency, --latency-rounds and --rounds must be positive")
    seconds: float = args.seconds if args.seconds is not None else (1.0 if quick else 5.0)
    if seconds <= 0:
        parser.error("--seconds must be positive")
    try:
        extra = extra_config(args.extra_config)
    except (BenchError, OSError) as exc:
        parser.error(str(exc))
    return Options(
        calls=calls,
        concurrency=args.concurrency,
        seconds=seconds,
        rounds=rounds,
        latency_rounds=latency_rounds,
        warmup=10 if quick else 100,
        drivers=args.driver or ["raw", "sdk"],
        use_wrk=not args.no_wrk,
        era=args.era,
        py_spy_dir=args.py_spy,
        quick=quick,
        auth_modes=list(AUTH_MODES) if args.auth == "both" else [args.auth],
        extra_tools=args.extra_tools,
        wait_quiet=args.wait_quiet,
        json_path=args.json,
        extra=extra,
        hub_log_level=args.hub_log_level,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.perf_counter()
    try:
        report = run(options)
    except BenchError as exc:
        print(f"overhead: {exc}", file=sys.stderr)
        return 1
    doc = document(report, options)
    print(render(doc))
    if options.json_path is not None:
        write_json(options.json_path, doc)
        log(f"figures written to {options.json_path}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
