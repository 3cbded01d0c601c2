"""The hub over stdio, for local desktop clients that launch their servers as subprocesses.

https://modelcontextprotocol.io/specification/2026-07-28/basic/transports#stdio: the client's first
request decides the era (the SDK's dual-era loop). Everything the hub logs goes to stderr.
"""

from __future__ import annotations

from mcp.server.stdio import stdio_server

from mcp_hub.runtime import Hub


async def serve_stdio(hub: Hub) -> None:
    """Run `hub` and serve one client on this process's stdin/stdout until it disconnects."""
    async with hub.running(), stdio_server() as (read_stream, write_stream):
        await hub.server.run(read_stream, write_stream, hub.server.create_initialization_options())
