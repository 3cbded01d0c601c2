"""The one place where hub errors become wire errors.

Spec: unknown tools are JSON-RPC `-32602` (https://modelcontextprotocol.io/specification/2026-07-28/server/tools#error-handling);
failures of a tool's execution are results with `isError: true`, so the model sees them. A downstream
failure is the tool failing from the agent's point of view, and the text names the connector.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS

from mcp_hub.catalog.catalog import InvalidCursorError
from mcp_hub.errors import DownstreamError, UnknownToolError


def to_mcp_error(exc: UnknownToolError | InvalidCursorError) -> MCPError:
    """Errors the client caused: JSON-RPC invalid params."""
    return MCPError(code=INVALID_PARAMS, message=str(exc))


def tool_error_result(text: str) -> dict[str, Any]:
    return {"resultType": "complete", "content": [{"type": "text", "text": text}], "isError": True}


def downstream_error_result(exc: DownstreamError) -> dict[str, Any]:
    return tool_error_result(f"[mcp-hub] {exc}")
