"""Caching and coalescing of the tools an admin marks cacheable (issue 10 §4, §7; threats T27, T25, T19).

Every hub test runs twice: the cache in this process (no `redis_url`) and in Redis (127.0.0.1:6379 db 15 here,
shared by every replica; skipped elsewhere with the reason, never in CI). A real hub with auth on, the fault
fixture's `counted` tool as the real downstream: its answer says how many times it ran (and in which process),
and the audit trail says how each call was answered (`detail` `cached` or `coalesced`, none for a downstream run).
All behaviour here is our choice (MCP says nothing about caching by an intermediary) within issue 10 §4.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_hub.config.settings import CacheRule, CacheSection
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import DownstreamRejectedError
from mcp_hub.limits.cache import CallCache, MemoryResults, RedisResults, ResultStore, Served
from tests.approvals.holding import agent_token
from tests.authz.conftest import client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, unique, write_config
from tests.test_limits import REDIS_URL, modern_call, require_redis

pytestmark = pytest.mark.anyio

GENEROUS = (
    "per_agent = { rate = 1000.0, burst = 1000 }\n"
    "per_agent_connector = { rate = 1000.0, burst = 1000 }\n"
    "per_agent_tool = { rate = 1000.0, burst = 1000 }\n"
    '[[limits.loops]]\ntools = ["*"]\nmax_repeats = 1000\nwindow_seconds = 60\n'
)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def redis_url(request: pytest.FixtureRequest) -> str:
    """'' (the cache in this process) or a Redis URL (shared by replicas)."""
    if request.param == "memory":
        return ""
    await require_redis()
    return REDIS_URL


def cache_toml(redis_url: str, rules: str, extra: str = "") -> str:
    return f'[limits]\nredis_url = "{redis_url}"\n{GENEROUS}[cache]\ncoalesce_wait_seconds = 20\n{rules}{extra}'


def rule(tools: str, ttl: float) -> str:
    return f"[[cache.rules]]\ntools = [{tools}]\nttl_seconds = {ttl}\n"


@pytest.fixture
async def caching_hub(tmp_path: Path, redis_url: str) -> AsyncGenerator[RunningHub]:
    """`faults__counted` cacheable for a minute."""
    config = write_config(
        tmp_path, {"faults": fault_connector()}, cache_toml(redis_url, rule('"faults__counted"', 60)), auth=True
    )
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


async def counted(hub: RunningHub, token: str, key: str, **arguments: Any) -> dict[str, Any]:
    """The result of one `faults__counted` call over 2026-07-28 HTTP."""
    response = await modern_call(hub, token, "faults__counted", {"key": key, **arguments})
    assert response.status_code == 200, response.text
    return response.json()["result"]


def text_of(result: dict[str, Any]) -> str:
    return result["content"][0]["text"]


async def served(hub: RunningHub, public_name: str = "faults__counted") -> list[tuple[AuditOutcome, str | None]]:
    """(outcome, detail) of each audited call of `public_name`, oldest first; detail None: it ran downstream."""
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(limit=500)
    # Calls only: the catalog's review rows (`catalog/review`, issue 11) name the tool too.
    calls = [event for event in reversed(events) if event.method == "tools/call"]
    return [(event.outcome, event.detail) for event in calls if event.public_name == public_name]


async def test_twenty_identical_concurrent_calls_reach_the_downstream_once(caching_hub: RunningHub) -> None:
    """Issue 10 §4: the first runs (half a second downstream), the other nineteen wait for it and get its
    result; each of the twenty is audited, one as a downstream run, nineteen as coalesced (or cached)."""
    token = await agent_token(caching_hub, unique("swarm"), "tool:faults__*")
    key = unique("k")
    results: list[dict[str, Any]] = []

    async def one() -> None:
        results.append(await counted(caching_hub, token, key, seconds=0.5))

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tasks:
            for _ in range(20):
                tasks.start_soon(one)

    texts = {text_of(result) for result in results}
    assert len(results) == 20
    assert len(texts) == 1
    assert texts.pop().startswith(f"{key} run 1 in ")
    rows = await served(caching_hub)
    assert len(rows) == 20
    assert [detail for _, detail in rows].count(None) == 1
    assert {detail for _, detail in rows} <= {None, "coalesced", "cached"}
    assert {outcome for outcome, _ in rows} == {AuditOutcome.OK}


async def test_different_agents_never_share_a_result(caching_hub: RunningHub) -> None:
    """T27: the key holds the caller (agent and user): another agent's identical call runs downstream."""
    first = await agent_token(caching_hub, unique("first"), "tool:faults__*")
    second = await agent_token(caching_hub, unique("second"), "tool:faults__*")
    key = unique("shared-args")

    mine = await counted(caching_hub, first, key)
    theirs = await counted(caching_hub, second, key)
    mine_again = await counted(caching_hub, first, key)

    assert text_of(mine).startswith(f"{key} run 1 ")
    assert text_of(theirs).startswith(f"{key} run 2 ")
    assert text_of(mine_again) == text_of(mine)
    assert [detail for _, detail in await served(caching_hub)] == [None, None, "cached"]


