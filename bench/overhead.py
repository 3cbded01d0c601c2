"""What the hub adds to a trivial `tools/call`: direct to a downstream vs through `mcp-hub serve`.

    .venv/bin/python bench/overhead.py [--calls N] [--concurrency 20] [--quick]
        [--wait-quiet SECONDS] [--extra-tools N] [--driver raw|sdk] [--no-wrk] [--py-spy DIR]

Two downstreams (`bench/echo_server.py`, one `echo` tool): one served over Streamable HTTP by its own
process, one the hub spawns over stdio ("direct" for stdio spawns the same server from the load
generator). The hub runs as its own process (`mcp-hub migrate`, then `mcp-hub serve`), with both
connectors pinned to the 2026-07-28 era, and is ready once `/healthz` shows both connectors "ready".

Load generators, all speaking 2026-07-28:
- `raw`: JSON-RPC posted with one keep-alive `httpx2.AsyncClient` per worker, the era's headers and the
  `_meta` envelope the SDK client stamps (for the direct stdio path: the same JSON lines over the pipes).
- `sdk`: `mcp.Client(url, mode="2026-07-28")` per worker (one shared stdio client for direct stdio),
  protocol-correct but CPU-heavy: on a 2-core machine its own cost shows in every figure.
- `wrk` (if installed): a C load generator with a Lua script; HTTP targets only.

Sequential latency (concurrency 1) interleaves direct and hub blocks so that drift on a shared machine
hits both paths alike; throughput runs `--concurrency` workers in alternating timed rounds. Every
response is checked (the echoed text), and any failure aborts the run. Besides latency and calls/s, the
report shows the hub process's CPU time per call (from /proc), which a busy shared machine disturbs far
less than wall-clock figures. `--py-spy DIR` samples the hub during the raw throughput runs; read the
result with `bench/profile_summary.py`. See docs/benchmarks.md for results and analysis.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types as types
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

REPO = Path(__file__).resolve().parent.parent
ECHO_SERVER = Path(__file__).resolve().parent / "echo_server.py"
PYTHON = sys.executable
MODERN = "2026-07-28"
HTTP_CONNECTOR = "http-echo"
STDIO_CONNECTOR = "stdio-echo"
ECHO_TEXT = "hi"
TARGET_ADDED_P50_MS = 1.0
TARGET_THROUGHPUT_RATIO = 0.60
READY_TIMEOUT_SECONDS = 60.0
CALL_TIMEOUT_SECONDS = 30.0
MAX_LINE_BYTES = 1 << 20

Call = Callable[[], Awaitable[None]]


class BenchError(RuntimeError):
    """A setup step or a call failed: the numbers would be meaningless."""


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

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc; 0.0 where unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all CPUs busy over `seconds` (from /proc/stat): other work on a shared machine."""

    def sample() -> tuple[int, int]:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError):
            return 0, 0
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        return sum(values) - idle, sum(values)

    busy0, total0 = sample()
    time.sleep(seconds)
    busy1, total1 = sample()
    return (busy1 - busy0) / (total1 - total0) if total1 > total0 else float("nan")


def wait_for_quiet(max_seconds: float, threshold: float = 0.25) -> float:
    """Wait (at most `max_seconds`) until the machine is less than `threshold` busy; the last reading."""
    busy = machine_busy()
    for _ in range(max(0, round(max_seconds / 2))):
        if busy < threshold:
            break
        log(f"machine {busy:.0%} busy with other work: waiting")
        time.sleep(1.0)
        busy = machine_busy()
    return busy


@dataclass
class CpuMeter:
    """CPU seconds spent by the hub process (not its stdio child) while the hub path is driven."""

    pid: int | None = None
    spent: float = 0.0
    calls: int = 0

    def reading(self) -> float:
        if self.pid is None:
            return 0.0
        return cpu_seconds(self.pid)

    def per_call_ms(self) -> float:
        return self.spent / self.calls * 1000 if self.calls and self.pid is not None else float("nan")


