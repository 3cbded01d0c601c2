"""Rate limits, quotas and loop breaking keyed on the agent (issue 10 §1, §3, §7, §8; threat T28).

Every test runs twice: limits in this process (no `redis_url`) and in Redis (127.0.0.1:6379 here, shared by every
replica; skipped elsewhere with the reason, never in CI). A real hub with auth on; agents call through raw
2026-07-28 HTTP (where a refusal is HTTP 429 with `Retry-After`) and the SDK's 2025-11-25 client (a tool error
with the same in `_meta`). Every refusal is in the audit trail with its outcome.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncGenerator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.db.limits import LimitStore
from mcp_hub.domain import AgentId, AuditOutcome
from mcp_hub.limits.backends import BucketSpec, CounterSpec, LimitBackend, MemoryLimits, RedisLimits
from mcp_hub.runtime import Stores
from tests.approvals.holding import agent_token
from tests.authz.conftest import bearer, client_credentials_token, make_agent
from tests.cli_process import run_cli
from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config
from tests.conftest import modern_call as raw_modern_call
from tests.test_cli import hub_env

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("MCP_HUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
LIMIT_META = "io.github.mcp-hub/limit"


async def require_redis() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)  # pyright: ignore[reportUnknownMemberType]
    try:
        await client.ping()  # pyright: ignore[reportUnknownMemberType]
    except (RedisError, OSError) as exc:
        reason = f"Redis at {REDIS_URL} is not usable ({exc!r})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis tests (set MCP_HUB_TEST_REDIS_URL)")
        pytest.skip(f"{reason}; start it or set MCP_HUB_TEST_REDIS_URL")
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def redis_url(request: pytest.FixtureRequest) -> str:
    """'' (limits in this process) or a Redis URL (shared by replicas)."""
    if request.param == "memory":
        return ""
    await require_redis()
    return REDIS_URL


def limits_toml(redis_url: str, body: str) -> str:
    return f'[limits]\nredis_url = "{redis_url}"\nredis_key_prefix = "test:{uuid.uuid4().hex}:"\n' + body


@pytest.fixture
async def limited_hub(tmp_path: Path, redis_url: str) -> AsyncGenerator[RunningHub]:
    """Generous agent and connector buckets, a tight one per tool (burst 3, then one call per 10 s), a daily
    quota of 6, and a loop rule of 4 identical calls per minute for `faults__echo`."""
    body = (
        "per_agent = { rate = 100.0, burst = 100 }\n"
        "per_agent_connector = { rate = 100.0, burst = 100 }\n"
        "per_agent_tool = { rate = 0.1, burst = 3 }\n"
        "daily_calls = 6\n"
        '[[limits.loops]]\ntools = ["faults__echo"]\nmax_repeats = 4\nwindow_seconds = 60\n'
        '[[limits.agents]]\nagent = "generous"\nper_agent_tool = { rate = 100.0, burst = 100 }\ndaily_calls = 1000\n'
    )
    config = write_config(tmp_path, {"faults": fault_connector()}, limits_toml(redis_url, body), auth=True)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


async def modern_call(hub: RunningHub, token: str, name: str, arguments: dict[str, Any]) -> httpx2.Response:
    return await raw_modern_call(hub.url, name, arguments, token=token)


async def outcomes(hub: RunningHub, public_name: str) -> list[AuditOutcome]:
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(limit=200)
    return [event.outcome for event in reversed(events) if event.public_name == public_name]


def lowest_retry_after(elapsed_seconds: float) -> float:
    """The least `Retry-After` for the bucket of burst 3 at 0.1/s emptied by calls that took `elapsed_seconds`:
    the next token comes 10 s after the first call took one, so what the calls took (seconds on a loaded machine)
    is already served; one more second for rounding to whole seconds."""
    return 10 - elapsed_seconds - 1


async def test_a_tools_bucket_admits_its_burst_then_answers_429_with_retry_after(limited_hub: RunningHub) -> None:
    """Burst 3 at 0.1/s: three calls pass, the fourth is 429, `Retry-After` 10 s (one token at 0.1/s), JSON-RPC
    -32029 naming the limit; another tool of the same agent is not affected (its own bucket)."""
    token = await agent_token(limited_hub, unique("bursty"), "tool:faults__*")
    started = anyio.current_time()
    passed = [await modern_call(limited_hub, token, "faults__echo", {"text": f"n{i}"}) for i in range(3)]
    refused = await modern_call(limited_hub, token, "faults__echo", {"text": "n3"})
    lowest = lowest_retry_after(anyio.current_time() - started)
    other_tool = await modern_call(limited_hub, token, "faults__fail", {})

    assert [response.status_code for response in passed] == [200, 200, 200]
    assert refused.status_code == 429
    assert lowest <= int(refused.headers["retry-after"]) <= 10
    error = refused.json()["error"]
    assert (error["code"], error["data"]["limit"], error["data"]["error"]) == (-32029, "per_agent_tool", "rate_limited")
    assert lowest <= error["data"]["retryAfterSeconds"] <= 10
    assert other_tool.status_code == 200
    assert (await outcomes(limited_hub, "faults__echo"))[-1] is AuditOutcome.RATE_LIMITED


async def test_a_legacy_session_gets_a_tool_error_with_the_same_information(limited_hub: RunningHub) -> None:
    token = await agent_token(limited_hub, unique("legacy"), "tool:faults__*")
    async with (
        bearer(token) as http,
        Client(streamable_http_client(limited_hub.url, http_client=http), mode="legacy") as client,
    ):
        started = anyio.current_time()
        results = [await client.call_tool("faults__echo", {"text": f"m{i}"}) for i in range(4)]
        lowest = lowest_retry_after(anyio.current_time() - started)

    assert [result.is_error for result in results] == [False, False, False, True]
    refused = results[-1]
    assert refused.meta is not None
    assert refused.meta[LIMIT_META]["limit"] == "per_agent_tool"
    assert lowest <= refused.meta[LIMIT_META]["retryAfterSeconds"] <= 10
    first = refused.content[0]
    assert isinstance(first, types.TextContent)
    assert "rate limit per_agent_tool" in first.text


async def test_the_same_call_repeated_is_stopped_as_a_loop(limited_hub: RunningHub) -> None:
    """Issue 10 §3: the fifth identical `faults__echo` within a minute is stopped (the rule allows 4); other
    arguments are another call. The agent's own tool bucket is wide (`[[limits.agents]]`)."""
    token = await agent_token(limited_hub, "generous", "tool:faults__*")
    same = [await modern_call(limited_hub, token, "faults__echo", {"text": "again"}) for _ in range(5)]
    other = await modern_call(limited_hub, token, "faults__echo", {"text": "something else"})

    assert [response.status_code for response in same] == [200, 200, 200, 200, 429]
    stopped = same[-1].json()["error"]
    assert stopped["data"]["limit"] == "loop"
    assert "stopped a loop" in stopped["message"]
    assert "4 times within 60 s" in stopped["message"]
    assert other.status_code == 200
    assert AuditOutcome.LOOP_STOPPED in await outcomes(limited_hub, "faults__echo")


