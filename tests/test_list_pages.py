"""List pages served pre-serialised per authorization context (issue 12 §1).

One behaviour, two paths: the JSON the fast path writes (`Lists.page_json`) is the result object the SDK path
validates (`Lists.page`), over the hub, a profile and a virtual server, every list kind, wide and narrow
callers, token caps, every cursor of a walk and readiness; and both are what an uncached build asking
`Access.allows` name by name answers. The cache is keyed by the catalog's snapshot (a change is seen at once,
T16 groundwork) and by the caller's canonical visibility (T27: a caller never gets a page built for another
context), and it is bounded in pages and bytes.

A page is bounded in bytes as well as in entries (`[catalog] page_max_bytes`, our choice: a client caps the
messages it reads): the bound holds on every walk, is tight, counts the cursor and the meta-tools, and an entry
larger than it is listed alone; through a real hub, SDK clients of both eras walk the same pages within it.
"""

from __future__ import annotations

import itertools
import json
import string
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any, Literal

import httpx2
import orjson
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_hub.authz.decisions import Access
from mcp_hub.catalog.catalog import Catalog, InvalidCursorError, decode_cursor, encode_cursor, key_field
from mcp_hub.catalog.views import ConnectorView, SectionReader
from mcp_hub.catalog.virtual import VirtualView
from mcp_hub.config.settings import CatalogSection, TimeoutsSection
from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.domain import Caller, ConnectorId, ConnectorListing
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.lists import Lead, Lists, ListShape, PageCache
from mcp_hub.gateway.meta_tools import meta_tool_definitions
from mcp_hub.gateway.readiness import Readiness
from tests.conftest import fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

KEYS = {"tools": "tools", "prompts": "prompts", "resources": "resources", "templates": "resourceTemplates"}

CALLERS: dict[str, Access | None] = {
    "no auth": None,
    "every tool": Access(grants=("tool:*", "prompt:*", "resource:*"), token_scopes=None),
    "one connector": Access(grants=("tool:beta__*", "prompt:beta__*", "resource:mcp-hub://beta/*"), token_scopes=None),
    "capped by its token": Access(grants=("tool:*", "prompt:*"), token_scopes=("tool:alpha__t1*", "prompt:*")),
    "two names": Access(grants=("tool:alpha__t03", "tool:gamma__t07"), token_scopes=None),
    "nothing": Access(grants=(), token_scopes=None),
}