# --- measurements ----------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of unsorted `samples` (q in 0..100)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LatencyRow:
    downstream: str
    driver: str
    direct_ms: list[float] = field(default_factory=list[float])
    hub_ms: list[float] = field(default_factory=list[float])
    hub_cpu: CpuMeter = field(default_factory=CpuMeter)
    client_cpu_direct_s: float = 0.0
    client_cpu_hub_s: float = 0.0

    def summary(self) -> dict[str, float]:
        d50, d99 = percentile(self.direct_ms, 50), percentile(self.direct_ms, 99)
        h50, h99 = percentile(self.hub_ms, 50), percentile(self.hub_ms, 99)
        return {
            "direct_p50": d50,
            "direct_p99": d99,
            "hub_p50": h50,
            "hub_p99": h99,
            "added_p50": h50 - d50,
            "added_p99": h99 - d99,
            "client_cpu_direct": self.client_cpu_direct_s / max(1, len(self.direct_ms)) * 1000,
            "client_cpu_hub": self.client_cpu_hub_s / max(1, len(self.hub_ms)) * 1000,
        }


@dataclass
class ThroughputRow:
    downstream: str
    driver: str
    direct_rps: float
    hub_rps: float
    direct_p50_ms: float = float("nan")
    hub_p50_ms: float = float("nan")
    hub_cpu: CpuMeter = field(default_factory=CpuMeter)

    @property
    def ratio(self) -> float:
        return self.hub_rps / self.direct_rps if self.direct_rps else float("nan")


async def _timed(call: Call, sink: list[float]) -> None:
    started = time.perf_counter()
    await call()
    sink.append((time.perf_counter() - started) * 1000)


