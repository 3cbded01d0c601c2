"""One page of a catalog list, as every list method answers it (tools, prompts, resources, templates).

Lists are paginated by an opaque cursor, in a deterministic order, filtered by the caller's grants, and carry
`ttlMs`/`cacheScope` on 2026-07-28 (https://modelcontextprotocol.io/specification/2026-07-28/server/utilities/pagination,
https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/caching). A list filtered for a caller
is `cacheScope: private` (threat T27).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mcp_hub.catalog.catalog import Section
from mcp_hub.gateway.caller import Asking


@dataclass(frozen=True, slots=True)
class ListShape:
    """How lists are cut and how long clients may keep them."""

    page_size: int
    ttl_ms: int


def list_page(section: Section, key: str, asking: Asking, cursor: str | None, shape: ListShape) -> dict[str, Any]:
    """The result of a list request: one page of `section` under `key`, as this caller may see it."""
    kind = section.kind.scope_kind

    def visible(public_name: str) -> bool:
        return asking.allows(public_name, kind)

    items, next_cursor = section.page(cursor, shape.page_size, None if asking.access is None else visible)
    result: dict[str, Any] = {
        "resultType": "complete",
        key: items,
        "ttlMs": shape.ttl_ms,
        "cacheScope": asking.cache_scope,
    }
    if next_cursor is not None:
        result["nextCursor"] = next_cursor
    return result
