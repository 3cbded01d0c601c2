"""The benchmark harness runs end to end and writes every figure (bench/overhead.py, bench/approval_latency.py,
bench/chart.py, in their quickest modes); the figures themselves are not asserted (docs/benchmarks.md).

They start real hubs, echo servers and (for replicas) PostgreSQL and Redis databases of their own, so together
they take a minute or more on a busy 2-core machine: they run only when `MCP_HUB_BENCH_SMOKE=1` is set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests.db.conftest import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV
from tests.test_limits import REDIS_URL, require_redis

BENCH = Path(__file__).resolve().parent.parent / "bench"
RUN_TIMEOUT_SECONDS = 200

pytestmark = pytest.mark.skipif(
    os.environ.get("MCP_HUB_BENCH_SMOKE") != "1",
    reason="the benchmark smoke runs take a minute or more: set MCP_HUB_BENCH_SMOKE=1",
)

LATENCY_FIGURES = {
    "added_p50_ms",
    "added_p99_ms",
    "direct_p50_ms",
    "direct_p99_ms",
    "hub_p50_ms",
    "hub_p99_ms",
    "hub_cpu_ms_per_call",
    "gen_cpu_ms_per_call_direct",
    "gen_cpu_ms_per_call_hub",
}
THROUGHPUT_FIGURES = {"ratio", "direct_rps", "hub_rps", "direct_p50_ms", "hub_p50_ms", "hub_cpu_ms_per_call"}
APPROVAL_FIGURES = {"decision_to_call_ms", "sent_to_call_ms", "decision_to_answer_ms"}


def run_script(script: str, *args: str) -> str:
    """Run `bench/SCRIPT ARGS`; its standard output (the run must succeed)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "MCP_HUB_DATABASE_URL"},
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def assert_spread(figure: dict[str, Any]) -> None:
    """A figure measured per round: a median inside its min-max, one value per round."""
    assert figure["median"] is not None, figure
    assert figure["min"] <= figure["median"] <= figure["max"], figure
    assert len(figure["rounds"]) >= 2, figure


@pytest.fixture(scope="module")
def overhead_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "overhead.json"
    quickest = ["--driver", "raw", "--no-wrk", "--calls", "20", "--latency-rounds", "2", "--rounds", "2"]
    report = run_script("overhead.py", *quickest, "--seconds", "0.2", "--json", str(out))
    assert "added p50" in report
    return out


@pytest.fixture(scope="module")
def approval_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "approval_latency.json"
    report = run_script("approval_latency.py", "--setup", "single", "--rounds", "2", "--phase", "0", "--json", str(out))
    assert "decision -> downstream call" in report
    return out


def test_overhead_reports_every_figure_for_both_downstreams_and_auth_modes(overhead_json: Path) -> None:
    doc = json.loads(overhead_json.read_text())
    rows = {(row["kind"], row["downstream"], row["auth"]): row for row in doc["rows"]}
    expected = {
        (kind, down, auth) for kind in ("latency", "throughput") for down in ("http", "stdio") for auth in ("on", "off")
    }
    assert set(rows) == expected
    for (kind, _, _), row in rows.items():
        figures = LATENCY_FIGURES if kind == "latency" else THROUGHPUT_FIGURES
        assert figures <= set(row["figures"])
        for name in figures:
            assert_spread(row["figures"][name])
    assert doc["targets"] == {"added_p50_ms": 0.5, "throughput_ratio": 0.8}
    loops: dict[str, str] = doc["event_loops"]
    hub_loops = {loop.split("+")[0] for name, loop in loops.items() if name.startswith("hub")}
    echo_loops = {loop.split("+")[0] for name, loop in loops.items() if name.startswith("echo")}
    assert len(hub_loops) == 1
    assert hub_loops == echo_loops  # the hub and its downstreams on the same kind of event loop


def test_approval_latency_reports_every_figure(approval_json: Path) -> None:
    doc = json.loads(approval_json.read_text())
    (setup,) = doc["setups"]
    assert setup["name"] == "single"
    assert setup["rounds"] == 2
    assert set(setup["figures"]) == APPROVAL_FIGURES
    for figure in setup["figures"].values():
        assert figure["p50"] is not None
        assert figure["p99"] is not None
        assert_spread(figure)


def test_the_chart_draws_every_run(overhead_json: Path, approval_json: Path, tmp_path: Path) -> None:
    out = tmp_path / "chart.svg"
    run_script("chart.py", str(overhead_json), str(approval_json), "--out", str(out))
    root = ElementTree.fromstring(out.read_text())  # noqa: S314 -- our own chart, not untrusted input
    labels = {element.text for element in root.iter("{http://www.w3.org/2000/svg}text")}
    assert "overhead · http raw auth on" in labels
    assert "overhead · stdio raw auth off" in labels
    assert "approval_latency · single (1 replica)" in labels
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))
    assert len(circles) == 8 + 1 + 3  # 8 overhead rows, 1 approval setup, 3 legend dots


@pytest.mark.postgres
@pytest.mark.redis
def test_approval_latency_across_two_replicas(tmp_path: Path) -> None:
    anyio.run(require_redis)
    out = tmp_path / "approval_latency.json"
    servers = ["--postgres-url", os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL), "--redis-url", REDIS_URL]
    run_script(
        "approval_latency.py", "--setup", "replicas", *servers, "--rounds", "2", "--phase", "0", "--json", str(out)
    )
    (setup,) = json.loads(out.read_text())["setups"]
    assert (setup["name"], setup["replicas"], setup["database"]) == ("replicas", 2, "postgresql")
    for figure in setup["figures"].values():
        assert_spread(figure)


def test_the_proxy_floor_relays_through_every_proxy_and_reports_each() -> None:
    """bench/proxy_floor.py: each thin proxy relays the echo's answer (the run checks it) and gets its row."""
    report = run_script("proxy_floor.py", "--calls", "20", "--rounds", "1")
    rows = {line.split()[0]: line.split() for line in report.splitlines()[2:]}
    assert set(rows) == {"direct", "asgi+aiohttp", "asgi+http1", "protocols"}
    assert all(len(row) == 5 and row[-1] != "nan" for name, row in rows.items() if name != "direct"), rows