async def sequential(
    driver: str, direct: Target, hub: Target, calls: int, rounds: int, warmup: int, hub_pid: int | None
) -> LatencyRow:
    """`calls` sequential calls per path, in `rounds` interleaved blocks."""
    row = LatencyRow(downstream=direct.label.split()[0], driver=driver, hub_cpu=CpuMeter(hub_pid))
    async with callers_for(driver, direct, 1) as direct_callers, callers_for(driver, hub, 1) as hub_callers:
        direct_call: Call = direct_callers[0]
        hub_call: Call = hub_callers[0]
        for _ in range(warmup):
            await direct_call()
            await hub_call()
        per_round = max(1, calls // rounds)
        for _ in range(rounds):
            client_before = time.process_time()
            for _ in range(per_round):
                await _timed(direct_call, row.direct_ms)
            hub_before, client_middle = row.hub_cpu.reading(), time.process_time()
            for _ in range(per_round):
                await _timed(hub_call, row.hub_ms)
            row.hub_cpu.spent += row.hub_cpu.reading() - hub_before
            row.hub_cpu.calls += per_round
            row.client_cpu_direct_s += client_middle - client_before
            row.client_cpu_hub_s += time.process_time() - client_middle
    return row


async def _load_round(callers: Sequence[Call], seconds: float, latencies: list[float]) -> tuple[int, float]:
    """Run every caller in a loop for `seconds`; (completed calls, elapsed seconds)."""
    completed = 0
    start = anyio.Event()
    started = deadline = 0.0

    async def worker(call: Call) -> None:
        nonlocal completed
        await start.wait()
        while time.perf_counter() < deadline:
            await _timed(call, latencies)
            completed += 1

    async with anyio.create_task_group() as tasks:
        for call in callers:
            tasks.start_soon(worker, call)
        await anyio.sleep(0.05)
        started = time.perf_counter()
        deadline = started + seconds
        start.set()
    return completed, time.perf_counter() - started


async def throughput(
    driver: str, direct: Target, hub: Target, concurrency: int, seconds: float, rounds: int, hub_pid: int | None
) -> ThroughputRow:
    """Alternating timed rounds at `concurrency` workers; calls/s over all rounds of each path."""
    hub_cpu = CpuMeter(hub_pid)
    totals = {direct.label: [0, 0.0], hub.label: [0, 0.0]}
    latencies: dict[str, list[float]] = {direct.label: [], hub.label: []}
    async with (
        callers_for(driver, direct, concurrency) as direct_callers,
        callers_for(driver, hub, concurrency) as hub_callers,
    ):
        await _load_round(direct_callers, min(1.0, seconds / 3), [])  # warm-up: connections, caches
        await _load_round(hub_callers, min(1.0, seconds / 3), [])
        for _ in range(rounds):
            for target, callers in ((direct, direct_callers), (hub, hub_callers)):
                before = hub_cpu.reading()
                completed, elapsed = await _load_round(callers, seconds, latencies[target.label])
                totals[target.label][0] += completed
                totals[target.label][1] += elapsed
                if target is hub:
                    hub_cpu.spent += hub_cpu.reading() - before
                    hub_cpu.calls += completed
    direct_rps = totals[direct.label][0] / totals[direct.label][1]
    hub_rps = totals[hub.label][0] / totals[hub.label][1]
    return ThroughputRow(
        downstream=direct.label.split()[0],
        driver=driver,
        direct_rps=direct_rps,
        hub_rps=hub_rps,
        direct_p50_ms=percentile(latencies[direct.label], 50),
        hub_p50_ms=percentile(latencies[hub.label], 50),
        hub_cpu=hub_cpu,
    )


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


@dataclass(frozen=True)
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    hub_cpu_ms: float = float("nan")


def run_wrk(
    wrk: str, target: Target, connections: int, seconds: float, scripts: Path, hub_pid: int | None = None
) -> WrkResult:
    assert target.url is not None
    script = scripts / f"{target.tool}.lua"
    headers = "\n".join(
        f'wrk.headers["{name}"] = "{value}"' for name, value in request_headers(target.tool, target.token).items()
    )
    body = json.dumps(request_body(target.tool, 1), separators=(",", ":"))
    script.write_text(_WRK_SCRIPT.format(body=body, headers=headers, text=ECHO_TEXT))
    threads = min(connections, 2)
    command = [wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s", str(script), target.url]
    meter = CpuMeter(hub_pid)
    before = meter.reading()
    completed = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)
    meter.spent = meter.reading() - before
    output = completed.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    bad = re.search(r"BAD_RESPONSES (\d+)", output)
    p50, p99 = re.search(r"P50_US (\d+)", output), re.search(r"P99_US (\d+)", output)
    if completed.returncode != 0 or rps is None or bad is None or p50 is None or p99 is None:
        raise BenchError(f"wrk failed on {target.label}: {output}{completed.stderr}")
    errors = re.search(r"Socket errors: .*|Non-2xx or 3xx responses: \d+", output)
    if int(bad.group(1)) or errors:
        raise BenchError(f"wrk saw {bad.group(1)} bad responses on {target.label}: {output}")
    requests = re.search(r"(\d+) requests in", output)
    meter.calls = int(requests.group(1)) if requests else 0
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=int(p50.group(1)) / 1000,
        p99_ms=int(p99.group(1)) / 1000,
        hub_cpu_ms=meter.per_call_ms(),
    )


# --- processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def child(command: Sequence[str], log: Path) -> Generator[subprocess.Popen[bytes]]:
    """A subprocess logging to `log`, terminated (then killed) on exit."""
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=5)


def write_config(
    directory: Path,
    hub_port: int,
    http_port: int,
    era: str,
    extra_tools: int = 0,
    auth: bool = False,
    fast_path: bool = True,
) -> Path:
    """The hub's config.toml (SQLite in `directory`) and its two connector files."""
    connectors = directory / "connectors"
    connectors.mkdir()
    (connectors / f"{HTTP_CONNECTOR}.toml").write_text(
        f'id = "{HTTP_CONNECTOR}"\ntransport = "http"\nprotocol = "{era}"\ntrust = "auto"\n'
        f'url = "http://127.0.0.1:{http_port}/mcp"\nmax_concurrent_calls = 256\n'
    )
    (connectors / f"{STDIO_CONNECTOR}.toml").write_text(
        f'id = "{STDIO_CONNECTOR}"\ntransport = "stdio"\nprotocol = "{era}"\ntrust = "auto"\n'
        f"command = {json.dumps(PYTHON)}\nmax_concurrent_calls = 256\n"
        f'args = [{json.dumps(str(ECHO_SERVER))}, "--extra-tools", "{extra_tools}"]\n'
    )
    config = directory / "config.toml"
    config.write_text(
        f'[hub]\nlisten_host = "127.0.0.1"\nlisten_port = {hub_port}\nfast_path = {str(fast_path).lower()}\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{directory / "hub.db"}"\n'
        "[timeouts]\nconnect_seconds = 20\ncall_seconds = 30\n"
        + ("[auth]\naccess_token_ttl_seconds = 3600\n" if auth else "[auth]\nenabled = false\n")
        # The limits are checked on every call as in production, with room for the benchmark's load (and its
        # echo, the same call again and again, is not a loop to stop).
        + "[limits]\nper_agent = { rate = 1000000.0, burst = 1000000 }\n"
        "per_agent_connector = { rate = 1000000.0, burst = 1000000 }\n"
        "per_agent_tool = { rate = 1000000.0, burst = 1000000 }\n"
        "[[limits.loops]]\nmax_repeats = 1000000\nwindow_seconds = 1\n"
    )
    return config


