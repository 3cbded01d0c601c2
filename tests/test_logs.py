"""The hub's logs (issue 13 §6): one format per run for every line on stderr, a stdio downstream's stderr among
them (named, capped, bounded, scrubbed, escaped), and one line per tool call.

Two real `mcp-hub serve` runs, one per format (module-scoped: each run is made once and its stderr read whole after
the hub stopped): a stdio downstream (the fault fixture with `FAULT_STDERR`) writes ANSI escapes, CR, NUL, a 10 KB
line, its own secret and a burst on stderr; the hub is asked over HTTP (uvicorn's access log), sent a request that is
not HTTP (uvicorn's error log), and called through a real MCP client. Threats: T23/T29/T30 (no secret in a log
line), T25 (a flooding downstream costs bounded memory and log volume), log injection (control characters escaped).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from structlog.testing import capture_logs

from mcp_hub.audit.log_lines import CallLines
from mcp_hub.credentials import SecretValues
from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import AuditOutcome, utc_now
from mcp_hub.downstream.stderr import StderrLog
from mcp_hub.logs import escape_controls
from tests.conftest import fault_connector, stop_process, write_config
from tests.test_cli import MCP_HUB, free_port, hub_env, mcp_hub, migrate, wait_until_ready
from tests.test_http_downstream import text_of

pytestmark = pytest.mark.anyio

BURST = 3000
SECRET = "stderr-canary-secret-31c7e2"
ARGUMENT = "an argument that is never logged 9d41"
ESSENTIALS = {"timestamp", "level", "event", "logger"}
STDERR_LOGGER = "mcp_hub.downstream.stderr"
HOSTILE_ESCAPED = "\\x1b[31mred\\x1b[0m text, a CR\\x0dover it, a NUL\\x00 and a bell\\x07"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f]")


async def _configured(directory: Path) -> tuple[Path, int]:
    """A migrated config whose one connector writes hostile stderr, and its port."""
    port = free_port()
    connector = fault_connector(env={"FAULT_STDERR": str(BURST), "FAULT_STDERR_SECRET": "${LOG_TEST_SECRET}"})
    config = write_config(directory, {"faults": connector}, f"[hub]\nlisten_port = {port}\n")
    await migrate(config)
    return config, port


async def _serve_and_exercise(directory: Path, config: Path, port: int, *, json_lines: bool) -> bytes:
    """Run `mcp-hub serve` (JSON lines or console), exercise it, stop it; its whole stderr."""
    base_url = f"http://127.0.0.1:{port}"
    log_path = directory / "serve.log"
    command = [str(MCP_HUB), "serve", "--config", str(config), "--port", str(port)]
    with log_path.open("wb") as log:
        process = await anyio.open_process(
            [*command, *(["--log-json"] if json_lines else [])],
            stdout=log,
            stderr=log,
            env={**hub_env(), "LOG_TEST_SECRET": SECRET},
        )
        try:
            with anyio.fail_after(60):  # a bound on a busy machine, not a wait
                await wait_until_ready(base_url, process, "faults")
            async with httpx2.AsyncClient(timeout=10) as http:
                assert (await http.get(f"{base_url}/healthz", params={"access_token": SECRET})).status_code == 200
            async with await anyio.connect_tcp("127.0.0.1", port) as raw:
                await raw.send(b"NOT HTTP \x1b[2J\r\n\r\n")
                assert b"400" in await raw.receive()
            async with Client(f"{base_url}/mcp", mode="2026-07-28") as client:
                assert text_of(await client.call_tool("faults__echo", {"text": ARGUMENT})) == ARGUMENT
        finally:
            await stop_process(process)
    return log_path.read_bytes()


@pytest.fixture(scope="module")
async def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Both runs, side by side (the time of one); migrated one after the other (Alembic's context is global)."""
    found: dict[str, bytes] = {}
    directories = {name: tmp_path_factory.mktemp(f"{name}-log") for name in ("json", "console")}
    configs = {name: await _configured(directory) for name, directory in directories.items()}

    async def run(name: str, json_lines: bool) -> None:
        config, port = configs[name]
        found[name] = await _serve_and_exercise(directories[name], config, port, json_lines=json_lines)

    async with anyio.create_task_group() as runs:
        runs.start_soon(run, "json", True)
        runs.start_soon(run, "console", False)
    return found


@pytest.fixture
def json_log(logs: dict[str, bytes]) -> bytes:
    return logs["json"]


@pytest.fixture
def console_log(logs: dict[str, bytes]) -> bytes:
    return logs["console"]


def _records(log: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.decode().splitlines()]


def _stderr_records(log: bytes) -> list[dict[str, Any]]:
    return [record for record in _records(log) if record["logger"] == STDERR_LOGGER]


