"""The one decision point: grants decide, token scopes cap, revocation takes effect within a stated bound.

T10 (scope escalation): property tests compare `Access.allows`, `scopes.covers` and `scopes.narrow`
with a reference oracle (`fnmatch`, which shares our two wildcards `*` and `?`) over random grants, token
scopes and public names; end to end, a token narrower than the grants caps lists and calls, and a grant
added after issuance does not widen an existing token. T09 (revoked access still works): removing a grant
or disabling an agent in another process takes effect within `auth.decision_cache_seconds`; in the same
process, at once. Grants as the source of truth and tokens as a cap are our design (MCP's authorization
spec leaves scope semantics to the server); RFC 6749 §3.3 lets the server narrow requested scopes.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_hub.authz import scopes
from mcp_hub.authz.decisions import Access
from mcp_hub.gateway.errors import FORBIDDEN as FORBIDDEN_CODE
from mcp_hub.runtime import Authorization, admin_tools
from mcp_hub.ttl_cache import TtlCache
from tests.authz.conftest import auth_service, bearer, client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

# --- T10: properties against a reference oracle ------------------------------------------------------------

NAME_CHARS = "ab_."
"""Few characters, so random names and globs collide often (the interesting cases)."""
GLOB_CHARS = NAME_CHARS + "*?"

names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=8)
globs = st.text(alphabet=GLOB_CHARS, min_size=1, max_size=6)
patterns = st.builds("{}:{}".format, st.sampled_from(["tool", "tool", "tool", "prompt"]), globs)
pattern_sets = st.lists(patterns, max_size=5)


def oracle_matches(pattern: str, kind: str, name: str) -> bool:
    """The reference: same kind, and `fnmatch` (whose `*`/`?` mean what ours mean) over the glob."""
    pattern_kind, _, glob = pattern.partition(":")
    return pattern_kind == kind and fnmatch.fnmatchcase(name, glob)


def oracle_any(patterns: list[str], name: str) -> bool:
    return any(oracle_matches(pattern, "tool", name) for pattern in patterns)


@st.composite
def instance_of(draw: st.DrawFn, glob: str) -> str:
    """A name the glob matches: each `*` replaced by a random run, each `?` by one random character."""
    parts: list[str] = []
    for char in glob:
        if char == "*":
            parts.append(draw(st.text(alphabet=NAME_CHARS, max_size=3)))
        elif char == "?":
            parts.append(draw(st.sampled_from(NAME_CHARS)))
        else:
            parts.append(char)
    return "".join(parts)


@st.composite
def narrowed(draw: st.DrawFn, glob: str) -> str:
    """A glob that can only match what `glob` matches: `*` becomes any glob run, `?` a character or `?`."""
    parts: list[str] = []
    for char in glob:
        if char == "*":
            parts.append(draw(st.text(alphabet=GLOB_CHARS, max_size=3)))
        elif char == "?":
            parts.append(draw(st.sampled_from(NAME_CHARS + "?")))
        else:
            parts.append(char)
    # Empty only when `glob` is all `*`: then any glob is narrower, and a pattern needs one character.
    return "".join(parts) or "?"


def test_every_generated_pattern_is_a_valid_grant_pattern() -> None:
    """Our choice: the generators stay inside the accepted grammar (else the properties prove nothing)."""
    for pattern in ("tool:a*", "prompt:?_.b", "tool:*"):
        assert scopes.validate_pattern(pattern) == pattern


@settings(max_examples=400)
@given(grants=pattern_sets, token_scopes=st.none() | pattern_sets, name=names)
def test_tool_access_allows_exactly_what_a_grant_and_a_token_scope_both_match(
    grants: list[str], token_scopes: list[str] | None, name: str
) -> None:
    """T10, our design: allowed iff some grant matches and (no token cap, or some token scope matches)."""
    access = Access(grants=tuple(grants), token_scopes=None if token_scopes is None else tuple(token_scopes))
    expected = oracle_any(grants, name) and (token_scopes is None or oracle_any(token_scopes, name))
    assert access.allows(name) is expected


@settings(max_examples=400)
@given(granted=patterns, requested=patterns, data=st.data())
def test_covers_is_sound_every_name_the_requested_scope_matches_the_grant_matches(
    granted: str, requested: str, data: st.DataObject
) -> None:
    """T10: if `covers(g, r)`, no name matched by r escapes g (a token can never exceed its grants)."""
    if not scopes.covers(granted, requested):
        return
    kind, _, glob = requested.partition(":")
    name = data.draw(instance_of(glob))
    assert oracle_matches(requested, kind, name)  # the instance generator is right
    assert oracle_matches(granted, kind, name)


@given(grants=pattern_sets, token_scopes=st.none() | pattern_sets, name=names)
def test_access_that_allows_every_tool_refuses_no_name(
    grants: list[str], token_scopes: list[str] | None, name: str
) -> None:
    """Our choice: the bearer middleware skips reading the body when the caller's access can refuse nothing."""
    access = Access(
        grants=(*grants, "tool:*"), token_scopes=None if token_scopes is None else (*token_scopes, "tool:*")
    )
    assert access.allows_every_tool
    assert access.allows(name)
    assert not Access(grants=tuple(grants), token_scopes=None).allows_every_tool or "tool:*" in grants


