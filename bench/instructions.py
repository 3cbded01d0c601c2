"""Instructions the hub spends per 2026-07-28 `tools/call` (or per `tools/list` page): a figure a busy machine
does not disturb, for A/B comparisons of hot-path changes (wall-clock and even CPU time drift with the load).

    .venv/bin/python bench/instructions.py [--calls 300] [--auth on|off] [--method call|list]
        [--extra-config TOML|@FILE] [--keep DIR]

The hub runs under `valgrind --tool=callgrind` with instrumentation off during start-up; after a warm-up the
instrumentation is switched on (`callgrind_control -i on`), the counters zeroed after a second warm-up, then
`--calls` sequential raw calls (as `bench/overhead.py --driver raw`: HTTP echo downstream, auth on with a
`tool:*` grant; decisions cached 30 s and every audit row its own batch, so that no work done by the clock is
charged to calls that valgrind slows) are made and the counters dumped. The hub's background work (timers
and polls, which run by the wall clock that valgrind and a busy machine stretch) is then counted alone for as
long, idle, and taken out pro rata. Printed: instructions (Ir) per request, every thread of the hub process
included (audit's SQLite thread too). `--keep DIR` keeps the callgrind output for `callgrind_annotate`.

`--cprofile FILE` runs the hub under cProfile instead (no valgrind) and writes its stats: the difference of two
runs with different `--calls` gives the Python calls per request, function by function.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path

import httpx2
from harness import ECHO_SERVER, PYTHON, BenchError, child, free_port, hub_command, log, merged, wait_for_hub
from overhead import HTTP_CONNECTOR, Options, check_echo, request_body, request_headers, wait_for_echo, write_config
from overhead import Target as EchoTarget

_STARTUP_SECONDS = 600.0


def _calls(client: httpx2.Client, url: str, method: str, count: int) -> None:
    tool = f"{HTTP_CONNECTOR}__echo"
    for request_id in range(count):
        if method == "call":
            response = client.post(url, content=json.dumps(request_body(tool, request_id)))
            check_echo(response.json(), request_id)
        else:
            body = request_body(tool, request_id)
            body["method"] = "tools/list"
            body["params"] = {"_meta": body["params"]["_meta"]}
            response = client.post(url, content=json.dumps(body))
            if "result" not in response.json():
                raise BenchError(f"unexpected answer: {response.text[:300]}")


def _audit_rows(database: Path) -> int:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        (count,) = connection.execute("SELECT count(*) FROM audit_calls").fetchone()
    return int(count)


def _audit_written(database: Path, at_least: int) -> int:
    """Wait until the hub's audit writer has stored `at_least` rows and stopped writing (it drains its queue
    after the calls, slower under valgrind than they come): the background work measured idle afterwards
    must not include the calls' own audit rows. Returns the row count."""
    deadline = time.monotonic() + 600
    count = -1
    while time.monotonic() < deadline:
        previous, count = count, _audit_rows(database)
        if count >= at_least and count == previous:
            return count
        time.sleep(1.0)  # a file another process writes: no event to await
    raise BenchError(f"the audit writer stored {count} of {at_least} rows in 10 minutes")


def _control(*arguments: str | int) -> None:
    subprocess.run(["callgrind_control", *map(str, arguments)], check=True, capture_output=True)


def _dump(out: Path, pid: int) -> int:
    """Dump callgrind's counters now: the instructions since they were last zeroed."""
    before = set(out.parent.glob(out.name + ".*"))
    _control("-d", pid)
    for _ in range(600):
        new = set(out.parent.glob(out.name + ".*")) - before
        for dump in new:
            match = re.search(r"^summary:\s+(\d+)", dump.read_text(errors="replace"), re.MULTILINE)
            if match:
                return int(match.group(1))
        time.sleep(0.5)
    raise BenchError("callgrind wrote no dump")


