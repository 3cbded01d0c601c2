"""What the hub's request pipeline needs to know about one MCP request, whichever front end received it.

The pipeline (`tools.py`, `prompts.py`, `resources.py`, `caller.py`, `questions.py`, `relaying.py`, `tasks.py`,
`holds.py`) is written against `HubContext`, not against the SDK: the SDK's `ServerRequestContext` satisfies it
(the SDK front end: the legacy era, the handshake, every method), and so does `fast_path.FastContext` (the
2026-07-28 fast path, https://modelcontextprotocol.io/specification/2026-07-28/basic/transports). A rule added to
the pipeline therefore applies on both paths.

What a 2025-11-25 request needs beyond this (its session's connection, server-to-client requests) only exists on
the SDK path: `sdk_context` narrows to it, and fails loudly if a fast-path request ever got there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import ServerRequestContext


class HubSession(Protocol):
    """The caller's side of one request: what it declared, and what may be sent back on its request's stream."""

    @property
    def client_params(self) -> types.InitializeRequestParams | None: ...

    @property
    def client_capabilities(self) -> types.ClientCapabilities | None: ...

    @property
    def can_send_request(self) -> bool: ...

    async def report_progress(
        self, progress: float, total: float | None = None, message: str | None = None
    ) -> None: ...

    async def send_notification(
        self, notification: types.ServerNotification, related_request_id: types.RequestId | None = None
    ) -> None: ...


class HubContext(Protocol):
    """One inbound MCP request as the pipeline sees it (the fields of the SDK's `ServerRequestContext`)."""

    @property
    def session(self) -> HubSession: ...

    @property
    def protocol_version(self) -> str: ...

    @property
    def method(self) -> str: ...

    @property
    def params(self) -> Mapping[str, Any] | None: ...

    @property
    def request_id(self) -> types.RequestId | None: ...

    @property
    def meta(self) -> Mapping[str, Any] | None: ...

    @property
    def request(self) -> Any:
        """The HTTP request (a Starlette `Request`) when the request came over HTTP; None over stdio."""
        ...


def sdk_context(ctx: HubContext) -> ServerRequestContext[Any, Any]:
    """`ctx` as the SDK's context: only 2025-11-25 (session) requests need it, and only the SDK serves those."""
    if not isinstance(ctx, ServerRequestContext):
        raise TypeError(f"{ctx.method}: a session-era operation reached a request the SDK does not serve")
    return ctx  # pyright: ignore[reportUnknownVariableType]
