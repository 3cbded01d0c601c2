"""One page of a catalog list, as every list method answers it (tools, prompts, resources, templates).

While the hub starts, a list waits for the connectors' first attempts, or, past that bound, is not cacheable
(`ttlMs: 0`; `mcp_hub.gateway.readiness`).

Lists are paginated by an opaque cursor, in a deterministic order, filtered by the caller's grants, and carry
`ttlMs`/`cacheScope` on 2026-07-28 (https://modelcontextprotocol.io/specification/2026-07-28/server/utilities/pagination,
https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/caching). A list filtered for a caller
is `cacheScope: private` (threat T27).

A page ends at `page_size` entries or before the entry whose JSON would take the page's JSON past
`page_max_bytes`, whichever comes first (a client caps the messages it reads; a page of large definitions would
pass a cap long before its count); one entry larger than the bound is served alone, on a page of its own. The
cursor stays the last key of the page (`mcp_hub.catalog.catalog.page_of`): where a page ends depends only on the
catalog, the caller's visibility and the shape, so cursors stay deterministic.

Pages are served pre-serialised per authorization context (issue 12 §1): a page is built once, as the result
object and its JSON, and kept in a bounded cache keyed by everything that decides its content: the reader (the
hub, a profile, a virtual server) and the version of its catalog section (any change makes new keys), the
caller's canonical `Visibility` of that kind (grants ∩ token scopes: callers with the same effective grants
share pages, callers with different ones never do), the cursor's key, the shape (page size, byte bound, ttl) and
readiness. Cutting a page by bytes serialises nothing: each entry's JSON length was measured once, when the
catalog made the entry (`CatalogEntry.public_json_size`; a virtual server measures its renamed definitions when
it selects them, a profile its own as it cuts a page), and a page's JSON is its entries' JSON in the envelope.
The SDK path (`Lists.page`, a dict the SDK validates) and the fast path (`Lists.page_json`, bytes written as they
are) read the same cached `ListPage`, so they cannot diverge.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from mcp_hub.authz.decisions import Access
from mcp_hub.authz.scopes import Visibility
from mcp_hub.catalog.catalog import Snapshot, compact_json, decode_cursor
from mcp_hub.catalog.views import SectionReader
from mcp_hub.config.settings import PAGE_MAX_BYTES
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.readiness import Readiness

PAGE_CACHE_MAX_ENTRIES: Final = 4096
"""Pages kept at most. A 10,000-tool catalog at 500 a page is 20 pages per caller context and list (5 at the
default 2,000): this keeps about 200 contexts' full walks, more than the distinct grant sets a hub has, while
bounding bookkeeping."""

PAGE_CACHE_MAX_BYTES: Final = 256 * 1024 * 1024
"""Bytes of JSON kept at most (each page's `result` shares its definitions with the catalog, so the JSON is the
cache's own memory). A 10,000-tool walk of the catalog benchmark's tools is 2.1 MB: this keeps ~120 full
walks, and a catalog whose definitions are ten times larger still keeps a dozen contexts whole. One cache serves
every server of the process (the hub, its profiles, its virtual servers: `Hub.page_cache`)."""

_ListKey = tuple[Hashable, Snapshot, str, Visibility | None, str | None, "ListShape", bool, "Lead | None"]

_CURSOR_FIELD: Final = len(b',"nextCursor":""')
"""What a next cursor adds to a page's JSON besides the cursor itself (which `page_of` counts)."""


@dataclass(frozen=True, slots=True)
class ListShape:
    """How lists are cut and how long clients may keep them: at most `page_size` entries a page, and at most
    `page_max_bytes` of JSON (unless one entry alone is larger)."""

    page_size: int
    ttl_ms: int
    page_max_bytes: int = PAGE_MAX_BYTES


@dataclass(frozen=True, slots=True, eq=False)
class Lead:
    """Entries a server lists before the catalog's (the meta-tools, `mcp_hub.gateway.meta_tools`): at the head of
    the first page, or `alone` (a list of just these, whatever the catalog holds). Compared by identity: one per
    server."""

    items: tuple[Mapping[str, Any], ...]
    alone: bool = False


@dataclass(frozen=True, slots=True)
class ListPage:
    """One page as both front ends answer it: the list result object, and its JSON made once from it."""

    result: Mapping[str, Any]
    body: bytes


class PageResult(dict[str, Any]):
    """A page's result object (a copy the caller may read) that also carries the page's cached JSON, `body`.

    The fast path stamps it as the SDK stamps any result (`body` gets the stamp spliced in) and writes `body`
    instead of serialising the object again, as long as what comes back from the server's middleware is still a
    `PageResult` (a middleware that rewrote the result returns a plain dict); nothing changes one in place
    (`fast_path.py`'s differential test compares both paths' lists)."""

    __slots__ = ("body",)

    def __init__(self, result: Mapping[str, Any], body: bytes) -> None:
        super().__init__(result)
        self.body = body


def build_page(
    section: SectionReader,
    key: str,
    visibility: Visibility | None,
    cursor: str | None,
    shape: ListShape,
    *,
    whole: bool = True,
    lead: Lead | None = None,
) -> ListPage:
    """The page answering a list request: one page of `section` under `key`, as a caller who sees `visibility`
    may see it (None: no auth, nothing filtered), after `lead`'s entries on the first page; not cacheable unless
    the catalog is `whole`. Its JSON is at most `shape.page_max_bytes` unless its one catalog entry is larger."""
    envelope: dict[str, Any] = {
        "resultType": "complete",
        "ttlMs": shape.ttl_ms if whole else 0,
        "cacheScope": "public" if visibility is None else "private",
    }
    leading = list(lead.items) if lead is not None and cursor is None else []
    # What the page's JSON holds besides its catalog entries, joined by commas, and its cursor (`page_of`'s part).
    fixed = len(compact_json(envelope)) + len(b',"":[]') + len(key) + _CURSOR_FIELD
    fixed += sum(len(compact_json(item)) + 1 for item in leading)
    visible = None if visibility is None else visibility.predicate()
    items, next_cursor = section.page(cursor, shape.page_size, visible, max_bytes=shape.page_max_bytes - fixed)
    if next_cursor is not None:
        envelope["nextCursor"] = next_cursor
    result = {**envelope, key: [*leading, *items]}
    return ListPage(result, _page_json(envelope, key, result[key]))


def _page_json(envelope: Mapping[str, Any], key: str, items: list[Mapping[str, Any]]) -> bytes:
    """The JSON of a page, `envelope` with `items` under `key`: the entries' JSON exactly as `compact_json` made
    it when they were measured (one orjson call; item by item when orjson refuses one)."""
    try:
        return orjson.dumps({**envelope, key: items})
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        entries = b",".join(compact_json(item) for item in items)
        return b"".join((compact_json(envelope)[:-1], b',"', key.encode(), b'":[', entries, b"]}"))


def visibility_of(access: Access | None, section: SectionReader) -> Visibility | None:
    return None if access is None else access.visibility(section.kind.scope_kind)


class PageCache:
    """A bounded LRU of built pages; a reader's pages of an older snapshot are dropped when a newer one is kept."""

    def __init__(self, max_entries: int = PAGE_CACHE_MAX_ENTRIES, max_bytes: int = PAGE_CACHE_MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("a page cache needs room for at least one page")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._pages: OrderedDict[_ListKey, ListPage] = OrderedDict()
        self._by_view: dict[Hashable, tuple[Snapshot, set[_ListKey]]] = {}
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._pages)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, key: _ListKey) -> ListPage | None:
        page = self._pages.get(key)
        if page is None:
            self.misses += 1
            return None
        self.hits += 1
        self._pages.move_to_end(key)
        return page

    def put(self, key: _ListKey, page: ListPage) -> None:
        if len(page.body) > self.max_bytes or key in self._pages:
            return
        view_key, snapshot = key[0], key[1]
        kept = self._by_view.get(view_key)
        if kept is not None and kept[0] is not snapshot:
            for stale in list(kept[1]):
                self._drop(stale)
            kept = None
        if kept is None:
            kept = self._by_view[view_key] = (snapshot, set())
        self._pages[key] = page
        kept[1].add(key)
        self._bytes += len(page.body)
        while len(self._pages) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._pages)))

    def clear(self) -> None:
        self._pages.clear()
        self._by_view.clear()
        self._bytes = 0

    def _drop(self, key: _ListKey) -> None:
        page = self._pages.pop(key)
        self._bytes -= len(page.body)
        kept = self._by_view.get(key[0])
        if kept is not None:
            kept[1].discard(key)
            if not kept[1]:
                del self._by_view[key[0]]