async def test_other_arguments_are_another_call(caching_hub: RunningHub) -> None:
    token = await agent_token(caching_hub, unique("args"), "tool:faults__*")
    key = unique("k")

    plain = await counted(caching_hub, token, key)
    slower = await counted(caching_hub, token, key, seconds=0)

    assert text_of(plain).startswith(f"{key} run 1 ")
    assert text_of(slower).startswith(f"{key} run 2 ")


async def test_error_results_are_never_cached(caching_hub: RunningHub) -> None:
    """Issue 10 §4: a tool error (`isError`) is answered, not stored: the same call runs again."""
    token = await agent_token(caching_hub, unique("unlucky"), "tool:faults__*")
    key = unique("k")

    first = await counted(caching_hub, token, key, error=True)
    second = await counted(caching_hub, token, key, error=True)

    assert (first["isError"], second["isError"]) == (True, True)
    assert text_of(first).startswith(f"{key} run 1 ")
    assert text_of(second).startswith(f"{key} run 2 ")
    assert await served(caching_hub) == [(AuditOutcome.TOOL_ERROR, None), (AuditOutcome.TOOL_ERROR, None)]


async def test_a_cached_result_still_passes_grants_first(caching_hub: RunningHub) -> None:
    """A caller whose grants do not reach the tool gets -32003 whatever is cached (grants come first)."""
    name = unique("narrowed")
    token = await agent_token(caching_hub, name, "tool:faults__*")
    key = unique("k")
    await counted(caching_hub, token, key)
    agent = await make_agent(caching_hub, unique("outsider"), "tool:faults__echo")
    outsider = await client_credentials_token(caching_hub, agent)

    refused = await modern_call(caching_hub, outsider, "faults__counted", {"key": key})

    assert refused.status_code == 403


async def test_a_result_is_served_within_its_ttl_and_fetched_again_after(tmp_path: Path, redis_url: str) -> None:
    """A one-second TTL: the second call is the cached result; once the entry has expired (awaited by calling
    until the downstream runs again, bounded, no fixed sleep) the call runs downstream."""
    config = write_config(
        tmp_path, {"faults": fault_connector()}, cache_toml(redis_url, rule('"faults__*"', 1.0)), auth=True
    )
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        token = await agent_token(hub, unique("ttl"), "tool:faults__*")
        key = unique("k")
        started = anyio.current_time()
        first = await counted(hub, token, key)
        second = await counted(hub, token, key)
        within = anyio.current_time() - started
        with anyio.fail_after(10):
            later = second
            while text_of(later) == text_of(first):
                await anyio.sleep(0.05)
                later = await counted(hub, token, key)
        expired_after = anyio.current_time() - started
        rows = await served(hub)

    assert within < 1.0, "the second call must come within the TTL for this test to mean anything"
    assert text_of(second) == text_of(first)
    assert text_of(later).startswith(f"{key} run 2 ")
    assert expired_after >= 1.0
    assert rows[0] == (AuditOutcome.OK, None)
    assert rows[1] == (AuditOutcome.OK, "cached")
    assert rows[-1] == (AuditOutcome.OK, None)


