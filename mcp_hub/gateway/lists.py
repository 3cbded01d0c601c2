"""One page of a catalog list, as every list method answers it (tools, prompts, resources, templates).

While the hub starts, a list waits for the connectors' first attempts, or, past that bound, is not cacheable
(`ttlMs: 0`; `mcp_hub.gateway.readiness`).

Lists are paginated by an opaque cursor, in a deterministic order, filtered by the caller's grants, and carry
`ttlMs`/`cacheScope` on 2026-07-28 (https://modelcontextprotocol.io/specification/2026-07-28/server/utilities/pagination,
https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/caching). A list filtered for a caller
is `cacheScope: private` (threat T27).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_hub.catalog.views import SectionReader
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.readiness import Readiness


@dataclass(frozen=True, slots=True)
class ListShape:
    """How lists are cut and how long clients may keep them."""

    page_size: int
    ttl_ms: int


def list_page(
    section: SectionReader, key: str, asking: Asking, cursor: str | None, shape: ListShape, *, whole: bool = True
) -> dict[str, Any]:
    """The result of a list request: one page of `section` under `key`, as this caller may see it; not cacheable
    unless the catalog is `whole`."""
    kind = section.kind.scope_kind

    def visible(public_name: str) -> bool:
        return asking.allows(public_name, kind)

    items, next_cursor = section.page(cursor, shape.page_size, None if asking.access is None else visible)
    result: dict[str, Any] = {
        "resultType": "complete",
        key: items,
        "ttlMs": shape.ttl_ms if whole else 0,
        "cacheScope": asking.cache_scope,
    }
    if next_cursor is not None:
        result["nextCursor"] = next_cursor
    return result


class Lists:
    """Answers list requests once the catalog is whole (or the start's bound has passed)."""

    def __init__(self, shape: ListShape, readiness: Readiness) -> None:
        self._shape = shape
        self._readiness = readiness

    async def page(self, section: SectionReader, key: str, asking: Asking, cursor: str | None) -> dict[str, Any]:
        whole = await self._readiness.settled()
        return list_page(section, key, asking, cursor, self._shape, whole=whole)
