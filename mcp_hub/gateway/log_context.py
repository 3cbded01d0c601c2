"""`RequestLogContext`: every log line written while a request is handled names it (`request_id`, the JSON-RPC id,
capped), the per-call line included (`mcp_hub.audit.log_lines`); on both front ends, as server middleware."""

from __future__ import annotations

from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from structlog.contextvars import bind_contextvars, reset_contextvars

_MAX_ID_CHARS: Final = 128
"""A JSON-RPC id is the client's choice, and may be any string: a log line gets its first characters."""


class RequestLogContext:
    """Server middleware: binds `request_id` for the log lines of the request's handling (a contextvar: no cost
    on lines that are filtered out, and nothing left behind once the request is done)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        request_id = ctx.request_id
        if isinstance(request_id, str) and len(request_id) > _MAX_ID_CHARS:
            request_id = request_id[:_MAX_ID_CHARS] + "…"
        tokens = bind_contextvars(request_id=request_id)
        try:
            return await call_next(ctx)
        finally:
            reset_contextvars(**tokens)