@settings(max_examples=400)
@given(grants=pattern_sets, token_scopes=st.none() | pattern_sets, name=names, kind=st.sampled_from(["tool", "prompt"]))
def test_a_visibility_sees_exactly_what_access_allows(
    grants: list[str], token_scopes: list[str] | None, name: str, kind: str
) -> None:
    """T10, T27: the canonical context that keys cached list pages decides every name as `Access.allows` does."""
    access = Access(grants=tuple(grants), token_scopes=None if token_scopes is None else tuple(token_scopes))
    predicate = access.visibility(kind).predicate()
    seen = True if predicate is None else predicate(name)
    assert seen is access.allows(name, kind)


@settings(max_examples=400)
@given(
    first=st.tuples(pattern_sets, st.none() | pattern_sets),
    second=st.tuples(pattern_sets, st.none() | pattern_sets),
    name=names,
)
def test_callers_with_one_visibility_are_allowed_the_same_names(
    first: tuple[list[str], list[str] | None], second: tuple[list[str], list[str] | None], name: str
) -> None:
    """T27: two callers share list pages only if their `Visibility` is equal, and then no name tells them apart."""
    one, other = (
        Access(grants=tuple(grants), token_scopes=None if capped is None else tuple(capped))
        for grants, capped in (first, second)
    )
    if one.visibility("tool") == other.visibility("tool"):
        assert one.allows(name) is other.allows(name)


def test_equivalent_grant_sets_have_one_visibility() -> None:
    """Our choice: the key is canonical, so agents whose grants differ only in form share their pages."""
    wide = Access(grants=("tool:*", "prompt:x"), token_scopes=None)
    assert wide.visibility("tool") == Access(grants=("tool:a*", "tool:*"), token_scopes=("tool:*",)).visibility("tool")
    assert wide.visibility("tool").everything
    narrow = Access(grants=("tool:b*", "tool:a*"), token_scopes=None).visibility("tool")
    assert narrow == Access(grants=("tool:a*", "tool:b*", "tool:a*"), token_scopes=("tool:*",)).visibility("tool")
    assert narrow != Access(grants=("tool:a*", "tool:b*"), token_scopes=("tool:a*",)).visibility("tool")
    assert Access(grants=("prompt:*",), token_scopes=None).visibility("tool").nothing
    assert Access(grants=("tool:*",), token_scopes=("prompt:*",)).visibility("tool").nothing


@settings(max_examples=300)
@given(granted=patterns, data=st.data())
def test_a_scope_narrowed_from_a_grant_is_covered_and_matches_nothing_more(granted: str, data: st.DataObject) -> None:
    """T10: `covers` accepts every textual narrowing of a grant (so asking for less works), and stays sound."""
    kind, _, glob = granted.partition(":")
    requested_glob = data.draw(narrowed(glob))
    requested = f"{kind}:{requested_glob}"
    assert scopes.covers(granted, requested)
    name = data.draw(instance_of(requested_glob))
    assert oracle_matches(granted, kind, name)


@given(pattern=patterns, other_kind_glob=globs)
def test_covers_is_reflexive_wildcard_covers_its_kind_and_kinds_never_mix(pattern: str, other_kind_glob: str) -> None:
    """T10, our choice: a grant covers itself; `<kind>:*` covers every pattern of that kind, no other kind."""
    kind, _, _ = pattern.partition(":")
    other = "resource" if kind != "resource" else "tool"
    assert scopes.covers(pattern, pattern)
    assert scopes.covers(f"{kind}:*", pattern)
    assert not scopes.covers(f"{other}:*", pattern)
    assert not scopes.covers(pattern, f"{other}:{other_kind_glob}")


