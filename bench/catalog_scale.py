"""Catalog scale (issue 11 §7, issue 12 §3): 100 connectors, 10,000 tools; an agent's `tools/list` (first page and
a full walk) and a `search_tools` query, in-process on the hub's own code paths, or over HTTP through a real hub.

In-process (the default): `Catalog.replace_connector` for each connector's listing, then per request either
`gateway.lists` or `SearchIndex.search` (the meta-tool's ranking and grant filter), for three callers: every tool
(`tool:*`), one connector in ten (`tool:c?0__*`), and a narrow one (five tools) whose first page must walk the
whole catalog to fill. Lists are measured three ways:
- `build`: a page as it is built once per authorization context and catalog snapshot (an empty page cache each
  round: the grant filter, the page and its JSON);
- `json`: `Lists.page_json` from the page cache (what the fast path writes as the JSON-RPC `result`);
- `dict`: `Lists.page` from the page cache (what the SDK path gets, before its own validation and serialisation).

    .venv/bin/python bench/catalog_scale.py [--connectors 100] [--tools 100] [--rounds 200]

Through a real hub (`--hub`): `bench/catalog_server.py` serves every connector's tools from one process over
Streamable HTTP (`/<connector>/mcp`, 2026-07-28), and `mcp-hub serve` runs as its own process with auth on, one
connector file per connector, SQLite, and `[catalog] meta_tools = "add"` (so `search_tools` is offered). Three
agents get tokens (the same three grant sets). Over HTTP with raw 2026-07-28 JSON-RPC (one keep-alive client), it
measures the time to federate (the hub's start until `/healthz` shows every connector ready and a walk sees every
tool), waits for the hub's CPU to go quiet, then per agent: its very first walk (which builds its pages), the
first page and a full walk (p50/p99 over `--rounds`), and `search_tools`; the hub's CPU time per walk (from
/proc, less disturbed by a busy machine than wall-clock time) and its resident memory. Without the fast path the
HTTP figures include the SDK's validation and serialisation of every page; the in-process `json` rows show what
serving the cached bytes costs.

    .venv/bin/python bench/catalog_scale.py --hub [--connectors 100] [--tools 100] [--rounds 30] [--py-spy DIR]

`--py-spy DIR` samples the hub while it federates (`DIR/hub-catalog-federation.txt`) and while each agent is
measured (`DIR/hub-catalog-agentN.txt`); read them with `bench/profile_summary.py`.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import httpx2
import mcp_types as types
import orjson
from catalog_server import connector_name, tool_definitions
from harness import wait_for_hub
from overhead import PYTHON, BenchError, child, cpu_seconds, free_port, hub_command, log, percentile

from mcp_hub.authz.decisions import Access
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.catalog.virtual import SearchIndex
from mcp_hub.config.settings import CatalogSection
from mcp_hub.domain import ConnectorListing
from mcp_hub.gateway.lists import Lists, ListShape, PageCache

CATALOG_SERVER = Path(__file__).resolve().parent / "catalog_server.py"
MODERN = "2026-07-28"
DEFAULTS = CatalogSection()
SEARCH_QUERY = "create invoice customer"
READY_TIMEOUT_SECONDS = 180.0


def listing(connector: str, tools: int) -> ConnectorListing:
    return ConnectorListing(
        tools=tuple(tool_definitions(connector, tools)), capabilities={"tools": {"listChanged": True}}
    )


def callers(connectors: int, tools: int) -> dict[str, tuple[str, ...]]:
    """The three grant sets: every tool, one connector in ten, five tools of the last connector."""
    last = connector_name(connectors - 1)
    five = tuple(f"tool:{last}__{definition['name']}" for definition in tool_definitions(last, tools)[:5])
    return {"tool:*": ("tool:*",), "1 connector in 10": ("tool:c?0__*",), "5 tools": five}


def timed(rounds: int, work: Callable[[], object]) -> tuple[float, float]:
    """p50 and p99 of the CPU time of `work` (in one thread, CPU time is its wall-clock time on an idle machine,
    and far less disturbed by other work on a busy one), in ms."""
    samples: list[float] = []
    for _ in range(rounds):
        started = time.thread_time()
        work()
        samples.append((time.thread_time() - started) * 1000)
    return statistics.median(samples), percentile(samples, 99)


# --- in-process ----------------------------------------------------------------------------------------


class _Settled:
    """Readiness after the start (`Lists` asks it; the catalog here is whole)."""

    async def settled(self) -> bool:
        return True


def walk(lists: Lists, catalog: Catalog, access: Access, *, as_dict: bool = False) -> int:
    """Every page of `tools/list` for one caller, from `lists`; the number of pages."""
    cursor: str | None = None
    pages = 0
    while True:
        page = lists.cached(catalog.tools, "tools", access, cursor)
        if as_dict:
            result = dict(page.result)
            result["tools"] = list(result["tools"])
        pages += 1
        cursor = page.result.get("nextCursor")
        if cursor is None:
            return pages


def in_process(args: argparse.Namespace) -> None:
    catalog = Catalog()
    started = time.perf_counter()
    for connector in range(args.connectors):
        name = connector_name(connector)
        catalog.replace_connector(name, listing(name, args.tools))
    federated_ms = (time.perf_counter() - started) * 1000
    shape = ListShape(page_size=args.page_size, ttl_ms=60_000, page_max_bytes=args.page_max_bytes)
    index = SearchIndex.over(catalog.tools)
    index.search("warm", 1, None)  # the index is built once per catalog snapshot
    readiness: Any = _Settled()
    print(f"{len(catalog.tools)} tools from {args.connectors} connectors; catalog built in {federated_ms:.0f} ms")
    print(f"page size {args.page_size}, at most {args.page_max_bytes} bytes; CPU ms, p50/p99 over {args.rounds} rounds")
    header = f"{'caller':<18} {'build 1st':>11} {'build walk':>11} {'json 1st':>11} {'json walk':>11}"
    print(f"{header} {'dict walk':>11} {'search':>11} {'walk KB':>8}")
    for label, grants in callers(args.connectors, args.tools).items():
        access = Access(grants=grants, token_scopes=None)

        def cold_first(access: Access = access) -> object:
            return Lists(shape, readiness, PageCache()).cached(catalog.tools, "tools", access, None)

        def cold_walk(access: Access = access) -> object:
            return walk(Lists(shape, readiness, PageCache()), catalog, access)

        warm = Lists(shape, readiness)
        walk(warm, catalog, access)
        walk_bytes = warm.cache.bytes

        def warm_first(access: Access = access, warm: Lists = warm) -> object:
            return warm.cached(catalog.tools, "tools", access, None).body

        def warm_walk(access: Access = access, warm: Lists = warm) -> object:
            return walk(warm, catalog, access)

        def warm_dict_walk(access: Access = access, warm: Lists = warm) -> object:
            return walk(warm, catalog, access, as_dict=True)

        def search(access: Access = access) -> object:
            return index.search(SEARCH_QUERY, 20, lambda name: access.allows(name, "tool"))

        figures = [
            timed(args.rounds, work) for work in (cold_first, cold_walk, warm_first, warm_walk, warm_dict_walk, search)
        ]
        shown = " ".join(f"{p50:>5.2f}/{p99:<5.2f}" for p50, p99 in figures)
        print(f"{label:<18} {shown} {walk_bytes / 1024:>8.0f}")


# --- through a real hub ----------------------------------------------------------------------------------


def write_hub_config(directory: Path, hub_port: int, server_port: int, args: argparse.Namespace) -> Path:
    folder = directory / "connectors"
    folder.mkdir()
    for index in range(args.connectors):
        name = connector_name(index)
        (folder / f"{name}.toml").write_text(
            f'id = "{name}"\ntransport = "http"\nprotocol = "{MODERN}"\ntrust = "auto"\n'
            f'url = "http://127.0.0.1:{server_port}/{name}/mcp"\n'
        )
    config = directory / "config.toml"
    config.write_text(
        f'[hub]\nlisten_host = "127.0.0.1"\nlisten_port = {hub_port}\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{directory / "hub.db"}"\n'
        "[timeouts]\nconnect_seconds = 120\ncall_seconds = 30\n"
        "[auth]\naccess_token_ttl_seconds = 3600\n"
        f'[catalog]\npage_size = {args.page_size}\npage_max_bytes = {args.page_max_bytes}\nmeta_tools = "add"\n'
        # Room for the benchmark's repeated searches (the same call again and again is not a loop to stop).
        "[limits]\nper_agent = { rate = 1000000.0, burst = 1000000 }\n"
        "per_agent_connector = { rate = 1000000.0, burst = 1000000 }\n"
        "per_agent_tool = { rate = 1000000.0, burst = 1000000 }\n"
        "[[limits.loops]]\nmax_repeats = 1000000\nwindow_seconds = 1\n"
    )
    return config


class HubClient:
    """Raw 2026-07-28 JSON-RPC to the hub's `/mcp` with one agent's token, over one keep-alive connection.

    aiohttp and orjson, as a client that cares about a 2 MB walk would: with httpx2 and the stdlib's parser the
    client's own work was most of the walk's wall time (the hub's share is its CPU time, reported apart)."""

    def __init__(self, url: str, token: str) -> None:
        self._url = url
        self._headers = {
            "MCP-Protocol-Version": MODERN,
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
        }
        self._client: aiohttp.ClientSession | None = None
        self._ids = iter(range(1, 1 << 62))

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()

    async def request(self, method: str, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1),
                timeout=aiohttp.ClientTimeout(total=60),
                headers=self._headers,
            )
        request_id = next(self._ids)
        meta: dict[str, Any] = {types.PROTOCOL_VERSION_META_KEY: MODERN, types.CLIENT_CAPABILITIES_META_KEY: {}}
        body: dict[str, Any] = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": method,
            "params": {**params, "_meta": meta},
        }
        headers = {"Mcp-Method": method} | ({"Mcp-Name": name} if name is not None else {})
        async with self._client.post(self._url, data=orjson.dumps(body), headers=headers) as response:
            content = await response.read()
            if response.status != 200:
                raise BenchError(f"{method}: HTTP {response.status}: {content[:300]!r}")
        message: dict[str, Any] = orjson.loads(content)
        if message.get("id") != request_id or "result" not in message:
            raise BenchError(f"{method}: unexpected answer {json.dumps(message)[:300]}")
        result: dict[str, Any] = message["result"]
        return result

    async def first_page(self) -> int:
        return len((await self.request("tools/list", {}))["tools"])

    async def walk(self) -> int:
        """Every page of `tools/list`; the number of tools listed."""
        cursor: str | None = None
        listed = 0
        while True:
            result = await self.request("tools/list", {} if cursor is None else {"cursor": cursor})
            listed += len(result["tools"])
            cursor = result.get("nextCursor")
            if cursor is None:
                return listed

    async def search(self) -> int:
        result = await self.request(
            "tools/call", {"name": "search_tools", "arguments": {"query": SEARCH_QUERY}}, name="search_tools"
        )
        if result.get("isError"):
            raise BenchError(f"search_tools failed: {json.dumps(result)[:300]}")
        return len(result["content"])