async def test_every_line_of_a_json_run_is_one_object_with_the_same_essentials(json_log: bytes) -> None:
    """Issue 13 §6, our choice of keys: every line on stderr, the hub's, uvicorn's (access and error), the SDK's
    and the downstream's, parses as one JSON object with `timestamp`, `level`, `event` and `logger`."""
    lines = json_log.decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert [line for line, record in zip(lines, records, strict=True) if not set(record) >= ESSENTIALS] == []
    loggers = {record["logger"] for record in records}
    assert {"uvicorn.error", "uvicorn.access", "mcp_hub.runtime", STDERR_LOGGER, "mcp_hub.calls"} <= loggers
    assert any(logger.startswith("mcp.") for logger in loggers), "the SDK's own loggers are in the same format"
    access = [
        record for record in records if record["logger"] == "uvicorn.access" and "access_token" in record["event"]
    ]
    assert [(record["method"], record["path"], record["status"]) for record in access] == [
        ("GET", "/healthz?access_token=[redacted]", 200)
    ]
    assert any(record["event"] == "Invalid HTTP request received." for record in records)


async def test_a_downstreams_stderr_is_logged_with_its_connector_escaped_capped_and_scrubbed(json_log: bytes) -> None:
    """Issue 13 §6 and T30 (the connector's own secret is scrubbed), log injection (our choice: every control
    character escaped, ANSI escapes included): each stderr line is a log line of its connector, at warning when it
    says so."""
    records = _stderr_records(json_log)
    assert {(record["connector"], record["stream"]) for record in records} == {("faults", "stderr")}
    events = [record["event"] for record in records]
    assert "plain line from the fault server" in events
    assert HOSTILE_ESCAPED in events
    assert "the secret is [redacted]" in events
    assert [record["level"] for record in records if record["event"].startswith("WARNING:")] == ["warning"]
    (long_line,) = [record for record in records if record["event"].startswith("long ")]
    assert long_line["truncated"] is True
    assert len(long_line["event"]) <= 4096 + 1
    assert [event for event in events if RAW_CONTROL.search(event)] == []
    assert SECRET.encode() not in json_log
    assert b"\x1b" not in json_log


async def test_a_stderr_flood_is_logged_up_to_its_bound_and_the_rest_is_counted(json_log: bytes) -> None:
    """T25, our choice of bound (200 lines at once, then 50 a second): the burst is read to its end, most of it
    dropped, and every dropped line counted in a warning; logged and counted lines add up to what was written."""
    records = _stderr_records(json_log)
    logged = [record for record in records if re.fullmatch(r"burst \d+|stderr done", record["event"])]
    suppressed = [record["suppressed"] for record in records if "suppressed" in record]
    assert sum(suppressed) > 0
    assert all(record["level"] == "warning" for record in records if "suppressed" in record)
    assert len(logged) + sum(suppressed) == BURST + 1
    assert len(logged) < BURST / 2


async def test_a_tool_call_yields_exactly_one_call_line_without_its_arguments(json_log: bytes) -> None:
    """Issue 13 §6: one line per call (request id, agent, tool, connector, outcome, latency); our choice: never the
    arguments or the result."""
    calls = [
        record
        for record in _records(json_log)
        if record["logger"] == "mcp_hub.calls" and record["event"] == "tools/call" and record["tool"] == "faults__echo"
    ]
    assert len(calls) == 1, calls
    (call,) = calls
    assert (call["event"], call["method"], call["connector"], call["outcome"]) == (
        "tools/call",
        "tools/call",
        "faults",
        "ok",
    )
    assert call["level"] == "info"
    assert isinstance(call["request_id"], int | str)
    assert call["client"]
    assert call["latency_ms"] >= 0
    assert ARGUMENT.encode() not in json_log


async def test_a_console_run_has_no_json_and_no_raw_escape_from_the_downstream(console_log: bytes) -> None:
    """Issue 13 §6: the default format is console lines for every line (no JSON among them); off a terminal no
    colour; a downstream's ANSI escapes are shown escaped, never sent to the operator's terminal."""
    lines = console_log.decode().splitlines()
    assert [line for line in lines if line.startswith("{")] == []
    assert b"\x1b" not in console_log
    assert SECRET.encode() not in console_log
    assert ARGUMENT.encode() not in console_log
    stderr_lines = [line for line in lines if f"[{STDERR_LOGGER}]" in line]
    assert stderr_lines
    assert all("connector=faults" in line and "stream=stderr" in line for line in stderr_lines)
    assert any(f"] faults| {HOSTILE_ESCAPED}" in line for line in stderr_lines), "prefixed with its connector"
    calls = [line for line in lines if "[mcp_hub.calls]" in line and "tools/call" in line]
    assert len([line for line in calls if "tool=faults__echo" in line and "outcome=ok" in line]) == 1
    assert any("[uvicorn.access]" in line for line in lines)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _stderr_log(clock: Callable[[], float], **bounds: Any) -> StderrLog:
    return StderrLog("faults", SecretValues([SECRET]), clock=clock, **bounds)