async def test_a_daily_quota_is_counted_across_tools(limited_hub: RunningHub) -> None:
    """Six calls a day: the seventh, whatever the tool, is refused until the next UTC day."""
    token = await agent_token(limited_hub, unique("quota"), "tool:faults__*")
    answers = [
        await modern_call(limited_hub, token, tool, {"text": str(i)} if tool == "faults__echo" else {})
        for i, tool in enumerate(["faults__echo"] * 3 + ["faults__fail"] * 3 + ["faults__fail"])
    ]

    assert [answer.status_code for answer in answers] == [200] * 6 + [429]
    refused = answers[-1].json()["error"]
    assert (refused["data"]["limit"], refused["data"]["error"]) == ("daily_calls", "quota_exceeded")
    assert 0 < refused["data"]["retryAfterSeconds"] <= 86_401


async def test_limits_apply_per_agent(limited_hub: RunningHub) -> None:
    first = await agent_token(limited_hub, unique("one"), "tool:faults__*")
    second = await agent_token(limited_hub, unique("two"), "tool:faults__*")
    for i in range(3):
        await modern_call(limited_hub, first, "faults__echo", {"text": f"x{i}"})

    assert (await modern_call(limited_hub, first, "faults__echo", {"text": "x3"})).status_code == 429
    assert (await modern_call(limited_hub, second, "faults__echo", {"text": "x3"})).status_code == 200


