"""How a conformance report is judged against a baseline (`harness.compare`, `Baseline.load`): pure functions,
tested on made-up reports, so that a direct run and a run through the hub are judged by rules we know."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conformance.harness import HUB_BASELINE, Baseline, Check, ScenarioReport, ScenarioResult, compare


def _scenario(name: str, **statuses: str) -> ScenarioResult:
    return ScenarioResult(
        name, checks=tuple(Check(id=check, status=s, description=check) for check, s in statuses.items())
    )


def _report(*results: ScenarioResult) -> ScenarioReport:
    return ScenarioReport(url="http://127.0.0.1:1/mcp", era="2026-07-28", results={r.scenario: r for r in results})


def test_a_failure_the_baseline_does_not_list_is_unexpected_and_a_warning_counts_as_a_failure() -> None:
    """Our choice, the suite's --expected-failures rule: FAILURE and WARNING fail a scenario; INFO and SKIPPED do
    not."""
    report = _report(
        _scenario("ok", a="SUCCESS", b="INFO", c="SKIPPED"),
        _scenario("warns", a="SUCCESS", b="WARNING"),
        _scenario("fails", a="FAILURE"),
    )
    comparison = compare(report, Baseline({}))
    assert report.passed == ["ok"]
    assert [item.partition(":")[0] for item in comparison.unexpected] == ["warns", "fails"]
    assert not comparison.ok


def test_a_whole_scenario_entry_excuses_every_failing_check_and_is_stale_once_the_scenario_passes() -> None:
    """Our choice: a baseline entry must keep failing, or the baseline would hide that something got fixed."""
    baseline = Baseline({"2026-07-28": {"fails": "known", "passes": "was known"}})
    comparison = compare(
        _report(_scenario("fails", a="FAILURE", b="WARNING"), _scenario("passes", a="SUCCESS")), baseline
    )
    assert comparison.unexpected == ()
    assert comparison.stale == ("passes (was known)",)
    assert len(comparison.expected) == 1


def test_a_check_entry_excuses_that_check_only() -> None:
    """Our choice, as the suite's `scenario:check-id` entries: the other checks of the scenario are still judged;
    an excused check that passes is stale, one that is absent (a scenario bailing out early) is tolerated."""
    baseline = Baseline(
        {"2026-07-28": {"s:known": "why", "s:fixed": "was broken", "s:absent": "not reached", "t:known": "why"}}
    )
    report = _report(_scenario("s", known="FAILURE", fixed="SUCCESS", other="FAILURE"), _scenario("t", known="SUCCESS"))
    comparison = compare(report, baseline)
    assert comparison.unexpected == ("s: other FAILURE: other",)
    assert comparison.stale == ("s:fixed (was broken)", "t:known (why)")
    assert comparison.expected == ("s: known FAILURE: known",)


def test_a_scenario_that_gave_no_result_fails_unless_baselined_whole() -> None:
    """Our choice: a crashed or timed-out scenario process is a failure, and a check entry does not excuse it."""
    crashed = ScenarioResult("s", error="no checks.json")
    assert compare(_report(crashed), Baseline({"2026-07-28": {"s:x": "why"}})).unexpected == ("s: no checks.json",)
    assert compare(_report(crashed), Baseline({"2026-07-28": {"s": "why"}})).ok
    assert compare(_report(crashed), Baseline({})).unexpected == ("s: no checks.json",)


def test_entries_of_another_era_do_not_apply() -> None:
    """Spec-mandated that eras differ (a scenario runs at its era's wire), so each era has its own entries."""
    comparison = compare(_report(_scenario("s", a="FAILURE")), Baseline({"2025-11-25": {"s": "legacy only"}}))
    assert comparison.unexpected == ("s: a FAILURE: a",)


def test_the_checked_in_baseline_loads(tmp_path: Path) -> None:
    """Our choice: tables are eras, every entry has a non-empty reason; the checked-in file obeys."""
    assert Baseline.load().for_era("2026-07-28")
    (tmp_path / "era.toml").write_text('["2024-01-01"]\ns = "why"\n')
    with pytest.raises(ValueError, match="tables must be eras"):
        Baseline.load(tmp_path / "era.toml")
    (tmp_path / "reason.toml").write_text('["2025-11-25"]\ns = ""\n')
    with pytest.raises(ValueError, match="needs its reason"):
        Baseline.load(tmp_path / "reason.toml")


def test_the_hubs_baseline_adds_to_the_fixtures_and_may_not_repeat_an_entry() -> None:
    """Our choice: a run through the hub is judged by the fixture's entries and the hub's together (both checked-in
    files load and do not overlap); one failure has one reason, so an entry in both is an error."""
    both = Baseline.load().together_with(Baseline.load(HUB_BASELINE))
    fixture = Baseline({"2026-07-28": {"a": "the fixture's"}})
    hub = Baseline({"2026-07-28": {"b:c": "the hub's"}, "2025-11-25": {"d": "the hub's"}})

    assert set(both.for_era("2026-07-28")) >= set(Baseline.load().for_era("2026-07-28"))
    assert fixture.together_with(hub).entries == {
        "2025-11-25": {"d": "the hub's"},
        "2026-07-28": {"a": "the fixture's", "b:c": "the hub's"},
    }
    with pytest.raises(ValueError, match=r"\[2026-07-28\] entries in both baselines: a"):
        fixture.together_with(Baseline({"2026-07-28": {"a": "again"}}))
