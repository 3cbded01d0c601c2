"""A lean HTTP/1.1 client for one origin: POSTs over kept-alive connections (RFC 9112,
https://www.rfc-editor.org/rfc/rfc9112), on asyncio's Protocol API with llhttp (`httptools`) parsing the answers.

The lean client of 2026-07-28 Streamable HTTP connectors (`mcp_hub.downstream.lean_http`) posts one JSON-RPC
message per request; a general client's layers (aiohttp: request and response objects, header multidicts, payload
registry, connector, stream readers, timers) were a fifth of the hub's Python work per call. This module writes a
request as one buffer (request line, header section and body in one `write`) and hands back the answer's status,
header fields and body as llhttp delivers them:

- Framing (RFC 9112 §6.3): Content-Length, the chunked transfer coding, or, without either, the body ends with the
  server's orderly close of the connection (a reset, or the hub's own close, leaves it incomplete: §8). Over TLS,
  a close without the server's `close_notify` (§9.8's incomplete close) ends it too, as on the SDK path: httpx2
  reads such a close as the end of the stream (httpcore2 wraps TLS with anyio's `standard_compatible=False`). It
  could be told here (uvloop calls `eof_received` only after a `close_notify`; asyncio's loop calls it either way,
  but its `SSLObject` then reads b"" only after one), but refusing it would fail on this path alone the servers
  that close without one, and would guard nothing: an answer is one JSON object, or SSE events each dispatched
  only at its blank line, so a body cut short never reads as a whole message on either path. Interim 1xx answers
  are skipped (RFC 9110 §15.2); `101` (an upgrade nobody asked for) and whatever llhttp refuses (strict mode: no
  obsolete line folding, no bare LF, no conflicting lengths) is a `DownstreamProtocolError`, as is a header
  section over `max_header_bytes`.
- Names (RFC 9110 §4.2.1, RFC 5891): a host name that is not ASCII is looked up, and sent in the Host field and as
  the TLS server name, in its IDNA 2008 form (an A-label per label, as httpx2 encodes it on the SDK path: the `idna`
  package), encoded once when the pool is made; a name that has none is refused then (`ValueError`). The Host
  field names the port only when it is not the scheme's default (RFC 3986 §6.2.3), as httpx2 writes it. A name's
  addresses are tried as RFC 8305 says (`mcp_hub.downstream.happy_eyeballs`, as anyio does for httpx2), so that a
  silent one (an IPv6 route that drops packets, say) costs 250 ms, not the connect timeout; an address given as
  such is connected to directly.
- Persistence (RFC 9112 §9.3): a connection goes back to the pool when its answer was read to the end and neither
  side asked to close it (`Connection: close`, or an HTTP/1.0 answer without keep-alive: llhttp's
  `should_keep_alive`); the newest idle connection is used first. At most `max_idle` are kept, each for at most
  `idle_seconds` (the keep-alive timeout; shorter than the 5 s of uvicorn, Node and hypercorn, so that the client
  lets a connection go before the server does, which is when a request can cross the server's close). An idle
  connection the server closes, or sends anything on, is dropped: when the event loop reads it, or, if the loop has
  not yet, when a poll of its socket before reuse finds something to read.
- Retrying (RFC 9112 §9.3.1): a POST is not idempotent, so a request is sent again (once, on a new connection)
  only when the server cannot have read it: the pooled connection was found closing before the write, or the write
  failed at once. A connection that closes after the request went out fails the request
  (`DownstreamClosedError`): the server may have run it.
- Bounds: the header section (`max_header_bytes`), and as much again for what a chunked body holds besides
  its data (a trailer field or chunk line that never ends: llhttp's binding buffers a field until it ends), the
  body buffered but not yet read (reading pauses above `_HIGH_WATER` and resumes as the reader takes it), and a
  body's size where the reader asks (`Response.read`).
- Cancellation: an answer abandoned before its end (`Response.release` before the last byte, or a task cancelled
  while it waits) closes its connection, which is how a 2026-07-28 client cancels a request over HTTP; at once,
  what is still unsent of the request dropped (a graceful close would go on writing it, for ever if the server
  does not read).
- Errors, all of `mcp_hub.errors`: no connection could be opened (refused, unresolvable, TLS refused, the connect
  timeout): `DownstreamUnreachableError`; the connection ended before the answer did: `DownstreamClosedError`; an
  answer that is not HTTP/1.1: `DownstreamProtocolError`. A header value with CR, LF or NUL is refused before
  anything is sent (RFC 9110 §5.5), a `ValueError`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import ssl
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Final, cast
from urllib.parse import SplitResult, quote, urlsplit

import anyio
import httptools
import idna

from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.happy_eyeballs import first_to_connect
from mcp_hub.errors import DownstreamClosedError, DownstreamProtocolError, DownstreamUnreachableError

_HIGH_WATER: Final = 256 * 1024
"""Body bytes buffered and not yet taken by the reader above which the connection stops reading."""
_CLOSE_SECONDS: Final = 2.0
_TARGET_SAFE: Final = "/%:@!$&'()*+,;=-._~?"
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


Origin = tuple[str, str, int]
"""An origin (RFC 6454 §4): the scheme, the host (as `ascii_host` gives it) and the port."""


def origin_of(url: str) -> Origin | None:
    """The origin of an http or https `url`; None for another URL, or one whose port or host name is not valid."""
    parts = urlsplit(url)
    default_port = _DEFAULT_PORTS.get(parts.scheme)
    if default_port is None or not parts.hostname:
        return None
    try:
        return (parts.scheme, ascii_host(parts.hostname), parts.port or default_port)
    except ValueError:  # not a port number, or a host name without an IDNA form
        return None


def ascii_host(host: str) -> str:
    """`host` (an IP address or a name in lower case, as `urlsplit` gives it) as it is looked up and sent in the Host
    field and the TLS server name: a name that is not ASCII in its IDNA 2008 form (RFC 5891, the `idna` package, as
    httpx2 encodes it on the SDK path); ValueError, naming the host and why, if it has none."""
    if host.isascii():
        return host
    try:
        return idna.encode(host).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"the host name {host!r} has no IDNA 2008 form ({exc})") from None


class Response:
    """The answer to one POST: status and header fields as received, the body as it arrives; `release` it."""

    __slots__ = ("_connection", "status")

    def __init__(self, connection: _Connection) -> None:
        self._connection = connection
        self.status = connection.status

    def header(self, name: bytes) -> str:
        """The value of the field `name` (lower case; the last one received), or ""."""
        value = self._connection.fields.get(name)
        return "" if value is None else value.decode("latin-1")

    async def read(self, limit: int, over: Callable[[], Exception]) -> bytes:
        """The whole body; `over()` is raised as soon as it is known to exceed `limit` bytes (the rest is not read:
        the connection is closed on release)."""
        connection = self._connection
        length = connection.fields.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            self.abandon()
            raise over()
        parts: list[bytes] = []
        size = 0
        while True:
            if connection.body:
                size += connection.buffered
                if size > limit:
                    self.abandon()
                    raise over()
                parts += connection.take()
            if connection.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if connection.error is not None:
                raise connection.error
            await connection.wait()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in (a stream of server-sent events, say)."""
        connection = self._connection
        while True:
            if connection.body:
                for chunk in connection.take():
                    yield chunk
            elif connection.complete:
                return
            elif connection.error is not None:
                raise connection.error
            else:
                await connection.wait()

    def abandon(self) -> None:
        """The answer will not be read further: its connection closes, even if the answer has ended."""
        self._connection.reusable = False
        self._connection.close()

    def release(self) -> None:
        """Done with the answer: its connection goes back to the pool if the answer ended and may be reused,
        else it is closed (an unfinished answer: the request's cancellation)."""
        self._connection.pool.release(self._connection)


