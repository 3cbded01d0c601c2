"""Two meta-tools for large catalogs (issue 11 §7): `search_tools` finds, `call_tool` calls, by name.

An agent with access to thousands of tools need not load every schema: `search_tools` ranks the tools the caller
may see (`mcp_hub.catalog.virtual.SearchIndex`: names and descriptions) and answers compact summaries (name,
description cut to 200 characters, argument names; the input schema only when asked with `schemas: true`);
`call_tool` calls one of them by name. Off by default: `[catalog] meta_tools` for `/mcp`, `meta_tools` in a
virtual server's file for `/mcp/v/<name>`; `add` lists the pair before the tools, `only` lists the pair alone
(every tool stays callable by its own name).

`call_tool` is not a second call path: it hands the named call to `ToolRequests.call`, so grants, limits,
approvals, questions and the audit trail apply exactly as to a direct `tools/call` (and are recorded under the
tool's public name). A tool the caller may not see is never in a search answer, and calling it through
`call_tool` is refused as calling it directly is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

from mcp_hub.catalog.views import SectionReader
from mcp_hub.catalog.virtual import SearchIndex
from mcp_hub.config.virtual import META_TOOL_NAMES, MetaToolsMode
from mcp_hub.gateway.caller import CallerResolver
from mcp_hub.gateway.list_requests import list_result
from mcp_hub.gateway.lists import Lead, Lists
from mcp_hub.gateway.tools import ToolRequests
from mcp_hub.tool_results import hub_error_result

SEARCH_TOOL, CALL_TOOL = META_TOOL_NAMES


def meta_tool_definitions(max_results: int) -> list[dict[str, Any]]:
    """The two tools as `tools/list` shows them."""
    return [
        {
            "name": SEARCH_TOOL,
            "description": (
                "Search the tools you may call by what they do. Returns the best matches, each with its name, a "
                f"short description and its argument names; call one with {CALL_TOOL}."
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "words describing the task, or part of a name"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": max_results},
                    "schemas": {"type": "boolean", "description": "include each tool's full input schema"},
                },
                "required": ["query"],
            },
            "annotations": {"readOnlyHint": True, "openWorldHint": False},
        },
        {
            "name": CALL_TOOL,
            "description": f"Call a tool by the name {SEARCH_TOOL} gave, with its arguments.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "the tool's name"},
                    "arguments": {"type": "object", "description": "the tool's arguments"},
                },
                "required": ["name"],
            },
        },
    ]


_NOT_AN_OBJECT: Final = "arguments must be a JSON object"


class MetaTools:
    """`tools/list` and `tools/call` of a server that offers the meta-tools, around its `ToolRequests`."""

    def __init__(
        self,
        tools: ToolRequests,
        index: SearchIndex,
        resolve: CallerResolver,
        lists: Lists,
        section: SectionReader,
        *,
        mode: MetaToolsMode,
        max_results: int,
        schema_of: Any,
    ) -> None:
        """`section`: the server's tools (what `lists` pages after the pair); `schema_of(name)`: the input schema
        of a tool by the name this server's clients use."""
        self._tools = tools
        self._index = index
        self._resolve = resolve
        self._lists = lists
        self._section = section
        self._mode = mode
        self._max_results = max_results
        self._schema_of = schema_of
        self.lead = Lead(tuple(meta_tool_definitions(max_results)), alone=mode == "only")
        """What `tools/list` shows before (or instead of) the tools: `Lists.page` and `Lists.page_json` take it."""

    def register(self, server: Server[Any]) -> None:
        """Replace the plain tool handlers (registered before) with these."""
        server.add_request_handler("tools/list", types.PaginatedRequestParams, self.list)
        server.add_request_handler("tools/call", types.CallToolRequestParams, self.call)

    async def list(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await list_result(self._lists, self._section, "tools", asking, params.cursor, lead=self.lead)

    async def call(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        arguments: Mapping[str, Any] = params.arguments or {}
        if params.name == SEARCH_TOOL:
            return await self._search(ctx, arguments)
        if params.name != CALL_TOOL:
            return await self._tools.call(ctx, params)
        name, inner = arguments.get("name"), arguments.get("arguments", {})
        if not isinstance(name, str) or not name:
            return hub_error_result(f"{CALL_TOOL} needs the name of a tool ({SEARCH_TOOL} finds them)")
        if not isinstance(inner, dict):
            return hub_error_result(_NOT_AN_OBJECT)
        forwarded = types.CallToolRequestParams(name=name, arguments=cast("dict[str, Any]", inner), _meta=params.meta)
        return await self._tools.call(ctx, forwarded)

    async def _search(self, ctx: ServerRequestContext[Any, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        query, limit, schemas = arguments.get("query"), arguments.get("limit", 10), arguments.get("schemas", False)
        if not isinstance(query, str) or not query.strip():
            return hub_error_result(f"{SEARCH_TOOL} needs a query: words describing what the tool should do")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            return hub_error_result("limit must be a positive integer")

        def visible(public_name: str) -> bool:
            return asking.allows(public_name, "tool")

        hits = self._index.search(query, min(limit, self._max_results), None if asking.access is None else visible)
        found: list[dict[str, Any]] = []
        for hit in hits:
            summary = hit.summary()
            if schemas is True:
                summary["inputSchema"] = self._schema_of(hit.name) or {"type": "object"}
            found.append(summary)
        text = (
            json.dumps(found, ensure_ascii=False, indent=1)
            if found
            else f"no tool you may call matches {query!r}: try other words"
        )
        return {
            "resultType": "complete",
            "content": [{"type": "text", "text": text}],
            "structuredContent": {"tools": found},
            "isError": False,
        }
