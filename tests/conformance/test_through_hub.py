"""The official conformance suite's server scenarios through the hub: the fixture server registered as a
connector, the suite run against that connector's profile (`/mcp/s/<connector>`, its tools, prompts and resources
under their own names), in both eras.

The hub is transparent when the suite's verdicts through it are the fixture's own: what `baseline.toml` lists
(the fixture's failures, direct) plus what `baseline_hub.toml` lists (the hub's own, deliberate gaps, each with
its reason), nothing else, and no entry of either that passes. The fixture is a connector twice, over stdio and
over Streamable HTTP, both in the era "auto" (the fixture speaks both, so the hub talks 2026-07-28 to it whatever
era the suite speaks to the hub). One hub without auth, one with auth, where the suite goes through
`header_proxy` with a real agent token granted `tool:*`, `prompt:*` and `resource:*`. Reports land in
test-artifacts/conformance/hub-*.json.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Final, Literal

import mcp_types as types
import pytest
from mcp import Client

from mcp_hub.runtime import profile_path
from tests.approvals.holding import agent_token
from tests.conformance.harness import (
    ERAS,
    HUB_BASELINE,
    Baseline,
    Era,
    compare,
    fixture_over_http,
    fixture_stdio_command,
    run_server_scenarios,
    server_scenarios,
    write_report,
)
from tests.conftest import RunningHub, connector_toml, running_hub, unique, write_config
from tests.npm_peers import require_npm_peers

pytestmark = pytest.mark.node

STDIO: Final = "conf-stdio"
HTTP: Final = "conf-http"
CONNECTORS: Final = (STDIO, HTTP)


async def _hub(directory: Path, *, auth: bool) -> AsyncGenerator[RunningHub]:
    """A hub with the fixture as two connectors: over stdio, and over Streamable HTTP (a process of its own)."""
    require_npm_peers()
    command, args = fixture_stdio_command()
    async with fixture_over_http(directory) as fixture_url:
        connectors = {
            STDIO: connector_toml(id=STDIO, transport="stdio", protocol="auto", command=command, args=args),
            HTTP: connector_toml(id=HTTP, transport="http", protocol="auto", url=fixture_url),
        }
        async with running_hub(write_config(directory, connectors, auth=auth)) as running:
            await running.wait_ready(*CONNECTORS)
            yield running


@pytest.fixture(scope="module")
async def open_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    async for running in _hub(tmp_path_factory.mktemp("conformance-hub"), auth=False):
        yield running


@pytest.fixture(scope="module")
async def auth_hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    async for running in _hub(tmp_path_factory.mktemp("conformance-hub-auth"), auth=True):
        yield running


def _profile(hub: RunningHub, connector: str) -> str:
    return hub.base_url + profile_path(hub.hub.settings, connector)


def _baseline() -> Baseline:
    return Baseline.load().together_with(Baseline.load(HUB_BASELINE))


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_the_hub_fails_only_what_the_fixture_and_the_hubs_baseline_list(
    open_hub: RunningHub, connector: str, era: Era
) -> None:
    """Spec-mandated behaviour, as the suite checks it, through the hub without auth: the fixture's verdicts,
    except the hub's own gaps (baseline_hub.toml, our record, each with its reason)."""
    report = await run_server_scenarios(_profile(open_hub, connector), era=era)
    write_report(report, f"hub-{connector}")
    comparison = compare(report, _baseline())
    assert comparison.ok, f"{comparison.explain()}\n\n{report.summary()}"


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("connector", CONNECTORS)
async def test_with_auth_an_agent_granted_everything_gets_the_same_verdicts(
    auth_hub: RunningHub, connector: str, era: Era
) -> None:
    """Spec-mandated behaviour through the hub with auth on (the suite's requests carry a real agent token by way
    of `header_proxy`): grants that allow everything change no verdict."""
    token = await agent_token(auth_hub, unique("conformance"), "tool:*", "prompt:*", "resource:*")
    report = await run_server_scenarios(
        _profile(auth_hub, connector), era=era, headers={"Authorization": f"Bearer {token}"}
    )
    write_report(report, f"hub-auth-{connector}")
    comparison = compare(report, _baseline())
    assert comparison.ok, f"{comparison.explain()}\n\n{report.summary()}"


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
@pytest.mark.parametrize("region", ["eu-west-1", "Zürich, CH"], ids=["token", "base64"])
async def test_a_forwarded_call_carries_the_mcp_param_headers_its_tool_declares(
    open_hub: RunningHub, era: Literal["legacy", "2026-07-28"], region: str
) -> None:
    """Spec-mandated (2026-07-28 transports, custom headers: a client mirrors an `x-mcp-header` argument into
    `Mcp-Param-<name>`, base64-wrapped when it is not a plain token; a server refuses a call without it, -32020):
    the hub, a client of a 2026-07-28 HTTP downstream, sends the header on each `tools/call` whatever era its own
    caller speaks. Before this was fixed the fixture refused every such call through the hub."""
    async with Client(_profile(open_hub, HTTP), mode=era) as client:
        await client.list_tools()  # a 2026-07-28 caller mirrors the header to the hub only for tools it listed
        result = await client.call_tool("test_custom_headers", {"region": region})
    assert not result.is_error
    assert result.content == [types.TextContent(type="text", text=f"region={region}")]


async def test_every_hub_baseline_entry_names_a_scenario_of_its_era() -> None:
    """Our choice (as for baseline.toml): an entry the suite would never judge again is an error."""
    require_npm_peers()
    baseline = Baseline.load(HUB_BASELINE)
    for era in ERAS:
        known = set(await server_scenarios(era))
        unknown = sorted(key for key in baseline.for_era(era) if key.partition(":")[0] not in known)
        assert not unknown, f"[{era}] in baseline_hub.toml names no scenario of that era: {unknown}"
