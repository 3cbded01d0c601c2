"""The official conformance suite's server scenarios against the fixture server directly, in both eras.

What the fixture fails is exactly what tests/conformance/baseline.toml lists: any other failure fails, and so does
an entry that passes, so the baseline stays honest. Each run's report lands in test-artifacts/conformance/.
The same runs through `header_proxy` (with an `Authorization` header the fixture ignores) show that the proxy a
run "with a token" needs changes no verdict.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from tests.conformance.harness import (
    ERAS,
    Baseline,
    Era,
    compare,
    fixture_over_http,
    run_server_scenarios,
    server_scenarios,
    write_report,
)
from tests.npm_peers import require_npm_peers

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
async def fixture_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[str]:
    """The fixture server over Streamable HTTP (both eras on one endpoint), shared by this module's runs."""
    require_npm_peers()
    async with fixture_over_http(Path(tmp_path_factory.mktemp("conformance-fixture"))) as url:
        yield url


@pytest.mark.parametrize("era", ERAS)
async def test_the_fixture_fails_exactly_the_scenarios_its_baseline_lists(fixture_url: str, era: Era) -> None:
    """Spec-mandated behaviour, as the suite's scenarios check it; the baseline (our record) names what the
    fixture does not implement, with the reason."""
    report = await run_server_scenarios(fixture_url, era=era)
    write_report(report, "direct")
    comparison = compare(report, Baseline.load())
    assert comparison.ok, f"{comparison.explain()}\n\n{report.summary()}"


@pytest.mark.parametrize("era", ERAS)
async def test_the_suite_judges_the_fixture_alike_through_the_header_proxy(fixture_url: str, era: Era) -> None:
    """Our choice (the proxy is our test helper for runs with a token): through `header_proxy`, every scenario,
    SSE streams, stream resumption and the DNS-rebinding probes included, has the verdict it has directly."""
    report = await run_server_scenarios(fixture_url, era=era, headers={"Authorization": "Bearer not-checked"})
    write_report(report, "direct-via-header-proxy")
    comparison = compare(report, Baseline.load())
    assert comparison.ok, f"{comparison.explain()}\n\n{report.summary()}"


async def test_every_baseline_entry_names_a_scenario_of_its_era() -> None:
    """Our choice: an entry for a scenario the suite no longer runs at that era (renamed, removed, moved) would
    never be judged again, so it is an error."""
    require_npm_peers()
    baseline = Baseline.load()
    for era in ERAS:
        known = set(await server_scenarios(era))
        unknown = sorted(key for key in baseline.for_era(era) if key.partition(":")[0] not in known)
        assert not unknown, f"[{era}] in baseline.toml names no scenario of that era: {unknown}"
