"""The downstream of the catalog-scale benchmark: many connectors' worth of tools from one process.

`python bench/catalog_server.py --http PORT [--tools 100]` serves Streamable HTTP on 127.0.0.1:PORT at
`/<connector>/mcp` for any connector name: each path is its own MCP server as far as a client can tell, listing
`--tools` tools generated from the connector's name (the same definitions `bench/catalog_scale.py` builds
in-process, so both modes measure one catalog). Tools answer a call with their own name. One SDK low-level
server answers every path: 100 connectors cost one process, not 100.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from starlette.requests import Request

WORDS = [
    "get",
    "list",
    "create",
    "update",
    "delete",
    "search",
    "issue",
    "ticket",
    "invoice",
    "customer",
    "order",
    "file",
    "folder",
    "message",
    "channel",
    "user",
    "repository",
    "branch",
    "commit",
    "weather",
    "forecast",
    "calendar",
    "event",
    "meeting",
    "note",
    "page",
    "database",
    "table",
    "query",
    "report",
]


def connector_name(index: int) -> str:
    return f"c{index:02d}"


def tool_definitions(connector: str, tools: int) -> list[dict[str, Any]]:
    """The connector's tools: names and descriptions drawn from `WORDS`, reproducibly per connector name."""
    rng = random.Random(f"catalog-scale/{connector}")  # noqa: S311 - reproducible fixture names, not secrets
    definitions: list[dict[str, Any]] = []
    for index in range(tools):
        verb, noun, other = rng.choice(WORDS), rng.choice(WORDS), rng.choice(WORDS)
        definitions.append(
            {
                "name": f"{verb}_{noun}_{index}",
                "description": f"{verb.capitalize()} a {noun} of the {other} service (connector {connector}).",
                "inputSchema": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "limit": {"type": "integer"}},
                    "required": ["id"],
                },
            }
        )
    return definitions


def build(tools: int) -> Server[Any]:
    """One server whose tool list depends on the request's path (`/<connector>/mcp`)."""
    lists: dict[str, list[dict[str, Any]]] = {}

    def connector_of(ctx: ServerRequestContext[Any, Any]) -> str:
        request = ctx.request
        return str(request.path_params.get("connector", "")) if isinstance(request, Request) else ""

    def tools_of(connector: str) -> list[dict[str, Any]]:
        found = lists.get(connector)
        if found is None:
            found = lists[connector] = tool_definitions(connector, tools)
        return found

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        return {"resultType": "complete", "tools": tools_of(connector_of(ctx)), "ttlMs": 60_000, "cacheScope": "public"}

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        known = any(tool["name"] == params.name for tool in tools_of(connector_of(ctx)))
        text = params.name if known else "no such tool"
        return {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": not known}

    def input_schema(name: str) -> dict[str, Any] | None:
        del name
        return {"type": "object"}

    server: Server[Any] = Server("bench-catalog", version="1.0", get_tool_input_schema=input_schema)
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--http", type=int, required=True, help="serve Streamable HTTP on 127.0.0.1:PORT")
    parser.add_argument("--tools", type=int, default=100, help="tools per connector")
    args = parser.parse_args()
    import uvicorn

    app = build(args.tools).streamable_http_app(streamable_http_path="/{connector}/mcp")
    uvicorn.run(app, host="127.0.0.1", port=args.http, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