@pytest.mark.redis
async def test_two_hubs_sharing_redis_enforce_one_limit(tmp_path: Path) -> None:
    """Issue 10 §7: two hub replicas (one database, one Redis) admit the agent's burst once between them."""
    await require_redis()
    body = "per_agent_tool = { rate = 0.1, burst = 4 }\n"
    config = write_config(tmp_path, {"faults": fault_connector()}, limits_toml(REDIS_URL, body), auth=True)
    async with running_hub(config) as first, running_hub(config) as second:
        await first.wait_ready("faults")
        await second.wait_ready("faults")
        # One agent (one database); each replica issues it a token for its own URL, as clients behind a load
        # balancer would get for the shared one.
        agent = await make_agent(first, unique("replicated"), "tool:faults__*")
        tokens = {
            id(first): await client_credentials_token(first, agent),
            id(second): await client_credentials_token(second, agent),
        }
        statuses = [
            (await modern_call(hub, tokens[id(hub)], "faults__echo", {"text": f"r{i}"})).status_code
            for i, hub in enumerate([first, second] * 3)
        ]

    assert statuses == [200, 200, 200, 200, 429, 429]


@pytest.mark.parametrize("on_failure", ["open", "closed"])
async def test_an_unreachable_redis_fails_open_or_closed_as_configured_and_health_says_so(
    tmp_path: Path, on_failure: str
) -> None:
    body = f'on_backend_failure = "{on_failure}"\nquotas_on_backend_failure = "{on_failure}"\n'
    config = write_config(
        tmp_path, {"faults": fault_connector()}, limits_toml("redis://127.0.0.1:1/0", body), auth=True
    )
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        token = await agent_token(hub, unique("unlucky"), "tool:faults__*")
        answer = await modern_call(hub, token, "faults__echo", {"text": "hi"})
        async with httpx2.AsyncClient() as http:
            health = (await http.get(f"{hub.base_url}/healthz")).json()

    assert answer.status_code == (200 if on_failure == "open" else 429)
    assert health["limits"]["backend"] == "redis"
    assert health["limits"]["ok"] is False


# --- the backends alone ----------------------------------------------------------------------------------------


@pytest.fixture
async def backend(redis_url: str) -> AsyncGenerator[LimitBackend]:
    chosen: LimitBackend = RedisLimits(redis_url, prefix=f"test:{uuid.uuid4().hex}:") if redis_url else MemoryLimits()
    try:
        yield chosen
    finally:
        await chosen.aclose()


async def test_admission_is_all_or_nothing(backend: LimitBackend) -> None:
    """A call refused by one bucket spends no token of the others, and counts in no counter."""
    wide = BucketSpec("wide", 0.001, 5, "per_agent")
    narrow = BucketSpec("narrow", 0.001, 1, "per_agent_tool")
    counter = CounterSpec("day", 10, 3600, "daily_calls")

    first = await backend.admit([wide, narrow], [counter])
    second = await backend.admit([wide, narrow], [counter])
    wide_alone = [await backend.admit([wide], []) for _ in range(4)]

    assert first.allowed
    assert (second.allowed, second.refused_by) == (False, "per_agent_tool")
    assert second.retry_after_seconds > 900
    assert [verdict.allowed for verdict in wide_alone] == [True, True, True, True]
    assert await backend.counts(["day"]) == [1]


async def test_a_counter_refuses_at_its_limit_and_says_when_it_resets(backend: LimitBackend) -> None:
    counter = CounterSpec("loop", 2, 60, "loop")
    verdicts = [await backend.admit([], [counter]) for _ in range(3)]

    assert [verdict.allowed for verdict in verdicts] == [True, True, False]
    assert verdicts[-1].refused_by == "loop"
    assert 0 < verdicts[-1].retry_after_seconds <= 60