@settings(max_examples=400)
@given(requested=st.none() | pattern_sets, granted=pattern_sets, data=st.data())
def test_narrow_gives_a_token_no_name_its_grants_would_refuse(
    requested: list[str] | None, granted: list[str], data: st.DataObject
) -> None:
    """T10, RFC 6749 §3.3: each issued scope is covered by a grant AND by a request (requested ∩ granted,
    taken both ways: `tool:*` asked, `tool:time__*` granted ⇒ `tool:time__*`); nothing requested ⇒ all granted."""
    narrowed = scopes.narrow(requested, granted)
    if requested is None:
        assert narrowed == sorted(set(granted))
        return
    assert all(any(scopes.covers(grant, scope) for grant in granted) for scope in narrowed)
    assert all(any(scopes.covers(item, scope) for item in requested) for scope in narrowed)
    assert set(requested) & set(granted) <= set(narrowed)  # asking for exactly a grant always gets it
    for scope in narrowed:
        kind, _, glob = scope.partition(":")
        name = data.draw(instance_of(glob))
        assert any(oracle_matches(grant, kind, name) for grant in granted)
        assert any(oracle_matches(item, kind, name) for item in requested)


# --- end to end: the token caps the grants ------------------------------------------------------------------

DECISION_CACHE_SECONDS = 0.2
REVOCATION_SLACK_SECONDS = 2.0
"""How much later than the cache bound a revocation may show on a loaded CI machine (polling, scheduling)."""
MODERN_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2026-07-28",
}
ENVELOPE: dict[str, Any] = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """An auth-enabled hub whose decisions may be at most 0.2 s stale; each test makes its own agents."""
    config = write_config(
        tmp_path_factory.mktemp("decisions"),
        {"faults": fault_connector()},
        f"[auth]\ndecision_cache_seconds = {DECISION_CACHE_SECONDS}\n",
        auth=True,
    )
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


@asynccontextmanager
async def another_admin_process(hub: RunningHub) -> AsyncGenerator[Authorization]:
    """The admin layer on its own engine and caches, like `mcp-hub grants remove` run beside the hub."""
    async with admin_tools(hub.hub.settings) as tools:
        yield tools.auth


async def call_status(hub: RunningHub, token: str, tool: str) -> int:
    """A raw 2026-07-28 `tools/call` with `token`: the HTTP status (200 allowed, 403 refused, 401 no access)."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": {"text": "x"}, "_meta": ENVELOPE},
    }
    headers = {**MODERN_HEADERS, "Mcp-Method": "tools/call", "Mcp-Name": tool, "Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.post(hub.url, headers=headers, content=json.dumps(body).encode())
    return response.status_code


async def seconds_until(condition: Callable[[], Awaitable[bool]]) -> float:
    """Poll `condition` until it holds; fail after the cache bound plus slack. Returns how long it took."""
    started = anyio.current_time()
    with anyio.fail_after(DECISION_CACHE_SECONDS + REVOCATION_SLACK_SECONDS):
        while not await condition():  # noqa: ASYNC110 - the change is made in a database, no event reaches us
            await anyio.sleep(0.02)
    return anyio.current_time() - started


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_token_narrower_than_the_grants_caps_list_and_call(hub: RunningHub, era: str) -> None:
    """T10, our design: the token's scope is a cap; a wider grant does not lift it."""
    agent = await make_agent(hub, f"capped-{era.replace('-', '')}", "tool:faults__*")
    token = await client_credentials_token(hub, agent, scope="tool:faults__echo")
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        listed = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool("faults__echo", {"text": "within the cap"})
        with pytest.raises(MCPError) as refused:
            await client.call_tool("faults__pid", {})
    assert listed == ["faults__echo"]
    assert echoed.is_error is False
    assert "tool:faults__pid" in refused.value.error.message


async def test_a_grant_added_after_the_token_was_issued_is_still_capped_by_the_token(hub: RunningHub) -> None:
    """T10, our design: a token carries the scopes it was issued with; a new grant needs a new token."""
    agent = await make_agent(hub, "grown-later", "tool:faults__echo")
    old_token = await client_credentials_token(hub, agent)
    await auth_service(hub).admin.add_grant(agent.name, "tool:faults__pid")
    new_token = await client_credentials_token(hub, agent)

    assert await call_status(hub, old_token, "faults__pid") == 403
    assert await call_status(hub, old_token, "faults__echo") == 200
    assert await call_status(hub, new_token, "faults__pid") == 200


async def test_a_grant_removed_by_this_process_is_refused_on_the_next_call(hub: RunningHub) -> None:
    """T09, our choice: an admin change made through this hub's service clears its decision cache at once."""
    agent = await make_agent(hub, "revoked-here", "tool:faults__echo", "tool:faults__pid")
    token = await client_credentials_token(hub, agent)
    assert await call_status(hub, token, "faults__pid") == 200
    await auth_service(hub).admin.remove_grant(agent.name, "tool:faults__pid")
    assert await call_status(hub, token, "faults__pid") == 403
    assert await call_status(hub, token, "faults__echo") == 200


