"""The one call both front ends make for a page of any list (`tools/list`, `prompts/list`, `resources/list`,
`resources/templates/list`; https://modelcontextprotocol.io/specification/2026-07-28/server/utilities/pagination).

Every list handler (`tools.py`, `prompts.py`, `resources.py`) gets its page here, whether the SDK or the fast path
(`fast_path.py`) received the request. It is the seam for pre-serialised pages (issue 12 §1: "lists are served from
pre-serialised pages per authorization context"): when `Lists.page_json` exists, the fast path asks for the page's
bytes through this module instead of a dict, and nothing else changes.
"""

from __future__ import annotations

from typing import Any

from mcp_hub.catalog.views import SectionReader
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.lists import Lead, Lists


async def list_result(
    lists: Lists, section: SectionReader, key: str, asking: Asking, cursor: str | None, *, lead: Lead | None = None
) -> dict[str, Any]:
    """One page of `section` under `key` for this caller (`Lists.page`), after the server's `lead` if any."""
    return await lists.page(section, key, asking, cursor, lead=lead)