def _tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def wait_for_echo(target: Target, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the HTTP downstream with a real call until it answers (bounded)."""
    assert target.url is not None
    body = json.dumps(request_body(target.tool, 1))
    with httpx2.Client(timeout=2.0, headers=request_headers(target.tool)) as client:
        for _ in range(round(READY_TIMEOUT_SECONDS / 0.1)):
            if process.poll() is not None:
                raise BenchError(f"the echo server exited ({process.returncode}):\n{_tail(log)}")
            try:
                response = client.post(target.url, content=body)
            except httpx2.TransportError:
                time.sleep(0.1)
                continue
            check_echo(response.json(), 1)
            return
    raise BenchError(f"the echo server did not answer within {READY_TIMEOUT_SECONDS:g} s:\n{_tail(log)}")


def wait_for_hub(base_url: str, process: subprocess.Popen[bytes], log: Path) -> dict[str, Any]:
    """Poll `/healthz` until every connector is "ready" (bounded)."""
    health: dict[str, Any] = {}
    with httpx2.Client(timeout=2.0) as client:
        for _ in range(round(READY_TIMEOUT_SECONDS / 0.1)):
            if process.poll() is not None:
                raise BenchError(f"the hub exited ({process.returncode}):\n{_tail(log)}")
            try:
                health = client.get(f"{base_url}/healthz").json()
            except (httpx2.TransportError, ValueError):
                health = {}
            connectors: dict[str, Any] = health.get("connectors", {})
            if set(connectors) == {HTTP_CONNECTOR, STDIO_CONNECTOR} and all(
                c.get("state") == "ready" for c in connectors.values()
            ):
                return health
            time.sleep(0.1)
    raise BenchError(f"the hub was not ready within {READY_TIMEOUT_SECONDS:g} s: {health}\n{_tail(log)}")


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
    extra_tools: int = 0
    wait_quiet: float = 0.0
    auth: bool = False
    fast_path: bool = True


@dataclass
class Report:
    latency: list[LatencyRow] = field(default_factory=list[LatencyRow])
    throughput: list[ThroughputRow] = field(default_factory=list[ThroughputRow])
    wrk_latency: dict[str, WrkResult] = field(default_factory=dict[str, WrkResult])
    wrk_load: dict[str, WrkResult] = field(default_factory=dict[str, WrkResult])
    notes: list[str] = field(default_factory=list[str])
    busy_before: float = float("nan")


def log(message: str, out: TextIO = sys.stderr) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=out, flush=True)


def build_targets(http_port: int, hub_port: int, token: str | None = None) -> dict[str, Target]:
    hub_url = f"http://127.0.0.1:{hub_port}/mcp"
    return {
        "http direct": Target("http direct", "echo", f"http://127.0.0.1:{http_port}/mcp"),
        "http hub": Target("http hub", f"{HTTP_CONNECTOR}__echo", hub_url, token),
        "stdio direct": Target("stdio direct", "echo"),
        "stdio hub": Target("stdio hub", f"{STDIO_CONNECTOR}__echo", hub_url, token),
    }


def hub_command(*args: str) -> str:
    """Run `mcp-hub ARGS` to completion; its standard output."""
    done = subprocess.run(
        [PYTHON, "-m", "mcp_hub", *args], capture_output=True, text=True, timeout=120, check=False, cwd=REPO
    )
    if done.returncode != 0:
        raise BenchError(f"mcp-hub {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


async def measure(options: Options, targets: dict[str, Target], hub_pid: int, py_spy_exe: str | None) -> Report:
    """The SDK and raw-httpx2 measurements, against a hub and downstream already running."""
    report = Report()
    # A raw request must succeed through the hub, on both connectors, before anything is timed.
    for label in ("http hub", "stdio hub"):
        async with raw_http_callers(targets[label], 1) as callers:
            await callers[0]()
    for downstream in ("http", "stdio"):
        direct, hub = targets[f"{downstream} direct"], targets[f"{downstream} hub"]
        for driver in options.drivers:
            log(f"sequential: {downstream}, {driver}, {options.calls} calls per path")
            report.latency.append(
                await sequential(driver, direct, hub, options.calls, options.latency_rounds, options.warmup, hub_pid)
            )
            log(
                f"throughput: {downstream}, {driver}, {options.concurrency} clients, "
                f"{options.rounds} x {options.seconds:g} s per path"
            )
            profile_dir = options.py_spy_dir if driver == "raw" else None
            seconds = options.rounds * options.seconds * 2 + 3
            async with py_spy(py_spy_exe, profile_dir, hub_pid, f"hub-{downstream}-{driver}", seconds):
                report.throughput.append(
                    await throughput(driver, direct, hub, options.concurrency, options.seconds, options.rounds, hub_pid)
                )
    return report


def measure_wrk(report: Report, options: Options, targets: dict[str, Target], scripts: Path, hub_pid: int) -> None:
    wrk = shutil.which("wrk")
    if wrk is None:
        report.notes.append("wrk is not installed (apt-get install wrk): its rows are skipped")
        return
    for label in ("http direct", "http hub", "stdio hub"):
        log(f"wrk: {label}")
        pid = hub_pid if label.endswith("hub") else None
        report.wrk_latency[label] = run_wrk(wrk, targets[label], 1, options.seconds, scripts, pid)
        report.wrk_load[label] = run_wrk(wrk, targets[label], options.concurrency, options.seconds, scripts, pid)


def run(options: Options) -> Report:
    """Start the echo server and the hub as their own processes, measure, stop everything."""
    py_spy_exe: str | None = None
    if options.py_spy_dir is not None:
        py_spy_exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
        if not Path(py_spy_exe).exists():
            raise BenchError("--py-spy needs py-spy (.venv/bin/pip install py-spy)")
        options.py_spy_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcp-hub-bench-") as tmp:
        directory = Path(tmp)
        http_port, hub_port = free_port(), free_port()
        config = write_config(
            directory, hub_port, http_port, options.era, options.extra_tools, options.auth, options.fast_path
        )
        options_after = ["--config", str(config), "--log-level", "warning"]
        hub_command("migrate", *options_after)
        token: str | None = None
        if options.auth:
            hub_command("agents", "create", "bench", "--grant", "tool:*", *options_after)
            token = hub_command("token", "bench", *options_after).strip()
        targets = build_targets(http_port, hub_port, token)
        echo_log, hub_log = directory / "echo.log", directory / "hub.log"
        with (
            child(
                [PYTHON, str(ECHO_SERVER), "--http", str(http_port), "--extra-tools", str(options.extra_tools)],
                echo_log,
            ) as echo_process,
            child([PYTHON, "-m", "mcp_hub", "serve", *options_after], hub_log) as hub_process,
        ):
            wait_for_echo(targets["http direct"], echo_process, echo_log)
            health = wait_for_hub(f"http://127.0.0.1:{hub_port}", hub_process, hub_log)
            eras = {name: c.get("era") for name, c in health["connectors"].items()}
            log(f"hub ready (pid {hub_process.pid}); downstream eras: {eras}")
            busy_before = wait_for_quiet(options.wait_quiet)
            report = anyio.run(measure, options, targets, hub_process.pid, py_spy_exe)
            report.busy_before = busy_before
            if options.use_wrk:
                measure_wrk(report, options, targets, directory, hub_process.pid)
            if hub_process.poll() is not None:
                raise BenchError(f"the hub died during the run:\n{_tail(hub_log)}")
    return report


# --- output ----------------------------------------------------------------------------------------------


def render(report: Report, options: Options) -> str:
    lines: list[str] = []
    load = os.getloadavg()
    fast = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    lines.append(
        f"machine: {os.cpu_count()} CPUs, {report.busy_before:.0%} busy with other work before the run, "
        f"load average now {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    lines.append(
        f"Python {sys.version.split()[0]}; uvicorn extras: {', '.join(fast) or 'none (asyncio loop, h11)'}; "
        f"hub -> downstream era {options.era}; catalog {2 * options.extra_tools + 2} tools; "
        f"auth {'on (bearer token, tool:* grant)' if options.auth else 'off'}"
    )
    lines.append("")
    lines.append(f"Sequential tools/call (concurrency 1), ms; {options.calls} calls per path")
    lines.append("(hub cpu: the hub process's CPU per call; client cpu: the load generator's, direct/hub path)")
    header = f"{'downstream':<10} {'driver':<6} {'direct p50':>10} {'direct p99':>10} {'hub p50':>9} {'hub p99':>9}"
    lines.append(f"{header} {'added p50':>10} {'added p99':>10} {'hub cpu':>8} {'client cpu':>12}")
    for row in report.latency:
        s = row.summary()
        lines.append(
            f"{row.downstream:<10} {row.driver:<6} {s['direct_p50']:>10.2f} {s['direct_p99']:>10.2f} "
            f"{s['hub_p50']:>9.2f} {s['hub_p99']:>9.2f} {s['added_p50']:>10.2f} {s['added_p99']:>10.2f} "
            f"{row.hub_cpu.per_call_ms():>8.2f} {s['client_cpu_direct']:>5.2f}/{s['client_cpu_hub']:<5.2f}"
        )
    for label in ("http", "stdio"):
        direct = report.wrk_latency.get(f"{label} direct")
        hub = report.wrk_latency.get(f"{label} hub")
        if hub is None:
            continue
        d50 = f"{direct.p50_ms:>10.2f}" if direct else f"{'-':>10}"
        d99 = f"{direct.p99_ms:>10.2f}" if direct else f"{'-':>10}"
        a50 = f"{hub.p50_ms - direct.p50_ms:>10.2f}" if direct else f"{'-':>10}"
        a99 = f"{hub.p99_ms - direct.p99_ms:>10.2f}" if direct else f"{'-':>10}"
        lines.append(
            f"{label:<10} {'wrk':<6} {d50} {d99} {hub.p50_ms:>9.2f} {hub.p99_ms:>9.2f} {a50} {a99} "
            f"{hub.hub_cpu_ms:>8.2f}"
        )
    lines.append("")
    lines.append(f"Throughput at {options.concurrency} concurrent clients, calls/s (p50 latency under load, ms)")
    lines.append(f"{'downstream':<10} {'driver':<6} {'direct':>16} {'hub':>16} {'hub/direct':>10} {'hub cpu':>8}")
    for row in report.throughput:
        lines.append(
            f"{row.downstream:<10} {row.driver:<6} {row.direct_rps:>8.0f} ({row.direct_p50_ms:>5.1f}) "
            f"{row.hub_rps:>8.0f} ({row.hub_p50_ms:>5.1f}) {row.ratio:>10.0%} {row.hub_cpu.per_call_ms():>8.2f}"
        )
    for label in ("http", "stdio"):
        direct = report.wrk_load.get(f"{label} direct")
        hub = report.wrk_load.get(f"{label} hub")
        if hub is None:
            continue
        shown = f"{direct.rps:>8.0f} ({direct.p50_ms:>5.1f})" if direct else f"{'-':>16}"
        ratio = f"{hub.rps / direct.rps:>10.0%}" if direct else f"{'-':>10}"
        lines.append(
            f"{label:<10} {'wrk':<6} {shown} {hub.rps:>8.0f} ({hub.p50_ms:>5.1f}) {ratio} {hub.hub_cpu_ms:>8.2f}"
        )
    lines.append("")
    lines.extend(verdict(report))
    lines.extend(f"note: {note}" for note in report.notes)
    return "\n".join(lines)


def verdict(report: Report) -> list[str]:
    """Targets (docs/benchmarks.md): added p50 <= 1 ms at concurrency 1; hub >= 60 % of direct at 20 clients."""
    lines = [
        f"Targets: added p50 <= {TARGET_ADDED_P50_MS:g} ms; throughput hub/direct >= {TARGET_THROUGHPUT_RATIO:.0%}"
    ]

    def mark(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    for row in report.latency:
        added = row.summary()["added_p50"]
        lines.append(
            f"  added p50   {row.downstream:<6} {row.driver:<4} {added:6.2f} ms    {mark(added <= TARGET_ADDED_P50_MS)}"
        )
    direct, hub = report.wrk_latency.get("http direct"), report.wrk_latency.get("http hub")
    if direct and hub:
        added = hub.p50_ms - direct.p50_ms
        lines.append(f"  added p50   {'http':<6} {'wrk':<4} {added:6.2f} ms    {mark(added <= TARGET_ADDED_P50_MS)}")
    for row in report.throughput:
        lines.append(
            f"  throughput  {row.downstream:<6} {row.driver:<4} {row.ratio:6.0%}       "
            f"{mark(row.ratio >= TARGET_THROUGHPUT_RATIO)}"
        )
    direct, hub = report.wrk_load.get("http direct"), report.wrk_load.get("http hub")
    if direct and hub:
        ratio = hub.rps / direct.rps
        ok = mark(ratio >= TARGET_THROUGHPUT_RATIO)
        lines.append(f"  throughput  {'http':<6} {'wrk':<4} {ratio:6.0%}       {ok}")
    return lines


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, help="sequential calls per path (default 2000; 100 with --quick)")
    parser.add_argument("--concurrency", type=int, default=20, help="concurrent clients for throughput (default 20)")
    parser.add_argument("--seconds", type=float, help="length of one throughput round (default 5; 1 with --quick)")
    parser.add_argument("--rounds", type=int, help="alternating throughput rounds per path (default 3; 1 quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    parser.add_argument("--driver", action="append", choices=["raw", "sdk"], help="load generator(s) (default both)")
    parser.add_argument("--no-wrk", action="store_true", help="skip the wrk rows even if wrk is installed")
    parser.add_argument("--era", default=MODERN, choices=[MODERN, "legacy"], help="the hub's era with the downstreams")
    parser.add_argument(
        "--extra-tools", type=int, default=0, help="inert tools per downstream (a hub catalog of 2N+2 tools)"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="S", help="wait up to S seconds for an idle machine first"
    )
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the hub (collapsed stacks) into DIR")
    parser.add_argument("--auth", action="store_true", help="auth on: every hub call carries a bearer token")
    parser.add_argument("--sdk-path", action="store_true", help="[hub] fast_path = false: every call through the SDK")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    calls: int = args.calls if args.calls is not None else (100 if quick else 2000)
    if calls <= 0 or args.concurrency <= 0:
        parser.error("--calls and --concurrency must be positive")
    return Options(
        calls=calls,
        concurrency=args.concurrency,
        seconds=args.seconds if args.seconds is not None else (1.0 if quick else 5.0),
        rounds=args.rounds if args.rounds is not None else (1 if quick else 3),
        latency_rounds=2 if quick else 5,
        warmup=10 if quick else 100,
        drivers=args.driver or ["raw", "sdk"],
        use_wrk=not args.no_wrk,
        era=args.era,
        py_spy_dir=args.py_spy,
        quick=quick,
        extra_tools=args.extra_tools,
        wait_quiet=args.wait_quiet,
        auth=args.auth,
        fast_path=not args.sdk_path,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    started = time.perf_counter()
    try:
        report = run(options)
    except BenchError as exc:
        print(f"overhead: {exc}", file=sys.stderr)
        return 1
    print(render(report, options))
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