async def test_limits_show_prints_an_agents_limits_and_use(limited_hub: RunningHub, redis_url: str) -> None:
    """Issue 10 §8: `mcp-hub limits show AGENT --json` beside the running hub: the agent's limits (its own
    override applied), its calls recorded today, and with Redis the live quota counter."""
    name = unique("shown")
    token = await agent_token(limited_hub, name, "tool:faults__*")
    for i in range(2):
        await modern_call(limited_hub, token, "faults__echo", {"text": f"s{i}"})
    await limited_hub.hub.audit.flush()
    config = limited_hub.hub.settings.config_path

    completed = await run_cli(["limits", "show", name, "--json", "--config", str(config)], env=hub_env())
    unknown = await run_cli(["limits", "show", "nobody-at-all", "--config", str(config)], env=hub_env())

    assert completed.returncode == 0, completed.stderr.decode()
    report = json.loads(completed.stdout)
    assert report["limits"]["per_agent_tool"] == {"rate": 0.1, "burst": 3}
    assert report["limits"]["daily_calls"] == 6
    assert report["recorded_calls"]["today"] == 2
    if redis_url:
        assert report["quota_counters"] == {"daily_calls": 2}
    assert unknown.returncode == 1
    assert "nobody-at-all" in unknown.stderr.decode()


async def test_an_agents_own_limits_set_from_the_cli_apply_and_clear(limited_hub: RunningHub) -> None:
    """Issue 10 §1 (per agent, CLI): `limits set` widens one agent's tool bucket in the running hub; bad values
    are refused naming the option (exit 2); `limits clear` drops them."""
    name = unique("widened")
    token = await agent_token(limited_hub, name, "tool:faults__*")
    config = str(limited_hub.hub.settings.config_path)

    async def cli(*args: str) -> tuple[int, str]:
        done = await run_cli(["limits", *args, "--config", config], env=hub_env())
        return done.returncode, (done.stdout + done.stderr).decode()

    widened = await cli("set", name, "--per-agent-tool", "100/50", "--daily-calls", "100")
    statuses = [
        (await modern_call(limited_hub, token, "faults__echo", {"text": f"w{i}"})).status_code for i in range(6)
    ]
    bad = await cli("set", name, "--per-agent-tool", "fast")
    negative = await cli("set", name, "--daily-calls", "-1")
    shown = await cli("show", name, "--json")
    cleared = await cli("clear", name)

    assert widened[0] == 0, widened[1]
    assert statuses == [200] * 6  # the configured tool bucket (burst 3) would have refused the fourth
    assert bad[0] == 2
    assert "--per-agent-tool: expected RATE/BURST" in bad[1]
    assert negative[0] == 2
    assert "daily_calls" in negative[1]
    assert json.loads(shown[1])["limits"]["per_agent_tool"] == {"rate": 100.0, "burst": 50}
    assert cleared == (0, f"{name}: own limits dropped\n")
    assert await limited_hub.hub.stores.limits.agent_limits(await agent_id(limited_hub, name)) is None


async def agent_id(hub: RunningHub, name: str) -> AgentId:
    return (await hub.hub.stores.identities.agent_by_name(name)).id


class CountingLimitStore(LimitStore):
    """The real store, counting how often the hub reads an agent's own limits."""

    reads = 0

    async def agent_limits(self, agent_id: AgentId) -> dict[str, Any] | None:
        CountingLimitStore.reads += 1
        return await super().agent_limits(agent_id)


async def test_the_hot_path_reads_an_agents_own_limits_through_the_cache(tmp_path: Path) -> None:
    """Speed (guide: no database round trip a cache can answer): ten calls of an agent without limits of its own
    read the store once within `decision_cache_seconds`, not once per call."""
    config = write_config(tmp_path, {"faults": fault_connector()}, "[auth]\ndecision_cache_seconds = 30\n", auth=True)

    def stores(engine: AsyncEngine) -> Stores:
        return replace(Stores.over(engine), limits=CountingLimitStore(engine))

    CountingLimitStore.reads = 0
    async with running_hub(config, stores=stores) as hub:
        await hub.wait_ready("faults")
        token = await agent_token(hub, unique("cached"), "tool:faults__*")
        answers = [await modern_call(hub, token, "faults__echo", {"text": f"c{i}"}) for i in range(10)]

    assert [answer.status_code for answer in answers] == [200] * 10
    assert CountingLimitStore.reads == 1