async def test_a_grant_removed_by_another_process_is_refused_within_the_decision_cache_bound(
    hub: RunningHub,
) -> None:
    """T09, our stated bound: revocation shows within `auth.decision_cache_seconds` (0.2 s here), not at expiry."""
    agent = await make_agent(hub, "revoked-elsewhere", "tool:faults__echo", "tool:faults__pid")
    token = await client_credentials_token(hub, agent)
    assert await call_status(hub, token, "faults__pid") == 200

    async with another_admin_process(hub) as admin:
        await admin.admin.remove_grant(agent.name, "tool:faults__pid")

    async def refused() -> bool:
        return await call_status(hub, token, "faults__pid") == 403

    await seconds_until(refused)
    assert await call_status(hub, token, "faults__echo") == 200


async def test_an_agent_disabled_by_another_process_gets_401_within_the_decision_cache_bound(hub: RunningHub) -> None:
    """T09, RFC 6750 §3.1: a disabled agent's still-unexpired token is `invalid_token` within the bound."""
    agent = await make_agent(hub, "disabled-elsewhere", "tool:faults__*")
    token = await client_credentials_token(hub, agent)
    assert await call_status(hub, token, "faults__echo") == 200

    async with another_admin_process(hub) as admin:
        await admin.admin.set_agent_enabled(agent.name, False)

    async def unauthorized() -> bool:
        return await call_status(hub, token, "faults__echo") == 401

    await seconds_until(unauthorized)


async def test_an_open_legacy_session_loses_a_revoked_tool(hub: RunningHub) -> None:
    """T09, our choice: a 2025-11-25 session is re-decided on every request, so revocation reaches it too."""
    agent = await make_agent(hub, "session-holder", "tool:faults__echo", "tool:faults__pid")
    token = await client_credentials_token(hub, agent)
    async with (
        bearer(token) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
    ):
        assert (await client.call_tool("faults__pid", {})).is_error is False
        async with another_admin_process(hub) as admin:
            await admin.admin.remove_grant(agent.name, "tool:faults__pid")

        async def refused() -> bool:
            try:
                await client.call_tool("faults__pid", {})
            except MCPError as exc:
                return exc.error.code == FORBIDDEN_CODE
            return False

        await seconds_until(refused)
        listed = [tool.name for tool in (await client.list_tools()).tools]
    assert listed == ["faults__echo"]


# --- the decision cache under concurrency ---------------------------------------------------------------------


async def test_concurrent_misses_of_one_expired_decision_share_one_store_read() -> None:
    """Our choice: when a cached decision expires under load, one read refreshes it for every waiting request."""
    cache = TtlCache[str](ttl=60)
    reads = 0
    release = anyio.Event()

    async def read() -> str:
        nonlocal reads
        reads += 1
        await release.wait()
        return "grants"

    results: list[str] = []

    async def ask() -> None:
        results.append(await cache.get_or_load("agent", read))

    async with anyio.create_task_group() as tasks:
        for _ in range(20):
            tasks.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert (reads, results) == (1, ["grants"] * 20)
    assert cache.get("agent") == "grants"


async def test_a_failed_shared_read_caches_nothing_and_each_waiter_reads_again() -> None:
    """Fail closed: a store error is never turned into a cached (or guessed) decision."""
    cache = TtlCache[str](ttl=60)
    reads = 0
    release = anyio.Event()

    async def read() -> str:
        nonlocal reads
        reads += 1
        if reads == 1:
            await release.wait()
            raise RuntimeError("database down")
        return "grants"

    outcomes: list[str] = []

    async def ask() -> None:
        try:
            outcomes.append(await cache.get_or_load("agent", read))
        except RuntimeError:
            outcomes.append("error")

    async with anyio.create_task_group() as tasks:
        for _ in range(3):
            tasks.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert sorted(outcomes) == ["error", "grants", "grants"]
    assert reads == 2  # the first waiter to retry reads again; the other shares that read


async def test_a_decision_read_before_the_cache_is_cleared_is_not_cached() -> None:
    """T09: an admin change in this process (which clears the cache) is seen by the next request at once."""
    cache = TtlCache[str](ttl=60)
    release = anyio.Event()

    async def stale_read() -> str:
        await release.wait()
        return "old grants"

    async def fresh_read() -> str:
        return "new grants"

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(cache.get_or_load, "agent", stale_read)
        await anyio.wait_all_tasks_blocked()
        cache.clear()  # e.g. `forget()` after a grant was removed
        assert await cache.get_or_load("agent", fresh_read) == "new grants"
        release.set()
    assert cache.get("agent") == "new grants"