class Http1Pool:
    """Kept-alive HTTP/1.1 connections to the origin of `url`, which every request is POSTed to."""

    def __init__(
        self,
        connector_id: ConnectorId,
        url: str,
        *,
        tls: ssl.SSLContext,
        connect_timeout: float,
        max_idle: int = 32,
        idle_seconds: float = 4.0,
        max_header_bytes: int = 64 * 1024,
    ) -> None:
        """`tls` for an `https` URL (and unused for `http`); must be made inside the event loop it serves."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http or https URL: {url!r}")
        self.connector_id = connector_id
        try:
            self._host = ascii_host(parts.hostname)
        except ValueError as exc:
            raise ValueError(f"connector {connector_id!r}: {exc}") from None
        self._port = parts.port or _DEFAULT_PORTS[parts.scheme]
        self._address = _is_address(self._host)
        self.origin: Origin = (parts.scheme, self._host, self._port)
        self._tls = tls if parts.scheme == "https" else None
        host = f"[{self._host}]" if ":" in self._host else self._host
        # A scheme's default port is left out, even where the URL names it (RFC 3986 §6.2.3), as httpx2 writes it:
        # a server that checks the Host field against its own name (the SDK's DNS rebinding check) reads the same.
        self._authority = host if self._port == _DEFAULT_PORTS[parts.scheme] else f"{host}:{self._port}"
        self._request_line = self._head_of(parts)
        self._connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle_seconds = idle_seconds
        self.max_header_bytes = max_header_bytes
        self.loop = asyncio.get_running_loop()
        self._idle: deque[_Connection] = deque()
        self._open: set[_Connection] = set()
        self._expiry: asyncio.TimerHandle | None = None
        self._closed = False

    def on_origin(self, url: str) -> bool:
        """Is `url` on this pool's origin (RFC 6454 §4: the same scheme, host and port)?"""
        return origin_of(url) == self.origin

    async def post(self, headers: Mapping[str, str], body: bytes, *, url: str | None = None) -> Response:
        """Send one request with `headers` (besides Host and Content-Length) and `body`, to the pool's URL or to
        `url`, another on its origin (`on_origin`); its answer's head."""
        if url is None:
            head = self._request_line
        elif self.on_origin(url):
            head = self._head_of(urlsplit(url))
        else:
            raise ValueError(f"not on the origin of connector {self.connector_id!r}: {url!r}")
        request = self._encode(head, headers, body)
        connection = self._pooled()
        if connection is not None and connection.send(request):
            return await connection.response()
        # A pooled connection closed before the request was written, or under the write: the server cannot have
        # read it, so a new connection may carry it (RFC 9112 §9.3.1: a POST is not idempotent, and is never sent
        # again once it may have reached the server).
        connection = await self._connect()
        if not connection.send(request):
            raise self.closed_error()
        return await connection.response()

    def closed_error(self) -> DownstreamClosedError:
        """A connection closed before the answer to its request ended."""
        return DownstreamClosedError(
            self.connector_id, f"connector {self.connector_id!r} closed the connection during the call"
        )

    def _head_of(self, parts: SplitResult) -> str:
        """The request line and Host field of a POST to `parts` (a URL on the pool's origin)."""
        # As a browser sends it (RFC 3986 §2.1): what is not allowed in a path or query percent-encoded, the rest kept.
        target = quote(parts.path or "/", safe=_TARGET_SAFE) + (
            f"?{quote(parts.query, safe=_TARGET_SAFE)}" if parts.query else ""
        )
        return f"POST {target} HTTP/1.1\r\nHost: {self._authority}\r\n"

    def _encode(self, head: str, headers: Mapping[str, str], body: bytes) -> bytes:
        fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
        # One CR and one LF per field line, none inside a name or value (RFC 9110 §5.5: they would smuggle fields).
        if fields.count("\n") != len(headers) or fields.count("\r") != len(headers) or "\0" in fields:
            raise ValueError("a header name or value holds CR, LF or NUL")
        return f"{head}{fields}Content-Length: {len(body)}\r\n\r\n".encode() + body

    def _pooled(self) -> _Connection | None:
        idle = self._idle
        while idle:
            connection = idle.pop()
            if connection.usable and self.loop.time() - connection.idle_since < self._idle_seconds and connection.quiet:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self._closed:
            raise DownstreamClosedError(self.connector_id, f"connector {self.connector_id!r} is closing")
        server_name = self._host if self._tls is not None else None
        try:
            with anyio.fail_after(self._connect_timeout):
                if self._address:  # nothing to look up, one address to try
                    _, connection = await self.loop.create_connection(
                        lambda: _Connection(self), self._host, self._port, ssl=self._tls, server_hostname=server_name
                    )
                else:
                    sock = await first_to_connect(self.loop, self._host, self._port)
                    _, connection = await self.loop.create_connection(
                        lambda: _Connection(self), sock=sock, ssl=self._tls, server_hostname=server_name
                    )
        except OSError as exc:  # refused, unresolvable, unreachable, TLS refused, TimeoutError (the connect bound)
            raise DownstreamUnreachableError(
                self.connector_id, f"connector {self.connector_id!r} is unreachable ({type(exc).__name__})"
            ) from None
        if self._closed:  # closed while this connection was being made
            connection.close()
            raise DownstreamClosedError(self.connector_id, f"connector {self.connector_id!r} is closing")
        self._open.add(connection)
        return connection

    def release(self, connection: _Connection) -> None:
        """Pool `connection` if its answer ended and it may carry another request, else close it."""
        if not (connection.complete and connection.reusable and connection.usable) or self._closed:
            connection.close()
            return
        connection.rest()
        connection.idle_since = now = self.loop.time()
        idle = self._idle
        idle.append(connection)
        if len(idle) > self._max_idle:
            idle.popleft().close()
        if self._expiry is None:
            self._expiry = self.loop.call_at(now + self._idle_seconds, self._expire)

    def _expire(self) -> None:
        """Close the connections idle for `idle_seconds` (oldest first), and come back for the next one."""
        self._expiry = None
        idle = self._idle
        deadline = self.loop.time() - self._idle_seconds
        while idle and idle[0].idle_since <= deadline:
            idle.popleft().close()
        if idle:
            self._expiry = self.loop.call_at(idle[0].idle_since + self._idle_seconds, self._expire)

    def forget(self, connection: _Connection) -> None:
        """`connection` has closed."""
        self._open.discard(connection)
        if connection in self._idle:
            self._idle.remove(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or not, and wait (bounded) until they are closed."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        closing = list(self._open)
        for connection in closing:
            connection.close()
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CLOSE_SECONDS):
            for connection in closing:
                await connection.closed