def listing(connector: str, count: int, *, flavour: str = "") -> ConnectorListing:
    return ConnectorListing(
        tools=tuple(
            {"name": f"t{index:02d}", "description": f"tool {index} of {connector}{flavour}", "inputSchema": {}}
            for index in range(count)
        ),
        prompts=tuple({"name": f"p{index}", "description": f"prompt {index}"} for index in range(count // 4)),
        resources=tuple({"uri": f"file:///{connector}/{index}", "name": f"r{index}"} for index in range(count // 3)),
        resource_templates=({"uriTemplate": f"file:///{connector}/{{id}}", "name": "by id"},),
    )


def make_catalog() -> Catalog:
    catalog = Catalog()
    for connector in ("alpha", "beta", "gamma"):
        catalog.replace_connector(connector, listing(connector, 23))
    return catalog


def readers(catalog: Catalog) -> Iterator[tuple[str, str, SectionReader]]:
    virtual = VirtualView(
        catalog,
        VirtualServerSpec(
            name="curated",
            tools=["alpha__*", "gamma__t0?"],
            prompts=["*"],
            resources=["mcp-hub://beta/*"],
            rename={"alpha__t01": "first"},
            descriptions={"gamma__t02": "overridden"},
        ),
    )
    views = {"hub": catalog, "profile": ConnectorView(catalog, ConnectorId("beta")), "virtual": virtual}
    for view_name, view in views.items():
        for attribute, key in KEYS.items():
            yield view_name, key, getattr(view, attribute)


async def _ignore(*_: object) -> None:
    return None


def empty_pool() -> DownstreamPool:
    return DownstreamPool([], TimeoutsSection(), on_listing=_ignore, on_health=_ignore)


@pytest.fixture
async def settled() -> AsyncGenerator[Readiness]:
    """Readiness after the start (no connectors: the first attempts are over at once)."""
    readiness = Readiness(empty_pool(), bound_seconds=5)
    async with readiness.running():
        assert await readiness.settled()
        yield readiness


def not_started() -> Readiness:
    """Readiness of a hub whose start has not begun: lists answer at once, with `ttlMs: 0`."""
    return Readiness(empty_pool(), bound_seconds=5)


def reference(section: SectionReader, key: str, access: Access | None, cursor: str | None, size: int) -> Any:
    """What a list answered before pages were cached: a walk asking `Access.allows` name by name."""
    kind = section.kind.scope_kind

    def allowed(name: str) -> bool:
        return access is not None and access.allows(name, kind)

    visible = None if access is None else allowed
    items, next_cursor = section.page(cursor, size, visible)
    result: dict[str, Any] = {
        "resultType": "complete",
        key: items,
        "ttlMs": 60_000,
        "cacheScope": "public" if access is None else "private",
    }
    if next_cursor is not None:
        result["nextCursor"] = next_cursor
    return orjson.loads(orjson.dumps(result))


@pytest.mark.parametrize("size", [1, 4, 500])
async def test_the_json_of_every_page_is_the_result_the_sdk_path_answers(settled: Readiness, size: int) -> None:
    """Issue 12 §1/§2: one code path; every page of every walk, for every view, kind and caller."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=size, ttl_ms=60_000), settled)
    walked = 0
    for view_name, key, section in readers(catalog):
        for caller, access in CALLERS.items():
            cursor: str | None = None
            seen: list[Any] = []
            for _ in range(200):
                body = await lists.page_json(section, key, access, cursor)
                page = await lists.page(section, key, _asking(access), cursor)
                assert orjson.loads(body) == page, (view_name, key, caller, cursor)
                assert page == reference(section, key, access, cursor, size), (view_name, key, caller, cursor)
                seen.extend(page[key])
                walked += 1
                cursor = page.get("nextCursor")
                if cursor is None:
                    break
            assert cursor is None
            unfiltered = list(section.entries())
            assert len(seen) <= len(unfiltered)
            if access is None or access.visibility(section.kind.scope_kind).everything:
                assert len(seen) == len(unfiltered)
    assert walked >= 3 * len(KEYS) * len(CALLERS)
    assert lists.cache.hits > 0  # the SDK path read what the fast path built


async def test_a_list_before_the_catalog_is_whole_is_not_cacheable_on_either_path() -> None:
    """Issue 9 §8: `ttlMs: 0` while the start's bound has passed; both paths agree and keep it apart."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=10, ttl_ms=60_000), not_started())
    access = CALLERS["one connector"]
    body = orjson.loads(await lists.page_json(catalog.tools, "tools", access, None))
    assert body == await lists.page(catalog.tools, "tools", _asking(access), None)
    assert body["ttlMs"] == 0
    assert lists.cached(catalog.tools, "tools", access, None, whole=True).result["ttlMs"] == 60_000


async def test_a_catalog_change_is_listed_at_once_and_old_pages_are_dropped(settled: Readiness) -> None:
    """A change makes a new snapshot: no page of the old one is served, and the reader's old pages go."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=5, ttl_ms=60_000), settled)
    access = CALLERS["one connector"]
    profile = ConnectorView(catalog, ConnectorId("beta"))
    before = orjson.loads(await lists.page_json(catalog.tools, "tools", access, None))
    await lists.page_json(profile.tools, "tools", access, None)
    assert len(lists.cache) == 2
    catalog.replace_connector("beta", listing("beta", 23, flavour=" (new)"))
    after = orjson.loads(await lists.page_json(catalog.tools, "tools", access, None))
    assert after != before
    assert all(item["description"].endswith("(new)") for item in after["tools"])
    assert after == reference(catalog.tools, "tools", access, None, 5)
    assert len(lists.cache) == 2  # the hub's old page made room for its new one; the profile's is kept until read
    profile_after = orjson.loads(await lists.page_json(profile.tools, "tools", access, None))
    assert profile_after["tools"][0]["description"].endswith("(new)")
    assert len(lists.cache) == 2


async def test_a_caller_never_gets_a_page_built_for_another_context(settled: Readiness) -> None:
    """T27: pages are per visibility; callers with the same effective grants share, others never do."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=50, ttl_ms=60_000), settled)
    wide = Access(grants=("tool:*",), token_scopes=None)
    narrow = Access(grants=("tool:*",), token_scopes=("tool:gamma__*",))
    same_as_narrow = Access(grants=("tool:gamma__*", "prompt:*"), token_scopes=None)
    wide_page = orjson.loads(await lists.page_json(catalog.tools, "tools", wide, None))
    narrow_page = orjson.loads(await lists.page_json(catalog.tools, "tools", narrow, None))
    assert len(wide_page["tools"]) == 50
    assert {tool["name"].split("__")[0] for tool in narrow_page["tools"]} == {"gamma"}
    hits = lists.cache.hits
    assert orjson.loads(await lists.page_json(catalog.tools, "tools", same_as_narrow, None)) == narrow_page
    assert lists.cache.hits == hits + 1
    unauthenticated = orjson.loads(await lists.page_json(catalog.tools, "tools", None, None))
    assert unauthenticated["cacheScope"] == "public"
    assert wide_page["cacheScope"] == "private"
    assert unauthenticated["tools"] == wide_page["tools"]  # same content, but never the same cached page
    assert len(lists.cache) == 3


async def test_the_cache_is_bounded_in_pages_and_in_bytes(settled: Readiness) -> None:
    """The bounds hold whatever is asked; the least recently used page goes first; an oversized one is not kept."""
    catalog = make_catalog()
    by_count = Lists(ListShape(page_size=2, ttl_ms=60_000), settled, PageCache(max_entries=3, max_bytes=1 << 30))
    first = await by_count.page_json(catalog.tools, "tools", None, None)
    cursor: str | None = None
    for _ in range(10):
        page = await by_count.page(catalog.tools, "tools", _asking(None), cursor)
        cursor = page["nextCursor"]
        assert len(by_count.cache) <= 3
    assert len(by_count.cache) == 3
    misses = by_count.cache.misses
    assert await by_count.page_json(catalog.tools, "tools", None, None) == first
    assert by_count.cache.misses == misses + 1  # evicted, rebuilt

    one_page = len(first)
    by_bytes = Lists(ListShape(page_size=2, ttl_ms=60_000), settled, PageCache(max_entries=100, max_bytes=one_page * 3))
    cursor = None
    for _ in range(10):
        page = await by_bytes.page(catalog.tools, "tools", _asking(None), cursor)
        cursor = page["nextCursor"]
        assert by_bytes.cache.bytes <= one_page * 3
    assert 0 < len(by_bytes.cache) <= 3

    tiny = Lists(ListShape(page_size=50, ttl_ms=60_000), settled, PageCache(max_entries=10, max_bytes=100))
    assert len(await tiny.page_json(catalog.tools, "tools", None, None)) > 100
    assert len(tiny.cache) == 0
    with pytest.raises(ValueError, match="at least one page"):
        PageCache(max_entries=0)


async def test_made_up_cursors_are_answered_but_not_kept_and_bad_ones_refused(settled: Readiness) -> None:
    """A cursor the hub could not have handed out cannot fill the cache; an undecodable one is an error on both."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=5, ttl_ms=60_000), settled)
    made_up = encode_cursor("alpha__t03x")  # well formed, but names no entry
    page = orjson.loads(await lists.page_json(catalog.tools, "tools", None, made_up))
    assert page == reference(catalog.tools, "tools", None, made_up, 5)
    assert len(lists.cache) == 0
    with pytest.raises(InvalidCursorError):
        await lists.page_json(catalog.tools, "tools", None, "\u00e9not base64")
    with pytest.raises(InvalidCursorError):
        await lists.page(catalog.tools, "tools", _asking(None), "\u00e9not base64")


async def test_a_cursor_spelled_another_way_is_answered_from_the_same_cached_page(settled: Readiness) -> None:
    """Threat T28 (one caller must not exhaust what every caller shares), our choice: base64 decoding is lenient
    (characters outside the alphabet are skipped, the last character's spare bits ignored), so endless spellings
    of a cursor the hub handed out name the same entry; they share its one cached page instead of each evicting
    other contexts' pages from the shared cache."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=5, ttl_ms=60_000), settled)
    cursor = (await lists.page(catalog.tools, "tools", _asking(None), None))["nextCursor"]
    second = await lists.page_json(catalog.tools, "tools", None, cursor)
    assert len(lists.cache) == 2
    spellings = [f"{cursor[:4]}{'!' * 4 * count}{cursor[4:]}" for count in range(1, 50)]
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    spare_bit_flipped = cursor[:-1] + alphabet[alphabet.index(cursor[-1]) ^ 1]
    assert decode_cursor(spare_bit_flipped) == decode_cursor(cursor)
    spellings.append(spare_bit_flipped)
    for spelling in spellings:
        assert await lists.page_json(catalog.tools, "tools", None, spelling) == second
    assert len(lists.cache) == 2


async def test_changing_an_answered_page_leaves_the_cached_one_alone(settled: Readiness) -> None:
    """The SDK path gets a copy: a handler that edits it (the meta-tools prepend theirs) changes no other answer."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=5, ttl_ms=60_000), settled)
    page = await lists.page(catalog.tools, "tools", _asking(None), None)
    page["tools"].insert(0, {"name": "search_tools"})
    page["extra"] = True
    again = await lists.page(catalog.tools, "tools", _asking(None), None)
    assert "extra" not in again
    assert again["tools"][0]["name"] == "alpha__t00"
    assert orjson.loads(await lists.page_json(catalog.tools, "tools", None, None)) == again


def _asking(access: Access | None) -> Asking:
    return Asking(principal=None, access=access, caller=Caller(client="test"))


async def test_a_definition_orjson_cannot_write_is_served_by_the_standard_library(settled: Readiness) -> None:
    """Downstream JSON may hold integers beyond 64 bits: the page is still served, the same on both paths."""
    catalog = Catalog()
    huge = {"name": "big", "inputSchema": {"type": "integer", "maximum": 2**70}}
    catalog.replace_connector("alpha", ConnectorListing(tools=(huge,)))
    lists = Lists(ListShape(page_size=5, ttl_ms=60_000), settled)
    body = await lists.page_json(catalog.tools, "tools", None, None)
    assert str(2**70).encode() in body
    assert json.loads(body) == await lists.page(catalog.tools, "tools", _asking(None), None)


async def test_a_lead_heads_the_first_page_or_is_listed_alone_the_same_on_both_paths() -> None:
    """Issue 11 §7 meta-tools: `add` puts the pair before the first page's tools, `only` lists the pair alone
    (without waiting for the start); each server's lead keys its own pages."""
    catalog = make_catalog()
    lists = Lists(ListShape(page_size=10, ttl_ms=60_000), not_started())
    pair: tuple[dict[str, Any], ...] = ({"name": "search_tools"}, {"name": "call_tool"})
    added, alone = Lead(pair), Lead(pair, alone=True)
    access = CALLERS["one connector"]
    first = await lists.page(catalog.tools, "tools", _asking(access), None, lead=added)
    assert orjson.loads(await lists.page_json(catalog.tools, "tools", access, None, lead=added)) == first
    plain = await lists.page(catalog.tools, "tools", _asking(access), None)
    assert first["tools"] == [*pair, *plain["tools"]]
    assert first["ttlMs"] == 0  # the catalog's part is not whole yet
    second = await lists.page(catalog.tools, "tools", _asking(access), first["nextCursor"], lead=added)
    assert second == await lists.page(catalog.tools, "tools", _asking(access), plain["nextCursor"])
    only = orjson.loads(await lists.page_json(catalog.tools, "tools", access, None, lead=alone))
    assert only == {"resultType": "complete", "tools": list(pair), "ttlMs": 60_000, "cacheScope": "private"}
    assert only == await lists.page(catalog.tools, "tools", _asking(access), None, lead=alone)


# --- pages bounded in bytes -----------------------------------------------------------------------------------


def sized_listing(connector: str, count: int) -> ConnectorListing:
    """Entries of very different sizes (descriptions of a few bytes to ~3 KB) and resource URIs of ~1,500
    characters (cursors of ~2 KB, which take the room of entries)."""
    return ConnectorListing(
        tools=tuple(
            {"name": f"t{index:02d}", "description": "d" * (index * 97 % 3000), "inputSchema": {"type": "object"}}
            for index in range(count)
        ),
        prompts=tuple({"name": f"p{index}", "description": "p" * (index * 389 % 2000)} for index in range(count)),
        resources=tuple(
            {"uri": f"file:///{connector}/{index}/" + "u" * 1500, "name": f"r{index}"} for index in range(9)
        ),
        resource_templates=({"uriTemplate": f"file:///{connector}/{{id}}", "name": "by id", "description": "t"},),
    )


def sized_catalog() -> Catalog:
    catalog = Catalog()
    for connector in ("alpha", "beta", "gamma"):
        catalog.replace_connector(connector, sized_listing(connector, 30))
    return catalog


async def walk(
    lists: Lists, section: SectionReader, key: str, access: Access | None, lead: Lead | None = None
) -> list[tuple[bytes, dict[str, Any]]]:
    """Every page of a walk, as both paths answer it (asserted equal): the JSON and the result object."""
    pages: list[tuple[bytes, dict[str, Any]]] = []
    cursor: str | None = None
    for _ in range(500):
        body = await lists.page_json(section, key, access, cursor, lead=lead)
        page = await lists.page(section, key, _asking(access), cursor, lead=lead)
        assert orjson.loads(body) == page
        pages.append((body, page))
        cursor = page.get("nextCursor")
        if cursor is None:
            return pages
    raise AssertionError("the walk did not end")


def _would_be(body: bytes, page: dict[str, Any], key: str, kind_key: str, following: dict[str, Any]) -> int:
    """The length of this page's JSON had it also held `following` (the next page's first entry), with that
    entry's cursor: what the bound must have refused."""
    cursor = len(encode_cursor(str(following[kind_key])))
    return len(body) + 1 + len(orjson.dumps(following)) + cursor - len(page.get("nextCursor", ""))


@pytest.mark.parametrize("bound", [1024, 5000])
async def test_every_page_ends_before_the_entry_that_would_take_it_past_the_byte_bound(
    settled: Readiness, bound: int
) -> None:
    """Our choice: every page's JSON, cursor included, is within `page_max_bytes` unless it is one entry; each
    page is as full as the bound allows; the walk lists every entry the caller may see once, in order (the same
    as one unbounded page), for every view, kind and caller, on both paths."""
    catalog = sized_catalog()
    lists = Lists(ListShape(page_size=1000, ttl_ms=60_000, page_max_bytes=bound), settled)
    cut_by_bytes = 0
    for view_name, key, section in readers(catalog):
        kind_key = key_field(section.kind)
        for caller, access in CALLERS.items():
            pages = await walk(lists, section, key, access)
            listed = [item for _, page in pages for item in page[key]]
            assert listed == reference(section, key, access, None, 10_000)[key], (view_name, key, caller)
            for (body, page), (_, following) in itertools.pairwise(pages):
                if following[key]:
                    assert _would_be(body, page, key, kind_key, following[key][0]) > bound, (view_name, key, caller)
                    cut_by_bytes += 1
            for body, page in pages:
                assert len(body) <= bound or len(page[key]) == 1, (view_name, key, caller, len(body))
    assert cut_by_bytes > 20  # the bound, not the page size, ended pages


async def test_the_meta_tools_ahead_of_the_first_page_count_towards_its_bound(settled: Readiness) -> None:
    """Our choice: the lead (`meta_tools = "add"`) is part of the first page's JSON, so the bound holds with it."""
    catalog = sized_catalog()
    lead = Lead(tuple(meta_tool_definitions(20)))
    bound = len(orjson.dumps(list(lead.items))) + 3000
    lists = Lists(ListShape(page_size=1000, ttl_ms=60_000, page_max_bytes=bound), settled)
    pages = await walk(lists, catalog.tools, "tools", None, lead)
    assert [tool["name"] for tool in pages[0][1]["tools"][:2]] == ["search_tools", "call_tool"]
    assert all(len(body) <= bound for body, _ in pages)
    plain = await walk(lists, catalog.tools, "tools", None)
    assert len(pages[0][1]["tools"]) - 2 < len(plain[0][1]["tools"])  # the lead took room from the catalog's
    assert [item for _, page in pages for item in page["tools"] if item["name"] not in META] == [
        item for _, page in plain for item in page["tools"]
    ]


META = {"search_tools", "call_tool"}


async def test_a_shared_cache_keeps_the_pages_of_each_shape_apart(settled: Readiness) -> None:
    """Everything that decides a page keys it: servers of one process share the page cache, and a page cut
    under one byte bound (or ttl) is never served for another."""
    catalog = sized_catalog()
    cache = PageCache()
    shapes = [
        ListShape(page_size=1000, ttl_ms=60_000, page_max_bytes=100_000),
        ListShape(page_size=1000, ttl_ms=60_000, page_max_bytes=2048),
        ListShape(page_size=1000, ttl_ms=1_000, page_max_bytes=2048),
    ]
    firsts = [
        orjson.loads(await Lists(shape, settled, cache).page_json(catalog.tools, "tools", None, None))
        for shape in shapes
    ]
    assert len(firsts[0]["tools"]) > len(firsts[1]["tools"])
    assert (firsts[1]["ttlMs"], firsts[2]["ttlMs"]) == (60_000, 1_000)
    assert len(cache) == 3


@pytest.mark.parametrize("position", ["first", "middle", "last"])
async def test_an_entry_larger_than_the_bound_is_listed_alone_and_the_walk_goes_on(
    settled: Readiness, position: str
) -> None:
    """Our choice (README.md, "Lists"): a page always holds one entry, or a client could never get past one
    larger than the bound; the pages around it stay within the bound, and after a last one no empty page follows."""
    name = {"first": "a00", "middle": "t15", "last": "z99"}[position]
    tools: list[dict[str, Any]] = [
        {"name": f"t{index:02d}", "description": "x" * 300, "inputSchema": {}} for index in range(30)
    ]
    huge: dict[str, Any] = {"name": name, "description": "h" * 20_000, "inputSchema": {}}
    catalog = Catalog()
    listed = (*[tool for tool in tools if tool["name"] != name], huge)
    catalog.replace_connector("alpha", ConnectorListing(tools=listed))
    lists = Lists(ListShape(page_size=1000, ttl_ms=60_000, page_max_bytes=2048), settled)
    for access in (None, CALLERS["every tool"]):
        pages = await walk(lists, catalog.tools, "tools", access)
        (alone,) = [(body, page) for body, page in pages if len(body) > 2048]
        assert [tool["name"] for tool in alone[1]["tools"]] == [f"alpha__{name}"]
        assert all(page["tools"] for _, page in pages)  # no empty page, not even after the last entry
        assert sum(len(page["tools"]) for _, page in pages) == len(listed)
        assert ("nextCursor" in alone[1]) == (position != "last")


async def test_at_the_defaults_2000_typical_tools_make_a_page_and_large_ones_are_cut_by_bytes(
    settled: Readiness,
) -> None:
    """Our choice (docs/benchmarks.md): the default page of 2,000 entries holds typical tools (the benchmark's,
    ~220 bytes each) whole; tools ten times larger end their page at the default 512 KiB bound instead."""
    defaults = CatalogSection()
    assert (defaults.page_size, defaults.page_max_bytes) == (2000, 512 * 1024)
    shape = ListShape(page_size=defaults.page_size, ttl_ms=defaults.list_ttl_ms, page_max_bytes=defaults.page_max_bytes)
    for description, expected in (("d" * 120, 2000), ("d" * 2200, None)):
        catalog = Catalog()
        for connector in range(25):
            tools = tuple(
                {"name": f"t{index:03d}", "description": description, "inputSchema": {"type": "object"}}
                for index in range(100)
            )
            catalog.replace_connector(f"c{connector:02d}", ConnectorListing(tools=tools))
        lists = Lists(shape, settled)
        pages = await walk(lists, catalog.tools, "tools", None)
        first_body, first = pages[0]
        assert len(first_body) <= defaults.page_max_bytes
        assert sum(len(page["tools"]) for _, page in pages) == 2500
        if expected is not None:
            assert len(first["tools"]) == expected
        else:
            assert len(first["tools"]) < 2000
            assert len(first_body) > defaults.page_max_bytes - 2500  # as full as the bound allows


Era = Literal["legacy", "2026-07-28"]


async def sdk_walk(url: str, era: Era) -> list[tuple[list[str], int]]:
    """A walk of `tools/list` by the MCP SDK's client: each page's tool names and the length of the JSON-RPC
    message that carried it, as read off the wire."""
    messages: list[int] = []

    async def record(response: httpx2.Response) -> None:
        if response.request.method == "POST" and b'"tools/list"' in response.request.content:
            body = await response.aread()
            data = [line[5:].strip() for line in body.splitlines() if line.startswith(b"data:") and len(line) > 6]
            messages.append(len(data[-1] if data else body))

    pages: list[list[str]] = []
    async with (
        httpx2.AsyncClient(event_hooks={"response": [record]}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=era) as client,
    ):
        cursor: str | None = None
        while True:
            page = await client.list_tools(cursor=cursor)
            pages.append([tool.name for tool in page.tools])
            cursor = page.next_cursor
            if cursor is None:
                break
    assert len(messages) == len(pages)
    return list(zip(pages, messages, strict=True))


ENVELOPE = 256
"""What the JSON-RPC message adds to a page's JSON: `{"jsonrpc":"2.0","id":…,"result":…}` and the SDK's
`serverInfo` stamp."""


async def test_sdk_clients_of_both_eras_walk_the_same_pages_within_the_bound(tmp_path: Path) -> None:
    """Our choice, through a real hub: the fault fixture's tools at `page_max_bytes = 1024` (and its 500 KB
    `huge_schema`, allowed here) come in the same pages to clients of both eras, every message within the bound
    plus its envelope but the one that carries `huge_schema` alone; the default page size did not end any."""
    connectors = {"faults": fault_connector(env={"FAULT_POISON": "1"})}
    config = write_config(tmp_path, connectors, "[catalog]\npage_max_bytes = 1024\nmax_schema_bytes = 1048576\n")
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        walks = {era: await sdk_walk(hub.url, era) for era in ("legacy", "2026-07-28")}
    legacy, modern = walks["legacy"], walks["2026-07-28"]
    assert [names for names, _ in legacy] == [names for names, _ in modern]
    listed = [name for names, _ in modern for name in names]
    assert listed == sorted(set(listed))
    assert {"faults__echo", "faults__huge_schema"} <= set(listed)
    assert len(modern) >= 4
    for names, length in [*legacy, *modern]:
        if names == ["faults__huge_schema"]:
            assert length > 500_000
        else:
            assert length <= 1024 + ENVELOPE, (names, length)
