"""The shape of a tool result the hub itself writes (MCP `CallToolResult`), shared by every layer that answers a call.

https://modelcontextprotocol.io/specification/2026-07-28/server/tools#error-handling: a failure of the tool's
execution is a result with `isError: true`, so the model can read it, not a JSON-RPC error. Texts the hub
writes start with `[mcp-hub]`, so an agent can tell them from what a downstream said.
"""

from __future__ import annotations

from typing import Any, Final

HUB_PREFIX: Final = "[mcp-hub] "


def tool_error_result(text: str) -> dict[str, Any]:
    """A complete `CallToolResult` with `isError: true` and `text` as its one content item."""
    return {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": True}


def hub_error_result(message: str) -> dict[str, Any]:
    """`tool_error_result` with the hub's prefix: a text the hub, not the downstream, wrote."""
    return tool_error_result(HUB_PREFIX + message)
