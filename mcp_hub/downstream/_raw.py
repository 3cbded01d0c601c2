"""Forwarding a request on an SDK client session without building and validating typed models.

The typed `ClientSession.call_tool` costs milliseconds of CPU per call in pydantic validation that a
gateway does not need: the front door validates the result once, for the era its own client speaks.
This module sends the already-shaped params through the session's own stamping (era envelope,
`Mcp-Method`/`Mcp-Name` headers) and dispatcher. It reaches into two private attributes of
`ClientSession` (pinned SDK version `mcp==2.3.0`); `tests/test_federation.py` (forwarding, both eras) and
`tests/test_http_downstream.py` cover it against real servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.client.session import ClientSession
from mcp.shared.dispatcher import CallOptions, ProgressFnT


async def send_raw_request(
    session: ClientSession,
    method: str,
    params: Mapping[str, Any],
    *,
    on_progress: ProgressFnT | None = None,
    request_id: str | None = None,
    meta: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Send `method` with `params` and return the raw result dict (errors raise `MCPError`).

    `request_id` sends it under an id of the caller's choosing; `meta` entries replace the stamped `_meta`
    entries of the same name (a 2026-07-28 downstream's per-request capabilities and log level); `headers` are
    added to the HTTP request's (a 2026-07-28 `tools/call`'s `Mcp-Param-*`; transports without headers ignore
    them).
    """
    data: dict[str, Any] = {"method": method, "params": dict(params)}
    opts: CallOptions = {}
    if on_progress is not None:
        opts["on_progress"] = on_progress
    if request_id is not None:
        opts["request_id"] = request_id
    session._stamp(data, opts)  # pyright: ignore[reportPrivateUsage]
    if headers:
        opts["headers"] = {**opts.get("headers", {}), **headers}
    if meta:
        stamped = data.setdefault("params", {})
        stamped["_meta"] = {**stamped.get("_meta", {}), **meta}
    return await session._dispatcher.send_raw_request(method, data.get("params"), opts)  # pyright: ignore[reportPrivateUsage]