async def test_a_tool_under_an_approval_rule_is_never_cached(tmp_path: Path, redis_url: str) -> None:
    """Issue 10 §4: a rule that holds `faults__counted` for another agent only still makes the tool uncacheable
    (whatever a cache rule says): this agent's calls are not held, and each runs downstream."""
    approvals = (
        '[[approvals.rules]]\nname = "someone-else"\ntools = ["faults__counted"]\nagents = ["someone-else"]\n'
        'approvers = ["role:approver"]\n'
    )
    config = write_config(
        tmp_path,
        {"faults": fault_connector()},
        cache_toml(redis_url, rule('"faults__*"', 60), "\n" + approvals),
        auth=True,
    )
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        token = await agent_token(hub, unique("unheld"), "tool:faults__*")
        key = unique("k")
        first = await counted(hub, token, key)
        second = await counted(hub, token, key)
        echoes = [
            (await modern_call(hub, token, "faults__echo", {"text": "cacheable"})).json()["result"] for _ in range(2)
        ]
        rows = await served(hub)
        echo_rows = await served(hub, "faults__echo")

    assert text_of(first).startswith(f"{key} run 1 ")
    assert text_of(second).startswith(f"{key} run 2 ")
    assert rows == [(AuditOutcome.OK, None), (AuditOutcome.OK, None)]
    # The same cache rule does cache the connector's other tools.
    assert [text_of(echo) for echo in echoes] == ["cacheable", "cacheable"]
    assert [detail for _, detail in echo_rows] == [None, "cached"]


@pytest.mark.redis
async def test_two_hubs_sharing_redis_serve_one_cached_result(tmp_path: Path) -> None:
    """Issue 10 §7: two replicas (one database, one Redis, each with its own downstream process): a result one
    cached is the other's answer (the text names the process that ran it), and identical calls spread over both
    replicas at once run once."""
    await require_redis()
    config = write_config(
        tmp_path, {"faults": fault_connector()}, cache_toml(REDIS_URL, rule('"faults__counted"', 60)), auth=True
    )
    async with running_hub(config) as first, running_hub(config) as second:
        await first.wait_ready("faults")
        await second.wait_ready("faults")
        agent = await make_agent(first, unique("replicated"), "tool:faults__*")
        tokens = {
            id(first): await client_credentials_token(first, agent),
            id(second): await client_credentials_token(second, agent),
        }
        key = unique("k")
        ran = await counted(first, tokens[id(first)], key)
        elsewhere = await counted(second, tokens[id(second)], key)

        together = unique("together")
        results: list[dict[str, Any]] = []

        async def one(hub: RunningHub) -> None:
            results.append(await counted(hub, tokens[id(hub)], together, seconds=0.5))

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tasks:
                for hub in [first, second] * 10:
                    tasks.start_soon(one, hub)
        await second.hub.audit.flush()
        rows = await served(first)

    assert text_of(elsewhere) == text_of(ran)
    assert len({text_of(result) for result in results}) == 1
    assert text_of(results[0]).startswith(f"{together} run 1 in ")
    # One database: both replicas' audit rows. Two downstream runs in all (one per key), the rest not.
    assert len(rows) == 22
    assert [detail for _, detail in rows].count(None) == 2


# --- the cache alone: leaders that fail, bounds, Redis down ----------------------------------------------------


@pytest.fixture
async def store(redis_url: str) -> AsyncGenerator[ResultStore]:
    chosen: ResultStore = (
        RedisResults(redis_url, prefix=f"test:{uuid.uuid4().hex}:") if redis_url else MemoryResults(100, 1 << 20)
    )
    try:
        yield chosen
    finally:
        await chosen.aclose()


def settings(*, coalesce_wait_seconds: float = 5, max_result_bytes: int = 1 << 20) -> CacheSection:
    return CacheSection(
        rules=[CacheRule(tools=["*"], ttl_seconds=60)],
        coalesce_wait_seconds=coalesce_wait_seconds,
        max_result_bytes=max_result_bytes,
    )