@dataclass
class AgentFigures:
    label: str
    tools: int = 0
    cold_walk_ms: float = 0.0
    first_page_ms: list[float] = field(default_factory=list[float])
    walk_ms: list[float] = field(default_factory=list[float])
    search_ms: list[float] = field(default_factory=list[float])
    hub_cpu_per_walk_ms: float = 0.0


async def _sample(sink: list[float], work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    answer = await work()
    sink.append((time.perf_counter() - started) * 1000)
    return answer


async def measure_agent(url: str, label: str, token: str, rounds: int, hub_pid: int) -> AgentFigures:
    figures = AgentFigures(label)
    client = HubClient(url, token)
    try:
        started = time.perf_counter()
        figures.tools = await client.walk()
        figures.cold_walk_ms = (time.perf_counter() - started) * 1000
        for _ in range(rounds):
            await _sample(figures.first_page_ms, client.first_page)
        before = cpu_seconds(hub_pid)
        for _ in range(rounds):
            listed = await _sample(figures.walk_ms, client.walk)
            if listed != figures.tools:
                raise BenchError(f"{label}: a walk listed {listed} tools, the first {figures.tools}")
        figures.hub_cpu_per_walk_ms = (cpu_seconds(hub_pid) - before) / rounds * 1000
        for _ in range(rounds):
            await _sample(figures.search_ms, client.search)
    finally:
        await client.aclose()
    return figures


def wait_for_quiet_hub(pid: int, threshold: float = 0.1, seconds: int = 5) -> float:
    """Wait (bounded) until the hub's own CPU use stays under `threshold` of one core for `seconds` in a row
    (longer than `[catalog] review_poll_seconds`): the work federation set off (catalog sync, the review
    watcher re-applying each new connector once) is over. Seconds waited."""
    started = time.perf_counter()
    quiet = 0
    while quiet < seconds and time.perf_counter() - started < READY_TIMEOUT_SECONDS:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        quiet = quiet + 1 if cpu_seconds(pid) - before < threshold else 0
    return time.perf_counter() - started - quiet


def resident_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def through_hub(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mcp-hub-catalog-") as tmp:
        directory = Path(tmp)
        server_port, hub_port = free_port(), free_port()
        config = write_hub_config(directory, hub_port, server_port, args)
        options = ["--config", str(config), "--log-level", "warning"]
        hub_command("migrate", *options)
        tokens: dict[str, str] = {}
        for number, (label, grants) in enumerate(callers(args.connectors, args.tools).items()):
            agent = f"agent{number}"
            grant_options = [option for grant in grants for option in ("--grant", grant)]
            hub_command("agents", "create", agent, *grant_options, *options)
            tokens[label] = hub_command("token", agent, *options).strip()
        server_command = [PYTHON, str(CATALOG_SERVER), "--http", str(server_port), "--tools", str(args.tools)]
        with child(server_command, directory / "server.log"):
            _wait_for_port(server_port)
            hub_log = directory / "hub.log"
            started = time.perf_counter()
            with child([PYTHON, "-m", "mcp_hub", "serve", *options], hub_log) as hub:
                base_url = f"http://127.0.0.1:{hub_port}"
                profile = None if args.py_spy is None else args.py_spy / "hub-catalog-federation.txt"
                with sampled(hub.pid, profile):
                    names = {connector_name(number) for number in range(args.connectors)}
                    wait_for_hub(
                        base_url, hub, hub_log, names, timeout_seconds=READY_TIMEOUT_SECONDS, poll_seconds=0.05
                    )
                ready_s = time.perf_counter() - started
                federation_cpu_s = cpu_seconds(hub.pid)
                settled_s = wait_for_quiet_hub(hub.pid) + ready_s
                # The client's own full collections (its heap holds the imported hub modules) stalled a walk by
                # ~100 ms each: what was built so far is frozen out of its collector's sight, as the hub does.
                gc.collect()
                gc.freeze()
                figures = anyio.run(_measure_all, f"{base_url}/mcp", tokens, args.rounds, hub.pid, args.py_spy)
                federated_s = ready_s + figures[0].cold_walk_ms / 1000
                rss = resident_mb(hub.pid)
                if hub.poll() is not None:
                    raise BenchError(f"the hub died during the run:\n{hub_log.read_text()[-3000:]}")
    print(
        f"{args.connectors} connectors x {args.tools} tools through mcp-hub serve (auth on, HTTP, {MODERN}); "
        f"page size {args.page_size}, at most {args.page_max_bytes} bytes"
    )
    print(
        f"federated in {federated_s:.1f} s (process start to every connector ready: {ready_s:.1f} s, using "
        f"{federation_cpu_s:.1f} s of the hub's CPU, "
        f"then a first walk of every tool); the hub's CPU quiet {settled_s:.1f} s after its start; "
        f"resident memory {rss:.0f} MB"
    )
    print(f"ms, p50/p99 over {args.rounds} rounds; hub cpu: the hub's CPU time per full walk")
    columns = f"{'first page':>13} {'full walk':>13} {'search':>13}"
    print(f"{'caller':<18} {'tools':>6} {'cold walk':>10} {columns} {'hub cpu':>8}")
    for row in figures:
        cells = " ".join(
            f"{percentile(samples, 50):>6.2f}/{percentile(samples, 99):<6.2f}"
            for samples in (row.first_page_ms, row.walk_ms, row.search_ms)
        )
        print(f"{row.label:<18} {row.tools:>6} {row.cold_walk_ms:>10.1f} {cells} {row.hub_cpu_per_walk_ms:>8.1f}")


async def _measure_all(
    url: str, tokens: dict[str, str], rounds: int, hub_pid: int, profiles: Path | None
) -> Sequence[AgentFigures]:
    rows: list[AgentFigures] = []
    for number, (label, token) in enumerate(tokens.items()):
        log(f"measuring {label}")
        with sampled(hub_pid, None if profiles is None else profiles / f"hub-catalog-agent{number}.txt"):
            rows.append(await measure_agent(url, label, token, rounds, hub_pid))
    return rows


@contextmanager
def sampled(pid: int, output: Path | None) -> Generator[None]:
    """Sample process `pid` with py-spy into `output` (collapsed stacks, `bench/profile_summary.py`) meanwhile."""
    if output is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    command = [exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--nonblocking"]
    process = subprocess.Popen(
        [*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    time.sleep(0.5)  # py-spy attaches before the load starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)  # py-spy writes its output when interrupted
        process.wait(timeout=60)


def _wait_for_port(port: int) -> None:
    with httpx2.Client(timeout=2.0) as client:
        for _ in range(200):
            try:
                client.get(f"http://127.0.0.1:{port}/")
            except httpx2.TransportError:
                time.sleep(0.05)
                continue
            return
    raise BenchError(f"the catalog server did not listen on port {port}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connectors", type=int, default=100)
    parser.add_argument("--tools", type=int, default=100, help="tools per connector")
    parser.add_argument(
        "--page-size", type=int, default=DEFAULTS.page_size, help="the hub's [catalog] page_size (default: its default)"
    )
    parser.add_argument(
        "--page-max-bytes",
        type=int,
        default=DEFAULTS.page_max_bytes,
        help="the hub's [catalog] page_max_bytes (default: its default)",
    )
    parser.add_argument("--rounds", type=int, help="samples per figure (default 200 in-process, 30 with --hub)")
    parser.add_argument("--hub", action="store_true", help="measure over HTTP through a real `mcp-hub serve`")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="with --hub: sample the hub per agent into DIR")
    args = parser.parse_args()
    if args.connectors < 1 or args.tools < 5:
        parser.error("at least one connector of five tools (the narrow caller's grant)")
    if args.rounds is None:
        args.rounds = 30 if args.hub else 200
    try:
        (through_hub if args.hub else in_process)(args)
    except BenchError as error:
        print(f"catalog benchmark failed: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
