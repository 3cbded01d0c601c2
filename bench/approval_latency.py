"""Approval latency: from an approver's decision to the held downstream call starting, on one and two replicas.

    .venv/bin/python bench/approval_latency.py [--quick] [--rounds N] [--setup single|replicas ...]
        [--postgres-url URL] [--redis-url URL] [--extra-config TOML|@FILE] [--json FILE]

A round: an agent (bearer token, `tool:*`) calls `http-echo__stamp` on the hub that holds it (2026-07-28, the
SDK client, no Tasks extension: the request is held, `hold_seconds`), an approval rule holds the call, the
approver's web session sees it pending (`GET /api/approvals`), waits a random fraction of `--phase` seconds so
the decision lands anywhere in a polling hold's cycle, and approves it with `POST /api/approvals/{id}/decision`
(docs/approvals.md, "JSON API"). The downstream (`bench/echo_server.py` over Streamable HTTP, its own process)
answers `stamp` with the wall-clock time its call arrived (`time.time_ns()`: one machine, one realtime clock for
every process). Figures per round:
- decision -> call: the call's arrival minus the moment the decision request returned (the target: p50 <= 50
  ms). On the replica that decides, the release may start the call before that response is sent: negative.
- sent -> call: the call's arrival minus the moment the decision request was sent.
- decision -> answer: from the decision's return to the agent holding the downstream's result.

Setups: `single`, one hub on SQLite (the default configuration); `replicas`, two hubs sharing a PostgreSQL
database of this run's own (created, then dropped) and Redis (`[limits] redis_url`, a key prefix of this run's
own, its keys deleted at the end), the call held on replica B and the decision posted to replica A, each
addressed directly. `--extra-config` is TOML merged over the configuration written for every hub (e.g. to switch
on a cross-replica bus). Reported as p50/p99 over the rounds with their min-max; `--json FILE` writes every
figure (read by `bench/chart.py`).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from harness import (
    ECHO_SERVER,
    HAS_UVLOOP,
    PYTHON,
    BenchError,
    Spread,
    child,
    event_loop_of,
    extra_config,
    finite_or_none,
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
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

MODERN = "2026-07-28"
CONNECTOR = "http-echo"
HELD_TOOL = f"{CONNECTOR}__stamp"
APPROVER = "bench-approver"
AGENT = "bench-agent"
TARGET_P50_MS = 50.0
PENDING_POLL_SECONDS = 0.005
STEP_TIMEOUT_SECONDS = 30.0
SETUPS = ("single", "replicas")


@dataclass
class Options:
    rounds: int
    setups: list[str]
    phase_seconds: float
    postgres_url: str
    redis_url: str
    extra: dict[str, Any]
    wait_quiet: float
    quick: bool
    json_path: Path | None = None


@dataclass
class Round:
    """One held call, approved: wall-clock nanoseconds (`time.time_ns()`) of each step."""

    decision_sent: int
    decision_returned: int
    call_arrived: int
    answered: int

    def decision_to_call_ms(self) -> float:
        return (self.call_arrived - self.decision_returned) / 1e6

    def sent_to_call_ms(self) -> float:
        return (self.call_arrived - self.decision_sent) / 1e6

    def decision_to_answer_ms(self) -> float:
        return (self.answered - self.decision_returned) / 1e6


@dataclass
class SetupResult:
    name: str
    description: str
    replicas: int
    database: str
    loops: dict[str, str]
    rounds: list[Round] = field(default_factory=list[Round])

    def figures(self) -> dict[str, dict[str, Any]]:
        measures: dict[str, Callable[[Round], float]] = {
            "decision_to_call_ms": Round.decision_to_call_ms,
            "sent_to_call_ms": Round.sent_to_call_ms,
            "decision_to_answer_ms": Round.decision_to_answer_ms,
        }
        figures: dict[str, dict[str, Any]] = {}
        for name, measure in measures.items():
            values = [measure(one) for one in self.rounds]
            spread = Spread.of(values)
            figures[name] = {
                "p50": finite_or_none(percentile(values, 50)),
                "p99": finite_or_none(percentile(values, 99)),
                **spread.as_json(),
            }
        return figures


# --- the hubs --------------------------------------------------------------------------------------------


def hub_config(port: int, database_url: str, redis: tuple[str, str] | None, extra: dict[str, Any]) -> dict[str, Any]:
    """One hub's configuration: auth on, one approval rule holding `HELD_TOOL`, room for the benchmark's calls."""
    limits: dict[str, Any] = {
        "per_agent": {"rate": 1_000_000.0, "burst": 1_000_000},
        "per_agent_connector": {"rate": 1_000_000.0, "burst": 1_000_000},
        "per_agent_tool": {"rate": 1_000_000.0, "burst": 1_000_000},
    }
    if redis is not None:
        limits["redis_url"], limits["redis_key_prefix"] = redis
    config: dict[str, Any] = {
        "hub": {"listen_host": "127.0.0.1", "listen_port": port},
        "database": {"url": database_url},
        "timeouts": {"connect_seconds": 20, "call_seconds": 30},
        "auth": {"access_token_ttl_seconds": 3600},
        "limits": limits,
        "approvals": {
            "hold_seconds": 30,
            "max_pending_per_caller": 100,
            "rules": [{"name": "bench", "tools": [HELD_TOOL], "approvers": ["role:approver"]}],
        },
    }
    return merged(config, extra)


@dataclass(frozen=True)
class Replica:
    name: str
    base_url: str
    pid: int


@contextmanager
def running_hubs(
    stack: ExitStack, directory: Path, names: Sequence[str], database_url: str, options: Options, redis_prefix: str
) -> Generator[tuple[list[Replica], str, int]]:
    """The echo server and one hub per name sharing `database_url`; (replicas, agent token, echo pid)."""
    echo_port = free_port()
    echo_log = directory / "echo.log"
    echo = stack.enter_context(child([PYTHON, str(ECHO_SERVER), "--http", str(echo_port)], echo_log))
    connectors = directory / "connectors"
    connectors.mkdir()
    (connectors / f"{CONNECTOR}.toml").write_text(
        f'id = "{CONNECTOR}"\ntransport = "http"\nprotocol = "{MODERN}"\ntrust = "auto"\n'
        f'url = "http://127.0.0.1:{echo_port}/mcp"\n'
    )
    redis = (options.redis_url, redis_prefix) if len(names) > 1 else None
    ports = [free_port() for _ in names]
    # Replicas share one public URL, as behind a load balancer (tokens name it as issuer and audience): A's.
    shared = {"hub": {"public_base_url": f"http://127.0.0.1:{ports[0]}"}} if len(names) > 1 else {}
    configs: list[tuple[str, Path, int]] = []
    for name, port in zip(names, ports, strict=True):
        path = directory / f"config-{name}.toml"
        path.write_text(toml_text(hub_config(port, database_url, redis, merged(shared, options.extra))))
        configs.append((name, path, port))
    first = ["--config", str(configs[0][1]), "--log-level", "warning"]
    hub_command("migrate", *first)
    hub_command("users", "create", APPROVER, "--role", "approver", "--password-stdin", *first, stdin=_password())
    hub_command("agents", "create", AGENT, "--grant", "tool:*", *first)
    token = hub_command("token", AGENT, *first).strip()
    replicas: list[Replica] = []
    for name, path, port in configs:
        hub_log = directory / f"hub-{name}.log"
        process = stack.enter_context(
            child([PYTHON, "-m", "mcp_hub", "serve", "--config", str(path), "--log-level", "warning"], hub_log)
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_for_hub(base_url, process, hub_log, {CONNECTOR})
        except BenchError as exc:
            raise BenchError(f"{exc}\necho server:\n{tail(echo_log)}") from exc
        log(f"replica {name} ready (pid {process.pid}) at {base_url}")
        replicas.append(Replica(name, base_url, process.pid))
    try:
        yield replicas, token, echo.pid
    except BenchError as exc:
        logs = "\n".join(f"--- {name} (tail):\n{tail(directory / f'hub-{name}.log')}" for name in names)
        raise BenchError(f"{exc}\n{logs}") from exc


_PASSWORD = f"bench-{uuid.uuid4().hex}"


def _password() -> str:
    return _PASSWORD + "\n"


# --- PostgreSQL and Redis of this run's own ---------------------------------------------------------------


async def create_database(server_url: str, name: str) -> str:
    """Create the PostgreSQL database `name` (this run's own) on the server of `server_url`; its URL."""
    await _admin_execute(server_url, f'CREATE DATABASE "{name}"')
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(server_url: str, name: str) -> None:
    await _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin_execute(server_url: str, statement: str) -> None:
    url = make_url(server_url).set(database="postgres")
    admin = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(statement)
    except (OSError, SQLAlchemyError) as exc:
        raise BenchError(f"PostgreSQL at {url.render_as_string()} refused {statement!r}: {exc}") from exc
    finally:
        await admin.dispose()


async def forget_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete every key under `prefix` (this run's own); how many there were."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    deleted = 0
    try:
        keys: list[bytes] = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        for key in keys:
            deleted += int(await client.delete(key))
    finally:
        await client.aclose()
    return deleted


# --- the approver and the agent --------------------------------------------------------------------------


@asynccontextmanager
async def approver_session(base_url: str) -> AsyncGenerator[tuple[httpx2.AsyncClient, str]]:
    """An HTTP client signed in as the approver on `base_url` (the web session), and its CSRF token."""
    async with httpx2.AsyncClient(base_url=base_url, timeout=STEP_TIMEOUT_SECONDS) as client:
        page = await client.get("/login", params={"next": "/approvals"})
        found = re.search(r'<input type="hidden" name="next" value="([^"]*)">', page.text)
        if page.status_code != 200 or found is None:
            raise BenchError(f"no login form at {base_url}/login: HTTP {page.status_code}")
        form = {"name": APPROVER, "password": _PASSWORD, "next": html.unescape(found.group(1))}
        signed_in = await client.post("/login", data=form)
        if signed_in.status_code != 303:
            raise BenchError(f"sign-in refused: HTTP {signed_in.status_code} {signed_in.text[:300]}")
        listing = await client.get("/api/approvals")
        if listing.status_code != 200:
            raise BenchError(f"GET /api/approvals: HTTP {listing.status_code} {listing.text[:300]}")
        yield client, listing.headers["x-csrf-token"]


async def pending_action(approver: httpx2.AsyncClient) -> str:
    """The id of the pending action for `HELD_TOOL`, polling the approver's API until it appears."""
    with anyio.fail_after(STEP_TIMEOUT_SECONDS):
        while True:
            listing = await approver.get("/api/approvals", params={"status": "pending"})
            if listing.status_code != 200:
                raise BenchError(f"GET /api/approvals: HTTP {listing.status_code} {listing.text[:300]}")
            actions: list[dict[str, Any]] = listing.json()["actions"]
            for action in actions:
                if action.get("tool") == HELD_TOOL:
                    return str(action["id"])
            await anyio.sleep(PENDING_POLL_SECONDS)


def stamp_of(result: types.CallToolResult) -> int:
    """The arrival time the echo server's `stamp` answered (raises unless the call ran and succeeded)."""
    content = result.content[0] if result.content else None
    if result.is_error or not isinstance(content, types.TextContent) or not content.text.isdigit():
        raise BenchError(f"the held call did not run: {result.model_dump_json()[:400]}")
    return int(content.text)


@contextmanager
def _first_bench_error() -> Generator[None]:
    """A `BenchError` out of a task group, as itself (the group adds nothing to the message)."""
    try:
        yield
    except* BenchError as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup) and error.exceptions:
            error = error.exceptions[0]
        raise error from None


async def one_round(
    agent: Client, approver: httpx2.AsyncClient, csrf: str, index: int, phase_seconds: float, rng: random.Random
) -> Round:
    """Hold a call, approve it, and time the steps."""
    outcome: dict[str, tuple[types.CallToolResult, int]] = {}

    async def held_call() -> None:
        arguments = {"label": f"round-{index}-{uuid.uuid4().hex[:8]}"}
        try:
            result = await agent.call_tool(HELD_TOOL, arguments, read_timeout_seconds=STEP_TIMEOUT_SECONDS)
        except MCPError as exc:
            raise BenchError(f"the held call failed: {exc.code} {exc.message} {exc.data!r}"[:600]) from exc
        outcome["result"] = (result, time.time_ns())

    sent = returned = 0
    with _first_bench_error():
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(held_call)
            action_id = await pending_action(approver)
            await anyio.sleep(rng.uniform(0.0, phase_seconds))
            sent = time.time_ns()
            decided = await approver.post(
                f"/api/approvals/{action_id}/decision",
                json={"decision": "approve", "reason": "benchmark"},
                headers={"X-CSRF-Token": csrf},
            )
            returned = time.time_ns()
            if decided.status_code != 200:
                raise BenchError(f"the decision was refused: HTTP {decided.status_code} {decided.text[:300]}")
    result, answered = outcome["result"]
    return Round(sent, returned, stamp_of(result), answered)


async def measure(
    replicas: Sequence[Replica], token: str, rounds: int, phase_seconds: float, result: SetupResult
) -> None:
    """`rounds` held calls on the last replica, each decided on the first."""
    holder, decider = replicas[-1], replicas[0]
    rng = random.Random(12)  # noqa: S311 -- spreads decisions over a polling cycle; no secret involved
    async with AsyncExitStack() as stack:
        refusals: list[str] = []

        async def note_refusal(response: httpx2.Response) -> None:
            if response.status_code >= 400:
                refusals.append(f"HTTP {response.status_code} {dict(response.headers)}")

        http = await stack.enter_async_context(
            httpx2.AsyncClient(
                headers={"Authorization": f"Bearer {token}"},
                timeout=STEP_TIMEOUT_SECONDS,
                event_hooks={"response": [note_refusal]},
            )
        )
        agent = await stack.enter_async_context(
            Client(streamable_http_client(f"{holder.base_url}/mcp", http_client=http), mode=MODERN)
        )
        approver, csrf = await stack.enter_async_context(approver_session(decider.base_url))
        try:
            await one_round(agent, approver, csrf, -1, 0.0, rng)  # warm-up: connections, caches, the first action
            for index in range(rounds):
                one = await one_round(agent, approver, csrf, index, phase_seconds, rng)
                result.rounds.append(one)
                if (index + 1) % 10 == 0 or index + 1 == rounds:
                    log(f"  {index + 1}/{rounds} rounds; last decision -> call {one.decision_to_call_ms():.1f} ms")
        except BenchError as exc:
            raise BenchError(f"{exc} (the hub's answers: {'; '.join(refusals[-2:]) or 'no HTTP error'})") from exc


# --- the setups ------------------------------------------------------------------------------------------


def run_single(options: Options) -> SetupResult:
    with tempfile.TemporaryDirectory(prefix="mcp-hub-approval-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        database = f"sqlite+aiosqlite:///{directory / 'hub.db'}"
        with running_hubs(stack, directory, ["A"], database, options, "") as (replicas, token, echo_pid):
            result = SetupResult("single", "one replica (SQLite)", 1, "sqlite", _loops(replicas, echo_pid))
            log(f"single replica: {options.rounds} rounds")
            _run_async(measure, replicas, token, options.rounds, options.phase_seconds, result)
    return result


def run_replicas(options: Options) -> SetupResult:
    scratch = f"mcp_hub_bench_{uuid.uuid4().hex[:12]}"  # the database's name and the Redis key prefix
    prefix = f"{scratch}:"
    with tempfile.TemporaryDirectory(prefix="mcp-hub-approval-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        database: str = _run_async(create_database, options.postgres_url, scratch)
        stack.callback(_run_async, drop_database, options.postgres_url, scratch)
        stack.callback(_run_async, forget_redis_keys, options.redis_url, prefix)
        with running_hubs(stack, directory, ["A", "B"], database, options, prefix) as (replicas, token, echo_pid):
            result = SetupResult(
                "replicas",
                "two replicas (PostgreSQL + Redis): held on B, decided on A",
                2,
                "postgresql",
                _loops(replicas, echo_pid),
            )
            log(f"two replicas: {options.rounds} rounds, held on B, decided on A")
            _run_async(measure, replicas, token, options.rounds, options.phase_seconds, result)
    return result


def _run_async(function: Callable[..., Any], *args: Any) -> Any:
    with _first_bench_error():
        return anyio.run(function, *args, backend_options={"use_uvloop": HAS_UVLOOP})


def _loops(replicas: Sequence[Replica], echo_pid: int) -> dict[str, str]:
    loops = {f"hub {replica.name}": event_loop_of(replica.pid) for replica in replicas}
    loops["echo (http)"] = event_loop_of(echo_pid)
    return loops


# --- output ----------------------------------------------------------------------------------------------


def document(results: Sequence[SetupResult], options: Options, busy_before: float) -> dict[str, Any]:
    return {
        "benchmark": "approval_latency",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_json(busy_before),
        "options": {
            "rounds": options.rounds,
            "phase_seconds": options.phase_seconds,
            "setups": options.setups,
            "extra_config": options.extra,
            "quick": options.quick,
        },
        "targets": {"decision_to_call_p50_ms": TARGET_P50_MS},
        "setups": [
            {
                "name": result.name,
                "description": result.description,
                "replicas": result.replicas,
                "database": result.database,
                "event_loops": result.loops,
                "rounds": len(result.rounds),
                "figures": result.figures(),
            }
            for result in results
        ],
    }


def render(doc: dict[str, Any]) -> str:
    machine = doc["machine"]
    busy = machine["busy_before"]
    lines = [
        f"machine: {machine['cpus']} CPUs, {'?' if busy is None else f'{busy:.0%}'} busy with other work before "
        f"the run; Python {machine['python']}; decisions at a random point of a {doc['options']['phase_seconds']:g} s"
        " cycle",
        f"extra config: {json.dumps(doc['options']['extra_config']) if doc['options']['extra_config'] else 'none'}",
        "",
        f"{'setup':<58} {'rounds':>6} {'p50 ms':>8} {'p99 ms':>8} {'min-max ms':>16} {'sent->call p50':>15} "
        f"{'->answer p50':>13}",
    ]
    for setup in doc["setups"]:
        call, sent, answer = (
            setup["figures"][name] for name in ("decision_to_call_ms", "sent_to_call_ms", "decision_to_answer_ms")
        )
        lines.append(
            f"{setup['description']:<58} {setup['rounds']:>6} {call['p50']:>8.1f} {call['p99']:>8.1f} "
            f"{call['min']:>7.1f}-{call['max']:<8.1f} {sent['p50']:>15.1f} {answer['p50']:>13.1f}"
        )
        lines.append(f"  event loops: {'; '.join(f'{k}: {v}' for k, v in setup['event_loops'].items())}")
    lines.append("")
    lines.append(f"Target: decision -> downstream call p50 <= {TARGET_P50_MS:g} ms, also across replicas")
    for setup in doc["setups"]:
        p50 = setup["figures"]["decision_to_call_ms"]["p50"]
        lines.append(f"  {setup['name']:<10} {p50:7.1f} ms  {'PASS' if p50 <= TARGET_P50_MS else 'FAIL'}")
    return "\n".join(lines)


def parse_options(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, help="held calls per setup (default 100; 5 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke run (5 rounds per setup)")
    parser.add_argument(
        "--setup", action="append", choices=SETUPS, help="single (SQLite) and/or replicas (default both)"
    )
    parser.add_argument(
        "--phase",
        type=float,
        default=0.5,
        metavar="S",
        help="decide at a random point within S seconds of the call showing up (default 0.5: one polling cycle)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432",
        help="the PostgreSQL server for replicas (a database of the run's own is created there, then dropped)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0", help="for replicas")
    parser.add_argument(
        "--extra-config", metavar="TOML|@FILE", help="TOML merged over every hub's configuration (e.g. a bus)"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, metavar="S", help="wait up to S seconds for an idle machine first"
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write every figure as JSON to FILE")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    rounds: int = args.rounds if args.rounds is not None else (5 if quick else 100)
    if rounds <= 0 or args.phase < 0:
        parser.error("--rounds must be positive and --phase not negative")
    try:
        extra = extra_config(args.extra_config)
    except (BenchError, OSError) as exc:
        parser.error(str(exc))
    return Options(
        rounds=rounds,
        setups=args.setup or list(SETUPS),
        phase_seconds=args.phase,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
        extra=extra,
        wait_quiet=args.wait_quiet,
        quick=quick,
        json_path=args.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    # The hubs' database is the one each setup writes into their configuration, not the caller's environment's.
    os.environ.pop("MCP_HUB_DATABASE_URL", None)
    started = time.perf_counter()
    busy_before = wait_for_quiet(options.wait_quiet)
    runners = {"single": run_single, "replicas": run_replicas}
    try:
        results = [runners[name](options) for name in options.setups]
    except BenchError as exc:
        print(f"approval_latency: {exc}", file=sys.stderr)
        return 1
    doc = document(results, options, busy_before)
    print(render(doc))
    if options.json_path is not None:
        write_json(options.json_path, doc)
        log(f"figures written to {options.json_path}")
    log(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