class Downstream:
    """A stand-in call: counts its runs, waits until released, answers a result or raises."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = anyio.Event()
        self.release = anyio.Event()

    async def __call__(self, result: dict[str, Any] | Exception | None = None) -> dict[str, Any]:
        self.runs += 1
        run = self.runs
        self.started.set()
        await self.release.wait()
        if isinstance(result, Exception):
            raise result
        return result if result is not None else {"content": [{"type": "text", "text": f"run {run}"}]}


async def test_a_cancelled_leader_neither_hangs_nor_poisons_the_calls_waiting_for_it(store: ResultStore) -> None:
    """Our choice: when the call that runs is cancelled, the calls waiting for it try again: one of them runs,
    the others get its result."""
    cache = CallCache(settings(), store)
    downstream = Downstream()
    answers: list[tuple[Served, str]] = []

    async def follower() -> None:
        answer = await cache.call("k", 60, downstream)
        answers.append((answer.served, answer.result["content"][0]["text"]))

    leader = anyio.CancelScope()

    async def lead() -> None:
        with leader:
            await cache.call("k", 60, downstream)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(lead)
            await downstream.started.wait()
            for _ in range(5):
                tasks.start_soon(follower)
            await anyio.sleep(0.05)
            leader.cancel()
            await anyio.sleep(0.05)
            downstream.release.set()

    assert downstream.runs == 2
    assert sorted(answers) == [(Served.COALESCED, "run 2")] * 4 + [(Served.RAN, "run 2")]
    assert (await cache.call("k", 60, downstream)).served is Served.CACHED


async def test_a_leaders_error_reaches_the_waiting_calls_and_is_not_cached(store: ResultStore) -> None:
    """Our choice: a JSON-RPC error of the call that ran is the answer of the identical calls that waited for it
    (the same question at the same moment); nothing is cached, so the next call runs again."""
    cache = CallCache(settings(), store)
    downstream = Downstream()
    failure = DownstreamRejectedError("faults", -32000, "remote says no")
    errors: list[Exception] = []

    async def one() -> None:
        try:
            await cache.call("k", 60, lambda: downstream(failure))
        except DownstreamRejectedError as exc:
            errors.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            for _ in range(5):
                tasks.start_soon(one)
            await downstream.started.wait()
            await anyio.sleep(0.05)
            downstream.release.set()
        after = await cache.call("k", 60, downstream)

    assert len(errors) == 5
    assert downstream.runs == 2
    assert after.served is Served.RAN


async def test_input_required_and_personal_results_are_neither_cached_nor_shared(store: ResultStore) -> None:
    cache = CallCache(settings(), store)
    downstream = Downstream()
    downstream.release.set()
    question: dict[str, Any] = {"resultType": "input_required", "inputRequests": {}, "requestState": "s"}

    asked = await cache.call("q", 60, lambda: downstream(question))
    again = await cache.call("q", 60, lambda: downstream(question))
    personal = await cache.call("p", 60, downstream, personal=lambda: True)
    personal_again = await cache.call("p", 60, downstream, personal=lambda: True)

    assert (asked.served, again.served, personal.served, personal_again.served) == (Served.RAN,) * 4
    assert downstream.runs == 4


async def test_a_result_over_the_size_cap_is_answered_but_not_cached(store: ResultStore) -> None:
    cache = CallCache(settings(max_result_bytes=100), store)
    downstream = Downstream()
    downstream.release.set()
    big = {"content": [{"type": "text", "text": "x" * 200}]}

    first = await cache.call("big", 60, lambda: downstream(big))
    second = await cache.call("big", 60, lambda: downstream(big))

    assert first.result == big
    assert (first.served, second.served) == (Served.RAN, Served.RAN)


async def test_a_waiting_call_runs_itself_after_coalesce_wait_seconds(store: ResultStore) -> None:
    """Bounded waits: an identical call in flight for longer than `coalesce_wait_seconds` is not waited for."""
    cache = CallCache(settings(coalesce_wait_seconds=0.2), store)
    stuck = Downstream()
    quick = Downstream()
    quick.release.set()
    answers: list[Served] = []

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(cache.call, "k", 60, stuck)
            await stuck.started.wait()
            answers.append((await cache.call("k", 60, quick)).served)
            stuck.release.set()

    assert (answers, quick.runs) == ([Served.RAN], 1)


@pytest.mark.redis
async def test_replicas_coalesce_through_redis_and_a_cancelled_leader_frees_the_lease() -> None:
    """Two caches over one Redis (two replicas): the second waits for the first's lease; when the first is
    cancelled its lease is released at once and the second runs (well before `coalesce_wait_seconds`)."""
    await require_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    one, two = RedisResults(REDIS_URL, prefix=prefix), RedisResults(REDIS_URL, prefix=prefix)
    first, second = CallCache(settings(), one), CallCache(settings(), two)
    downstream = Downstream()
    leader = anyio.CancelScope()
    answers: list[Served] = []

    async def lead() -> None:
        with leader:
            await first.call("k", 60, downstream)

    try:
        with anyio.fail_after(4):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lead)
                await downstream.started.wait()

                async def on_the_other_replica() -> None:
                    answers.append((await second.call("k", 60, downstream)).served)

                tasks.start_soon(on_the_other_replica)
                await anyio.sleep(0.1)
                assert downstream.runs == 1  # waiting for the lease, not running
                leader.cancel()
                await anyio.sleep(0.1)
                downstream.release.set()
        from_the_first = await first.call("k", 60, downstream)
    finally:
        await one.aclose()
        await two.aclose()

    assert answers == [Served.RAN]
    assert downstream.runs == 2
    assert from_the_first.served is Served.CACHED


async def test_the_memory_store_is_bounded_in_entries_and_bytes() -> None:
    now = [0.0]
    entries = MemoryResults(max_entries=3, max_bytes=1000, clock=lambda: now[0])
    for i in range(5):
        await entries.put(f"k{i}", b"x" * 10, 60)
    by_bytes = MemoryResults(max_entries=100, max_bytes=25, clock=lambda: now[0])
    for i in range(5):
        await by_bytes.put(f"k{i}", b"x" * 10, 60)

    assert entries.size == (3, 30)
    assert [await entries.get(f"k{i}") for i in range(5)][:2] == [None, None]
    assert by_bytes.size == (2, 20)
    now[0] = 61.0
    assert await entries.get("k4") is None


async def test_an_unreachable_redis_is_a_miss_and_health_says_so() -> None:
    """The cache fails open: it only ever saves work, so Redis down means every call runs."""
    store = RedisResults("redis://127.0.0.1:1/0")
    cache = CallCache(settings(), store)
    downstream = Downstream()
    downstream.release.set()
    try:
        answers = [await cache.call("k", 60, downstream) for _ in range(2)]
    finally:
        await store.aclose()

    assert [answer.served for answer in answers] == [Served.RAN, Served.RAN]
    assert store.health()["ok"] is False


def test_the_shipped_config_lists_the_cache_settings_with_their_defaults() -> None:
    """Our choice: config.toml shows every key with its default (the rules are examples, commented out)."""
    from mcp_hub.config.settings import load_settings
    from tests.test_config import REPO

    assert load_settings(REPO / "config.toml").cache == CacheSection()


def test_a_cache_rule_names_tools_or_connectors() -> None:
    with pytest.raises(ValueError, match="names tools"):
        CacheRule(ttl_seconds=5)
    cache = CallCache(
        CacheSection(
            rules=[
                CacheRule(connectors=["time"], ttl_seconds=30),
                CacheRule(tools=["faults__count*"], connectors=["faults"], ttl_seconds=5),
            ]
        ),
        MemoryResults(1, 1),
    )

    assert cache.ttl_for("time", "time__get_current_time") == 30
    assert cache.ttl_for("faults", "faults__counted") == 5
    assert cache.ttl_for("faults", "faults__echo") is None
    assert cache.ttl_for("other", "other__counted") is None
