"""Building the client transport for a connector, and noticing when it ends.

Streamable HTTP connectors get an HTTP client that tags each message a downstream sends on a request's own
response stream with that request's id (`mcp_hub.downstream.tagging`).

The SDK's client keeps running after its transport hits end-of-file (every pending and later request
fails with CONNECTION_CLOSED), so the hub wraps the read stream and raises a signal the moment the
stream ends: that is how a crashed stdio child or a dropped SSE stream starts a reconnect at once
instead of at the next call.

Every reader is bounded by the connector's `max_message_bytes` (threat T32): stdio lines by the hub's own stdio
transport (`mcp_hub.downstream._stdio`, which also reports broken framing through `on_end`), HTTP bodies and SSE
events by the tagging transport under the HTTP client (`mcp_hub.downstream.tagging`), which reports an abandoned
response through `on_oversized`.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio
import httpx2
from mcp.client._transport import ReadStream, Transport, TransportStreams
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.credentials import SecretValues
from mcp_hub.downstream._stdio import bounded_stdio_client
from mcp_hub.downstream.lean_stdio import RawLane
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.downstream.stderr import StderrLog
from mcp_hub.downstream.tagging import OversizedCallback, RelatedMessageTagger
from mcp_hub.downstream.tls import verifying_context

_HTTP_READ_TIMEOUT_SECONDS = 300.0


class _WatchedReadStream:
    """Delegates to a transport's read stream and calls `on_end` once when it ends."""

    def __init__(self, inner: ReadStream[SessionMessage | Exception], on_end: Callable[[str], None]) -> None:
        self._inner = inner
        self._on_end = on_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end("the downstream closed the connection")
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> bool | None:
        await self.aclose()
        return None


class WatchedTransport:
    """A `Transport` whose end (EOF, crash, close) is reported through `on_end`."""

    def __init__(self, inner: contextlib.AbstractAsyncContextManager[TransportStreams], on_end: Callable[[str], None]):
        self._inner = inner
        self._on_end = on_end

    async def __aenter__(self) -> TransportStreams:
        read_stream, write_stream = await self._inner.__aenter__()
        return _WatchedReadStream(read_stream, self._on_end), write_stream

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc_val, exc_tb)


@contextlib.asynccontextmanager
async def downstream_auth(spec: ConnectorSpec, connect_timeout: float) -> AsyncGenerator[ClientCredentialsAuth | None]:
    """The connector's own credentials for an OAuth-protected downstream (never an agent's token), shared by the
    SDK client's transport and the lean client of the same connection."""
    oauth = spec.resolved_oauth()
    if oauth is None or spec.url is None:
        yield None
        return
    async with ClientCredentialsAuth(spec.id, oauth, spec.url, timeout=connect_timeout) as auth:
        yield auth


@contextlib.asynccontextmanager
async def _streamable_http(
    spec: ConnectorSpec, url: str, connect_timeout: float, on_oversized: OversizedCallback, auth: httpx2.Auth | None
) -> AsyncGenerator[TransportStreams]:
    timeout = httpx2.Timeout(connect_timeout, read=_HTTP_READ_TIMEOUT_SECONDS)
    async with (
        httpx2.AsyncClient(
            headers=spec.resolved_headers(),
            timeout=timeout,
            auth=auth,
            transport=_capped_transport(spec, on_oversized),
        ) as http_client,
        # The tagging transport below enforces the cap first; the SDK's own event bound is only a backstop.
        streamable_http_client(
            url, http_client=http_client, max_sse_event_size=spec.max_message_bytes + 1024
        ) as streams,
    ):
        yield streams


def _capped_transport(spec: ConnectorSpec, on_oversized: OversizedCallback) -> httpx2.AsyncBaseTransport:
    return RelatedMessageTagger(
        httpx2.AsyncHTTPTransport(verify=verifying_context()),
        max_message_bytes=spec.max_message_bytes,
        on_oversized=on_oversized,
    )


@contextlib.asynccontextmanager
async def _sse(
    spec: ConnectorSpec, url: str, connect_timeout: float, on_oversized: OversizedCallback, auth: httpx2.Auth | None
) -> AsyncGenerator[TransportStreams]:
    def capped_client(
        headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None
    ) -> httpx2.AsyncClient:
        # As the SDK's `create_mcp_http_client`, over the capped transport (the SDK also bounds an SSE event by
        # 1 MiB on this transport, whatever the connector's cap).
        return httpx2.AsyncClient(
            headers=headers, timeout=timeout, auth=auth, transport=_capped_transport(spec, on_oversized)
        )

    async with sse_client(
        url,
        headers=spec.resolved_headers(),
        timeout=connect_timeout,
        auth=auth,
        httpx_client_factory=capped_client,
    ) as streams:
        yield streams


def _find_command(command: str) -> str:
    """`command` as given, or from the hub's own environment (its venv's scripts) when not on PATH."""
    if "/" in command or shutil.which(command):
        return command
    sibling = Path(sys.executable).parent / command
    return str(sibling) if sibling.exists() else command


def build_transport(
    spec: ConnectorSpec,
    *,
    connect_timeout: float,
    on_end: Callable[[str], None],
    on_oversized: OversizedCallback,
    auth: httpx2.Auth | None = None,
    lane: RawLane | None = None,
) -> Transport:
    """The transport for `spec`, with `${NAME}` references expanded now (at connect time); `on_end(reason)` when
    the connection ends or its framing breaks, `on_oversized(request id)` when an HTTP response was over the cap.
    `auth` is the connector's own credentials (`downstream_auth`); `lane` carries lean requests on a stdio child's
    pipes beside the SDK session (`mcp_hub.downstream.lean_stdio`). A stdio child's stderr is logged as the
    connector's (`mcp_hub.downstream.stderr`), scrubbed of its secrets."""
    inner: contextlib.AbstractAsyncContextManager[TransportStreams]
    if spec.transport == "stdio":
        assert spec.command is not None
        params = StdioServerParameters(
            command=_find_command(spec.command), args=list(spec.args), env=spec.resolved_env() or None, cwd=spec.cwd
        )
        # A credential is always a `${NAME}` reference (a literal one is refused by the connector's file).
        stderr = StderrLog(spec.id, SecretValues(spec.secret_values()))
        inner = bounded_stdio_client(
            params, max_line_bytes=spec.max_message_bytes, on_broken=on_end, stderr=stderr, lane=lane
        )
    elif spec.transport == "http":
        assert spec.url is not None
        inner = _streamable_http(spec, spec.url, connect_timeout, on_oversized, auth)
    else:
        assert spec.url is not None
        inner = _sse(spec, spec.url, connect_timeout, on_oversized, auth)
    return WatchedTransport(inner, on_end)
