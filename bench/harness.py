"""What the benchmark scripts share: child processes, the hub's CLI, CPU and event-loop readings, statistics.

Imported by `bench/overhead.py` and `bench/approval_latency.py` (run as scripts, so `bench/` is on `sys.path`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

import httpx2

REPO = Path(__file__).resolve().parent.parent
ECHO_SERVER = Path(__file__).resolve().parent / "echo_server.py"
PYTHON = sys.executable
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None
READY_TIMEOUT_SECONDS = 60.0


class BenchError(RuntimeError):
    """A setup step or a call failed: the numbers would be meaningless."""


def log(message: str, out: TextIO = sys.stderr) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=out, flush=True)


# --- statistics ------------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of unsorted `samples` (q in 0..100)."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class Spread:
    """One figure measured once per round: the median of the rounds, and their range (the noise)."""

    rounds: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(tuple(values))

    def _finite(self) -> list[float]:
        return [value for value in self.rounds if math.isfinite(value)]

    @property
    def median(self) -> float:
        finite = self._finite()
        return statistics.median(finite) if finite else float("nan")

    @property
    def low(self) -> float:
        finite = self._finite()
        return min(finite) if finite else float("nan")

    @property
    def high(self) -> float:
        finite = self._finite()
        return max(finite) if finite else float("nan")

    def as_json(self) -> dict[str, Any]:
        """`{"median", "min", "max", "rounds"}`, NaN (not measured) as null."""
        return {
            "median": finite_or_none(self.median),
            "min": finite_or_none(self.low),
            "max": finite_or_none(self.high),
            "rounds": [finite_or_none(value) for value in self.rounds],
        }

    def show(self, scale: float = 1.0, digits: int = 2, percent: bool = False) -> str:
        """`median [min-max]`, or `-` when nothing was measured."""
        if not self._finite():
            return "-"
        if percent:
            return f"{self.median:.0%} [{self.low:.0%}-{self.high:.0%}]"
        return f"{self.median * scale:.{digits}f} [{self.low * scale:.{digits}f}-{self.high * scale:.{digits}f}]"


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n")


# --- the machine -----------------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc; NaN where unavailable)."""
    if pid is None:
        return float("nan")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return float("nan")
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


def machine_json(busy_before: float) -> dict[str, Any]:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "busy_before": finite_or_none(busy_before),
        "load_average": list(load),
        "python": sys.version.split()[0],
    }


def event_loop_of(pid: int | None) -> str:
    """The event loop (and HTTP parser) a running Python process has loaded: "uvloop+httptools", "asyncio", ...

    Read from the shared objects mapped into the process (/proc/PID/maps): uvicorn and anyio import uvloop only
    when they run on it, so a mapped `uvloop/loop` extension means the process's loop is uvloop.
    """
    if pid is None:
        return "unknown"
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return "unknown"
    loop = "uvloop" if "/uvloop/loop." in maps else "asyncio"
    return f"{loop}+httptools" if "/httptools/parser/" in maps else loop


def children_of(pid: int) -> list[int]:
    """The direct children of process `pid` (Linux /proc/PID/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except (OSError, ValueError):
            continue
    return found


def child_running(pid: int, script: Path) -> int | None:
    """The child of `pid` whose command line runs `script`, if any."""
    for child in children_of(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if str(script).encode() in command:
            return child
    return None


# --- processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def child(command: Sequence[str], log_file: Path) -> Generator[subprocess.Popen[bytes]]:
    """A subprocess logging to `log_file`, terminated (then killed) on exit."""
    with log_file.open("wb") as sink:
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


def tail(log_file: Path, lines: int = 30) -> str:
    return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:]) if log_file.exists() else ""


def hub_command(*args: str, stdin: str | None = None) -> str:
    """Run `mcp-hub ARGS` to completion; its standard output."""
    done = subprocess.run(
        [PYTHON, "-m", "mcp_hub", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        input=stdin,
    )
    if done.returncode != 0:
        raise BenchError(f"mcp-hub {args[0]} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def wait_for_hub(
    base_url: str,
    process: subprocess.Popen[bytes],
    log_file: Path,
    connectors: set[str],
    *,
    timeout_seconds: float = READY_TIMEOUT_SECONDS,
    poll_seconds: float = 0.1,
) -> dict[str, Any]:
    """Poll `/healthz` every `poll_seconds` until each of `connectors` is "ready" (within `timeout_seconds`); the
    last health document."""
    health: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_seconds
    with httpx2.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise BenchError(f"the hub exited ({process.returncode}):\n{tail(log_file)}")
            try:
                health = client.get(f"{base_url}/healthz").json()
            except (httpx2.TransportError, ValueError):
                health = {}
            states: dict[str, Any] = health.get("connectors", {})
            if connectors <= set(states) and all(states[name].get("state") == "ready" for name in connectors):
                return health
            time.sleep(poll_seconds)
    raise BenchError(f"the hub was not ready within {timeout_seconds:g} s: {str(health)[:500]}\n{tail(log_file)}")


# --- configuration ---------------------------------------------------------------------------------------


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with `extra` laid over it: tables merge key by key, anything else in `extra` replaces."""
    result = dict(base)
    for key, value in extra.items():
        current = result.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            result[key] = merged(cast("dict[str, Any]", current), cast("dict[str, Any]", value))
        else:
            result[key] = value
    return result


def toml_text(document: dict[str, Any]) -> str:
    """A TOML document of `document` (tables, arrays of tables, strings, numbers, booleans, lists of those)."""
    lines: list[str] = []
    _toml_table(lines, [], document)
    return "\n".join(lines).strip() + "\n"


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in cast("list[Any]", value)) + "]"
    if isinstance(value, dict):
        items = cast("dict[str, Any]", value).items()
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in items) + " }"
    raise BenchError(f"no TOML for {value!r}")


def _is_table_array(value: Any) -> bool:
    if not isinstance(value, list):
        return False
    items = cast("list[Any]", value)
    return bool(items) and all(isinstance(item, dict) for item in items)


def _toml_table(lines: list[str], path: list[str], table: dict[str, Any]) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and not _is_table_array(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in table.items():
        if isinstance(value, dict):
            lines += ["", f"[{'.'.join(_toml_key(part) for part in [*path, key])}]"]
            _toml_table(lines, [*path, key], cast("dict[str, Any]", value))
        elif _is_table_array(value):
            for item in cast("list[dict[str, Any]]", value):
                lines += ["", f"[[{'.'.join(_toml_key(part) for part in [*path, key])}]]"]
                _toml_table(lines, [*path, key], item)


def extra_config(value: str | None) -> dict[str, Any]:
    """`--extra-config`: TOML text, or `@FILE` for a file of it; merged over the configuration a benchmark writes."""
    if not value:
        return {}
    text = Path(value[1:]).read_text() if value.startswith("@") else value
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BenchError(f"--extra-config is not TOML: {exc}") from exc