def _cprofiled(
    args: argparse.Namespace, stack: ExitStack, directory: Path, common: list[str], hub_port: int, token: str | None
) -> int:
    """The hub under cProfile: warm-up, `--calls` requests, a graceful stop (the stats are written at exit)."""
    out = args.cprofile.resolve()
    command = [PYTHON, "-m", "cProfile", "-o", str(out), "-m", "mcp_hub", "serve", *common]
    hub = stack.enter_context(child(command, directory / "hub.log"))
    base_url = f"http://127.0.0.1:{hub_port}"
    wait_for_hub(base_url, hub, directory / "hub.log", {HTTP_CONNECTOR}, timeout_seconds=_STARTUP_SECONDS)
    with httpx2.Client(timeout=120.0, headers=request_headers(f"{HTTP_CONNECTOR}__echo", token)) as client:
        _calls(client, f"{base_url}/mcp", args.method, args.calls)
    hub.send_signal(signal.SIGINT)
    hub.wait(timeout=60)
    log(f"cProfile stats of {args.calls} requests (and the start-up) in {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--auth", choices=["on", "off"], default="on")
    parser.add_argument("--method", choices=["call", "list"], default="call")
    parser.add_argument("--extra-config", default=None, help="TOML merged over the hub's config (or @FILE)")
    parser.add_argument("--keep", type=Path, default=None, help="keep callgrind's output in DIR")
    parser.add_argument(
        "--cprofile", type=Path, default=None, metavar="FILE",
        help="instead of callgrind: run the hub under cProfile and write its stats (call counts per request) to FILE",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise BenchError("valgrind is not installed (apt-get install valgrind)")
    from harness import extra_config

    with tempfile.TemporaryDirectory(prefix="mcp-hub-instr-") as tmp, ExitStack() as stack:
        directory = Path(tmp)
        http_port, hub_port = free_port(), free_port()
        echo = stack.enter_context(child([PYTHON, str(ECHO_SERVER), "--http", str(http_port)], directory / "echo.log"))
        wait_for_echo(EchoTarget("direct", "echo", f"http://127.0.0.1:{http_port}/mcp"), echo, directory / "echo.log")
        options = Options(
            calls=args.calls, concurrency=1, seconds=1, rounds=1, latency_rounds=1, warmup=0, drivers=["raw"],
            use_wrk=False, era="2026-07-28", py_spy_dir=None, quick=True, auth_modes=[args.auth],
        )  # fmt: skip
        hub_dir = directory / "hub"
        hub_dir.mkdir()
        # Work that runs by the clock would otherwise be charged to calls as valgrind slows them: decisions
        # reloaded when their cache entry expires, audit batches holding fewer rows. So decisions stay cached
        # and every call's audit row is its own batch, whatever the speed.
        steady = {"auth": {"decision_cache_seconds": 30}, "audit": {"batch_size": 1}}
        extra = merged(steady, extra_config(args.extra_config))
        config = write_config(hub_dir, hub_port, http_port, options, args.auth == "on", extra)
        # Only the HTTP connector: a stdio child under valgrind would be traced too.
        (hub_dir / "connectors" / "stdio-echo.toml").unlink()
        common = ["--config", str(config), "--log-level", "warning"]
        hub_command("migrate", *common)
        token = None
        if args.auth == "on":
            hub_command("agents", "create", "bench", "--grant", "tool:*", *common)
            token = hub_command("token", "bench", *common).strip()
        out = (args.keep or directory) / "callgrind.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.cprofile is not None:
            return _cprofiled(args, stack, directory, common, hub_port, token)
        valgrind = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            PYTHON, "-m", "mcp_hub", "serve", *common,
        ]  # fmt: skip
        hub = stack.enter_context(child(valgrind, directory / "hub.log"))
        base_url = f"http://127.0.0.1:{hub_port}"
        wait_for_hub(base_url, hub, directory / "hub.log", {HTTP_CONNECTOR}, timeout_seconds=_STARTUP_SECONDS)
        url = f"{base_url}/mcp"
        with httpx2.Client(timeout=120.0, headers=request_headers(f"{HTTP_CONNECTOR}__echo", token)) as client:
            _calls(client, url, args.method, 50)
            _control("-i", "on", hub.pid)
            _calls(client, url, args.method, 50)
            database = hub_dir / "hub.db"
            rows = _audit_written(database, 0)
            _control("-z", hub.pid)
            started = time.monotonic()
            _calls(client, url, args.method, args.calls)
            _audit_written(database, rows + (args.calls if args.method == "call" else 0))
            busy_seconds = time.monotonic() - started
            busy = _dump(out, hub.pid)
        # The hub's background work (timers, polls) runs by the wall clock, which valgrind and a busy machine
        # stretch: it is measured on its own, idle (the calls' audit rows all stored before), and taken out
        # pro rata.
        _control("-z", hub.pid)
        idle_seconds = min(busy_seconds, 60.0)
        time.sleep(idle_seconds)
        idle = _dump(out, hub.pid)
        background = idle / idle_seconds * busy_seconds
        per_request = (busy - background) / args.calls
        log(
            f"{args.method} auth {args.auth}: {per_request / 1e6:.3f} M instructions per request "
            f"({busy / 1e6:.0f} M in {busy_seconds:.0f} s, less {background / 1e6:.0f} M of background work "
            f"at the idle rate of {idle / idle_seconds / 1e6:.2f} M/s)"
        )
        print(f"{per_request:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
