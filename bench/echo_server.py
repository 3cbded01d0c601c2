"""The downstream of the benchmarks: an `echo` tool and a `stamp` tool, both protocol eras, stdio or Streamable HTTP.

Run over stdio (`python bench/echo_server.py`) or Streamable HTTP (`python bench/echo_server.py --http PORT`,
served on 127.0.0.1:PORT at /mcp). It is the `echo` of `tests/fixtures/fault_server.py` without the other
tools, with one difference: results carry the fields the 2026-07-28 era requires (`resultType`, and
`ttlMs`/`cacheScope` on lists). The fixture returns bare dicts, which the SDK's server rejects on that era
("Handler returned an invalid result"), so it cannot be called directly by a 2026-07-28 client.

`stamp` answers the wall-clock time (`time.time_ns()`, as decimal text) at which its call reached the server:
`bench/approval_latency.py` compares it with the moment an approval decision returned, in another process.

It runs on uvloop when uvloop is installed (uvicorn's `auto` loop picks it too, as it does for `mcp-hub serve`),
so that the hub and its downstream run on the same kind of event loop; `bench/overhead.py` reports the loop of
every process it measures.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
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
STAMP_TOOL: dict[str, Any] = {
    "name": "stamp",
    "description": "The wall-clock time (ns since the epoch) at which this call arrived",
    "inputSchema": {"type": "object", "properties": {"label": {"type": "string"}}},
}
HAS_UVLOOP = importlib.util.find_spec("uvloop") is not None


def _text_result(text: str, is_error: bool = False) -> dict[str, Any]:
    return {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": is_error}


def build(extra_tools: int = 0) -> Server[Any]:
    """The echo server; results are wire dicts, as the hub's own handlers return them.

    `extra_tools` adds that many inert tools whose names sort before `echo`, to grow the catalog.
    """
    padding: list[dict[str, Any]] = [
        {"name": f"aaa{index:05d}", "description": "Padding", "inputSchema": {"type": "object"}}
        for index in range(extra_tools)
    ]
    tools = [*padding, ECHO_TOOL, STAMP_TOOL]
    schemas: dict[str, dict[str, Any]] = {str(tool["name"]): tool["inputSchema"] for tool in tools}

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        return {"resultType": "complete", "tools": tools, "ttlMs": 60_000, "cacheScope": "public"}

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        arrived = time.time_ns()
        if params.name == "echo":
            return _text_result(str((params.arguments or {}).get("text", "")))
        if params.name == "stamp":
            return _text_result(str(arrived))
        return _text_result("no such tool", is_error=True)

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
        anyio.run(_serve_stdio, extra_tools, backend_options={"use_uvloop": HAS_UVLOOP})
        return
    import uvicorn

    uvicorn.run(
        build(extra_tools).streamable_http_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        # Longer than uvicorn's 5 s: under valgrind (bench/instructions.py) a hub's kept-alive connection can idle
        # that long, and a call racing the close is lost.
        timeout_keep_alive=120,
        loop="auto",  # uvloop when installed, like `mcp-hub serve`
    )


if __name__ == "__main__":
    main()
