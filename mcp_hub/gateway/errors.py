"""The one place where hub errors become MCP wire errors (both eras, HTTP and stdio).

Spec: an unknown tool is JSON-RPC `-32602`
(https://modelcontextprotocol.io/specification/2026-07-28/server/tools#error-handling); a failure of a tool's
execution is a result with `isError: true`, so the model sees it. A downstream failure is the tool failing from
the agent's point of view, and the text names the connector. The hub's own refusal of a call outside the
caller's grants is `-32003` (in the implementation-defined range), with the scope it would need.

| error | JSON-RPC error | data |
|---|---|---|
| `DownstreamRejectedError` | the downstream's own code, its message behind the connector id | the downstream's |
| `ResourceNotFoundError` | -32602 | `{"uri": ...}`, the URI asked for (2026-07-28 resources, error handling) |
| any other `CatalogError` (unknown tool or prompt, bad cursor), `ActionNotFoundError` | -32602 | |
| `AccessDeniedError` | -32003 | `{"error": "insufficient_scope", "scope": ...}` |
| `InvalidTokenError` | -32003 | `{"error": "invalid_token"}` |
| `HeldRequestError`, `TooManyPendingError` (a held prompt get or read) | -32003 | `{"error": "approval_required"}` |
| `MissingCapabilityError` | -32021 | `{"requiredCapabilities": ...}` |
| `HeaderMismatchError` | -32020 | |
| any other `InvalidInputError` (e.g. a used or unknown `requestState`) | -32602 | |
| any other `HubError` | -32603 internal error | |

The data of a held request's error also has `reason` and, when there is an action, its summary under
`io.github.mcp-hub/approval` (id, status, link, expiry).

A call refused by a rate limit, quota or loop rule (`mcp_hub.limits`) is HTTP 429 with `Retry-After` and the
JSON-RPC error -32029 (`data`: `error` = the audit outcome, `limit`, `retryAfterSeconds`) on a 2026-07-28 HTTP
request, and a tool error with the same in `_meta["io.github.mcp-hub/limit"]` where the transport has no 429
(a 2025-11-25 session, stdio).

In `tools/call`, every other `DownstreamError`
(unavailable, timeout, garbage) and `TooManyPendingError` are results instead (`tool_result_for`); in other
methods a `DownstreamError` is -32603 naming the connector.
`MapHubErrors`, a server middleware, applies the table to whatever a handler raises.
"""

from __future__ import annotations

from typing import Any, Final

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, MISSING_REQUIRED_CLIENT_CAPABILITY

from mcp_hub.approvals.presentation import APPROVAL_META_KEY
from mcp_hub.errors import (
    AccessDeniedError,
    ActionNotFoundError,
    CatalogError,
    DownstreamError,
    DownstreamRejectedError,
    HeaderMismatchError,
    HeldRequestError,
    HubError,
    InvalidInputError,
    InvalidTokenError,
    MissingCapabilityError,
    ResourceNotFoundError,
    TooManyPendingError,
)
from mcp_hub.limits.calls import LIMIT_META_KEY, Refusal
from mcp_hub.tool_results import hub_error_result

FORBIDDEN: Final = -32003
"""The hub's JSON-RPC error code for a request its caller may not make (outside grants, token no longer valid)."""
LIMITED: Final = -32029
"""The hub's JSON-RPC error code for a call refused by a rate limit, quota or loop rule (sent with HTTP 429)."""


def jsonrpc_error(exc: HubError) -> MCPError:
    """The JSON-RPC error a client gets for `exc` (see the table above)."""
    code, data = _code_and_data(exc)
    return MCPError(code=code, message=str(exc), data=data)


def jsonrpc_error_body(exc: HubError, request_id: Any) -> dict[str, Any]:
    """A whole JSON-RPC error response for `exc` (for answers written outside the SDK, e.g. an HTTP 403)."""
    code, data = _code_and_data(exc)
    error: dict[str, Any] = {"code": code, "message": str(exc)}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _code_and_data(exc: HubError) -> tuple[int, Any]:
    if isinstance(exc, DownstreamRejectedError):
        return exc.code, exc.data
    if isinstance(exc, ResourceNotFoundError):
        return INVALID_PARAMS, {"uri": exc.uri}
    if isinstance(exc, CatalogError | ActionNotFoundError):
        return INVALID_PARAMS, None
    if isinstance(exc, AccessDeniedError):
        return FORBIDDEN, {"error": "insufficient_scope", "scope": exc.required_scope}
    if isinstance(exc, InvalidTokenError):
        return FORBIDDEN, {"error": "invalid_token"}
    if isinstance(exc, HeldRequestError | TooManyPendingError):
        data: dict[str, Any] = {"error": "approval_required", "reason": exc.reason}
        if isinstance(exc, HeldRequestError) and exc.approval is not None:
            data[APPROVAL_META_KEY] = dict(exc.approval)
        return FORBIDDEN, data
    if isinstance(exc, MissingCapabilityError):
        return MISSING_REQUIRED_CLIENT_CAPABILITY, {"requiredCapabilities": exc.required}
    if isinstance(exc, HeaderMismatchError):
        return HEADER_MISMATCH, None
    if isinstance(exc, InvalidInputError):
        return INVALID_PARAMS, None
    return INTERNAL_ERROR, None


def tool_result_for(exc: DownstreamError | TooManyPendingError) -> dict[str, Any]:
    """A `tools/call` failure the model should read: a result with `isError: true` naming what failed."""
    result = hub_error_result(str(exc))
    if isinstance(exc, TooManyPendingError):
        # The "429" of a held call: the reason is machine-readable too.
        result["_meta"] = {APPROVAL_META_KEY: {"refused": exc.reason}}
    return result


def limited_result(refusal: Refusal) -> dict[str, Any]:
    """A `tools/call` refused by a limit, where the transport has no 429: a tool error the model reads, with the
    limit and `retryAfterSeconds` in `_meta`."""
    result = hub_error_result(refusal.message)
    result["_meta"] = {LIMIT_META_KEY: refusal.meta()}
    return result


def limited_body(refusal: Refusal, request_id: Any) -> dict[str, Any]:
    """The JSON-RPC error of a call refused by a limit, answered with HTTP 429 and `Retry-After`."""
    error = {"code": LIMITED, "message": refusal.message, "data": {"error": str(refusal.outcome), **refusal.meta()}}
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


class MapHubErrors:
    """Server middleware: a `HubError` raised by any handler becomes its JSON-RPC error (never a 500)."""

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            return await call_next(ctx)
        except HubError as exc:
            raise jsonrpc_error(exc) from None