class Lists:
    """Answers list requests once the catalog is whole (or the start's bound has passed), from the page cache."""

    def __init__(self, shape: ListShape, readiness: Readiness, cache: PageCache | None = None) -> None:
        self._shape = shape
        self._readiness = readiness
        self.cache = cache if cache is not None else PageCache()

    async def page(
        self, section: SectionReader, key: str, asking: Asking, cursor: str | None, *, lead: Lead | None = None
    ) -> dict[str, Any]:
        """The result object, a copy the caller may change, carrying the page's JSON (`PageResult`)."""
        served = await self.served(section, key, asking.access, cursor, lead=lead)
        result = PageResult(served.result, served.body)
        result[key] = list(result[key])
        return result

    async def page_json(
        self, section: SectionReader, key: str, access: Access | None, cursor: str | None, *, lead: Lead | None = None
    ) -> bytes:
        """The JSON of the result object `page` answers (the fast path writes it as the JSON-RPC `result`)."""
        return (await self.served(section, key, access, cursor, lead=lead)).body

    async def served(
        self, section: SectionReader, key: str, access: Access | None, cursor: str | None, *, lead: Lead | None = None
    ) -> ListPage:
        """The page, from the cache or built (and kept). An invalid cursor raises `InvalidCursorError`."""
        # A lead listed alone does not depend on the catalog: it need not wait for the start, and may be kept.
        whole = True if lead is not None and lead.alone else await self._readiness.settled()
        return self.cached(section, key, access, cursor, whole=whole, lead=lead)

    def cached(
        self,
        section: SectionReader,
        key: str,
        access: Access | None,
        cursor: str | None,
        *,
        whole: bool = True,
        lead: Lead | None = None,
    ) -> ListPage:
        visibility = visibility_of(access, section)
        # Keyed by the entry the cursor names, not by its spelling: base64 decoding is lenient (characters outside
        # the alphabet skipped, spare bits ignored), so endless spellings name one entry.
        after = None if cursor is None else decode_cursor(cursor)
        list_key: _ListKey = (
            section.view_key,
            section.snapshot,
            key,
            visibility,
            after,
            self._shape,
            whole,
            lead,
        )
        page = self.cache.get(list_key)
        if page is not None:
            return page
        if lead is not None and lead.alone:
            result: dict[str, Any] = {
                "resultType": "complete",
                key: list(lead.items),
                "ttlMs": self._shape.ttl_ms,
                "cacheScope": "public" if visibility is None else "private",
            }
            page = ListPage(result, compact_json(result))
        else:
            page = build_page(section, key, visibility, cursor, self._shape, whole=whole, lead=lead)
        # Only cursors this reader could have handed out are kept: made-up ones cannot churn the cache.
        if after is None or section.get(after) is not None:
            self.cache.put(list_key, page)
        return page