def test_lines_split_across_chunks_are_joined_and_a_long_one_is_cut_once() -> None:
    """Our choice: a line is logged whole however the pipe cut it, a blank one not at all; a line over the cap is
    logged once, cut and marked, and the rest of it dropped (at most one line is ever buffered)."""
    stderr = _stderr_log(_Clock(), max_line_bytes=16)
    with capture_logs() as logs:
        stderr.feed(b"hel")
        stderr.feed(b"lo\n\n \r\nwor")
        stderr.feed(b"ld " + b"y" * 100)
        stderr.feed(b"z" * 100_000)
        stderr.feed(b"zz\nafter\n")
        stderr.feed(b"unfinished")
        stderr.close()
    assert [(log["event"], log.get("truncated", False)) for log in logs] == [
        ("hello", False),
        ("world " + "y" * 10 + "…", True),
        ("after", False),
        ("unfinished", False),
    ]


def test_a_secret_at_the_cap_is_scrubbed_whole_never_logged_in_part() -> None:
    """T30: a secret that straddles the cap is scrubbed before the line is cut."""
    stderr = _stderr_log(_Clock(), max_line_bytes=16)
    with capture_logs() as logs:
        stderr.feed(b"0123456789" + SECRET.encode() + b"\n")
    assert [log["event"] for log in logs] == ["0123456789[redac…"]


def test_a_flood_is_counted_and_reported_once_lines_are_allowed_again() -> None:
    """T25, our choice: beyond the burst, lines are counted, not logged; the count is reported before the next line
    that is logged, and at the end."""
    clock = _Clock()
    stderr = _stderr_log(clock, burst=3, per_second=1.0)
    with capture_logs() as logs:
        stderr.feed(b"".join(b"line %d\n" % index for index in range(10)))
        stderr.feed(b"a partial line that is dropped wh")
        stderr.feed(b"ole\n")
        clock.now = 1.0
        stderr.feed(b"later\n")
        stderr.feed(b"dropped\n")
        stderr.close()
    assert [(log["event"], log["log_level"]) for log in logs] == [
        ("line 0", "info"),
        ("line 1", "info"),
        ("line 2", "info"),
        ("suppressed 8 lines of stderr (more than 1 a second)", "warning"),
        ("later", "info"),
        ("suppressed 1 lines of stderr (more than 1 a second)", "warning"),
    ]


def test_control_characters_are_escaped_visibly() -> None:
    """Log injection, our choice: C0 and C1 controls, DEL, line separators and bidi overrides become escapes."""
    assert escape_controls("a\x1b[2Jb\rc\nd\x00e\x9bf\u202eg\u2028h\x7fi\tj") == (
        "a\\x1b[2Jb\\x0dc\\x0ad\\x00e\\x9bf\\u202eg\\u2028h\\x7fi\\x09j"
    )


async def test_a_subcommand_logs_in_the_configured_format(tmp_path: Path) -> None:
    """Issue 13 §6: `[logging] format = "json"` applies to every command, `mcp-hub migrate` included, without
    `--log-json`."""
    config = write_config(tmp_path, {}, '[logging]\nformat = "json"\nlevel = "debug"\n')
    done = await mcp_hub(config, "migrate")
    assert done.returncode == 0, done.stderr.decode()
    records = _records(done.stderr)
    assert records, "the command logged"
    assert all(set(record) >= ESSENTIALS for record in records)
    assert any(record["event"] == "database upgraded to head" for record in records)


def test_a_call_line_names_the_call_and_never_its_details() -> None:
    """Issue 13 §6; our choice: an audited event's detail (an error text that may quote arguments) and its legacy
    session id (it authenticates the session) stay out of the line; a caller-chosen name is capped."""
    event = AuditEvent(
        at=utc_now(),
        client="x" * 1000,
        session="session-id-that-authenticates",
        public_name="faults__echo",
        connector_id="faults",
        downstream_name="echo",
        outcome=AuditOutcome.TOOL_ERROR,
        latency_ms=12.3456,
        detail="the downstream said: your argument was wrong",
        downstream_ms=10.0,
    )
    with capture_logs() as logs:
        CallLines(logging.INFO)(event)
    assert logs == [
        {
            "event": "tools/call",
            "log_level": "info",
            "method": "tools/call",
            "client": "x" * 256 + "…",
            "tool": "faults__echo",
            "connector": "faults",
            "outcome": "tool_error",
            "latency_ms": 12.35,
            "downstream_ms": 10.0,
        }
    ]
