"""The downstream of the overhead benchmark: one `echo` tool, both protocol eras, stdio or Streamable HTTP.

Run over stdio (`python bench/echo_server.py`) or Streamable HTTP (`python bench/echo_server.py --http PORT`,
served on 127.0.0.1:PORT at /mcp). It is the `echo` of `tests/fixtures/fault_server.py` without the other
tools, with one difference: results carry the fields the 2026-07-28 era requires (`resultType`, and
`ttlMs`/`cacheScope` on lists). The fixture returns bare dicts, which the SDK's server rejects on that era
("Handler returned an invalid result"), so it cannot be called directly by a 2026-07-28 client.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server

ECHO_TOOL: dict[str, Any] = {
    "name": "echo",
    "description": "Echo text",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}},
}


def build(extra_tools: int = 0) -> Server[Any]:
    """The echo server; results are wire dicts, as the hub's own handlers return them.

    `extra_tools` adds that many inert tools whose names sort before `echo`, to grow the catalog.
    """
    padding: list[dict[str, Any]] = [
        {"name": f"aaa{index:05d}", "description": "Padding", "inputSchema": {"type": "object"}}
        for index in range(extra_tools)
    ]
    tools = [*padding, ECHO_TOOL]
    schemas: dict[str, dict[str, Any]] = {str(tool["name"]): tool["inputSchema"] for tool in tools}

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        return {"resultType": "complete", "tools": tools, "ttlMs": 60_000, "cacheScope": "public"}

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        if params.name != "echo":
            return {"resultType": "complete", "content": [{"type": "text", "text": "no such tool"}], "isError": True}
        text = str((params.arguments or {}).get("text", ""))
        return {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": False}

    def input_schema(name: str) -> dict[str, Any] | None:
        # Without this lookup the SDK answers every 2026-07-28 tools/call that has arguments by first running
        # the whole tools/list handler, to validate `Mcp-Param-*` headers (MCPServer passes its own lookup).
        return schemas.get(name)

    server: Server[Any] = Server("bench-echo", version="1.0", get_tool_input_schema=input_schema)
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    return server


async def _serve_stdio(extra_tools: int) -> None:
    server = build(extra_tools)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--http", type=int, help="serve Streamable HTTP on 127.0.0.1:PORT instead of stdio")
    parser.add_argument("--extra-tools", type=int, default=0, help="inert tools to add (a bigger catalog)")
    args = parser.parse_args()
    port: int | None = args.http
    extra_tools: int = args.extra_tools
    if port is None:
        anyio.run(_serve_stdio, extra_tools)
        return
    import uvicorn

    uvicorn.run(
        build(extra_tools).streamable_http_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


if __name__ == "__main__":
    main()