class _Connection(asyncio.Protocol):
    """One connection and the exchange it carries: llhttp's callbacks fill in the answer, the reader waits on it."""

    def __init__(self, pool: Http1Pool) -> None:
        self.pool = pool
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._poll: select.poll | None = None
        self.closed: asyncio.Future[None] = pool.loop.create_future()
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._busy = False
        self._paused = False
        self._closing = False  # the hub closed it
        self.rest()

    def rest(self) -> None:
        """No exchange: ready for the next request."""
        self._busy = False
        self.status = 0
        self.fields: dict[bytes, bytes] = {}
        self._head_bytes = 0  # received while the head is unfinished (a field llhttp has not completed yet)
        self._field_bytes = 0  # of the fields llhttp completed (the trailer section's too)
        self._stalled_bytes = 0  # received after the head since llhttp last completed something
        self._progressed = False
        self._interim = False
        self._until_close = False
        self.body: list[bytes] = []
        self.buffered = 0
        self.complete = False
        self.reusable = False
        self.error: Exception | None = None
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()

    @property
    def quiet(self) -> bool:
        """Nothing to read on the idle socket that the event loop has not read yet: a server's close (or stray
        bytes) that arrived in the same turn of the loop as the next request is seen before that request is written."""
        return self._poll is None or not self._poll.poll(0)

    @property
    def usable(self) -> bool:
        """Open and not closing (the server's close of an idle connection has been seen otherwise)."""
        transport = self._transport
        return transport is not None and not transport.is_closing()

    def send(self, request: bytes) -> bool:
        """Write a request; False when the connection was closing, or closed under the write (nothing was sent)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        self._busy = True
        transport.write(request)
        # A failed write closes the transport at once (the kernel refused the bytes: the peer had reset).
        return not transport.is_closing()

    async def response(self) -> Response:
        """Wait for the answer's head (status and fields)."""
        try:
            while not self.status and self.error is None:
                await self.wait()
        except BaseException:
            self.close()  # cancelled: the closed connection tells the server
            raise
        if not self.status and self.error is not None:
            raise self.error
        return Response(self)

    async def wait(self) -> None:
        """Until llhttp has delivered more of the answer, or the connection ended."""
        waiter = self.pool.loop.create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def take(self) -> list[bytes]:
        """The body received and not yet taken."""
        body = self.body
        self.body = []
        self.buffered = 0
        if self._paused and self._transport is not None:
            self._paused = False
            self._transport.resume_reading()
        return body

    def close(self) -> None:
        """Close an idle connection gracefully; one that carries an exchange at once, the unsent rest of its
        request dropped (a graceful close waits until the server has read it all, which it may never do)."""
        transport = self._transport
        if transport is None:
            return
        self._closing = True
        if self._busy or transport.get_write_buffer_size():
            transport.abort()
        else:
            transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    # asyncio's protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # a stream transport: `create_connection`
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self._poll = select.poll()  # no descriptor of its own (unlike epoll); any fd number (unlike select)
            self._poll.register(sock.fileno(), select.POLLIN)

    def data_received(self, data: bytes) -> None:
        if not self._busy or self.complete:
            self.reusable = False  # the server sent what nobody asked for
            self.close()
            return
        if not self.status:
            self._head_bytes += len(data)
        self._progressed = False
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if self.complete:  # bytes after the answer: the answer stands, the connection goes
                self.reusable = False
                self.close()
                return
            cause = exc.__context__
            self._fail(cause if isinstance(cause, DownstreamProtocolError) else self._malformed(exc))
            return
        if not self.status:
            if self._head_bytes > self.pool.max_header_bytes:
                self._fail(self._head_too_large())
        elif self._progressed:
            self._stalled_bytes = 0
        else:
            # No body data, field or end in these bytes: a trailer field or a chunk line (its extensions) going on.
            self._stalled_bytes += len(data)
            if self._stalled_bytes > self.pool.max_header_bytes:
                self._fail(self._framing_too_large())

    def eof_received(self) -> bool | None:
        return None  # close; `connection_lost` ends an answer that runs until the close

    def connection_lost(self, exc: Exception | None) -> None:
        if self._busy and not self.complete and self.error is None:
            if self.status and self._until_close and exc is None and not self._closing:
                self.complete = True  # RFC 9112 §6.3 ¶8: the server's close ends this body (not a reset: §8)
            else:
                self.error = self.pool.closed_error()
        self.reusable = False
        self._wake()
        self.pool.forget(self)
        if not self.closed.done():
            self.closed.set_result(None)

    # llhttp's callbacks (httptools calls those the protocol object defines)

    def on_message_begin(self) -> None:
        if self.complete:
            raise self._malformed("a second answer to one request")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._progressed = True
        self._field_bytes += len(name) + len(value)
        if self._field_bytes > self.pool.max_header_bytes:
            raise self._head_too_large()
        self.fields[name.lower()] = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # RFC 9110 §15.2: an interim answer; the final one follows
            self._interim = True
            self.fields = {}
            return
        fields = self.fields
        coding = fields.get(b"transfer-encoding")
        if coding is None:
            self._until_close = b"content-length" not in fields
        else:
            self._until_close = not coding.rstrip().lower().endswith(b"chunked")
        self.status = status
        self._progressed = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._progressed = True
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._interim:
            self._interim = False
            return
        self.complete = True
        self._progressed = True
        self.reusable = self._parser.should_keep_alive()
        self._wake()

    def _malformed(self, why: object) -> DownstreamProtocolError:
        connector = self.pool.connector_id
        return DownstreamProtocolError(connector, f"connector {connector!r} answered with malformed HTTP ({why})")

    def _head_too_large(self) -> DownstreamProtocolError:
        connector, limit = self.pool.connector_id, self.pool.max_header_bytes
        return DownstreamProtocolError(
            connector, f"connector {connector!r} answered with a header section over {limit} bytes; it was not read"
        )

    def _framing_too_large(self) -> DownstreamProtocolError:
        connector, limit = self.pool.connector_id, self.pool.max_header_bytes
        return DownstreamProtocolError(
            connector,
            f"connector {connector!r} answered with a trailer field or chunk line over {limit} bytes; it was not read",
        )
