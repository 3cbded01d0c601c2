"""The lean client's HTTP/1.1 transport (`mcp_hub.downstream.http1`): persistence, framing, bounds, cancellation.

Most answers here come from `ScriptedServer`, a raw HTTP/1.1 server on a real socket that answers each request
with the bytes a test gives it (the malformed, the oversized and the close-delimited cannot be had from uvicorn);
what a real MCP server streams (a chunked SSE answer with progress) comes from the fault fixture
(`tests/fixtures/fault_server.py`). Mandated by RFC 9112 (https://www.rfc-editor.org/rfc/rfc9112) or RFC 9110 where
the docstring says so; otherwise the hub's choice. The forwarding semantics on top (errors, OAuth, progress,
cancellation, size caps through a hub) are tests/test_lean_forwarding.py's.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
import struct
import threading
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.http1 import Http1Pool, Response
from mcp_hub.downstream.lean_http import LeanHttpClient, StreamHandlers
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.downstream.tls import verifying_context
from mcp_hub.errors import DownstreamClosedError, DownstreamProtocolError, DownstreamUnreachableError
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

CONNECTOR = ConnectorId("raw")
OK = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
HANG = b""
"""An answer of no bytes: the server reads the request and says nothing."""


class TooBig(Exception):  # noqa: N818  # raised by the test's `over` callback only
    pass


@dataclass
class Seen:
    """What the server saw on one connection: the requests' bodies, and whether the client closed it."""

    bodies: list[bytes] = field(default_factory=list[bytes])
    heads: list[bytes] = field(default_factory=list[bytes])
    closed: anyio.Event = field(default_factory=anyio.Event)


class ScriptedServer:
    """A raw HTTP/1.1 server on 127.0.0.1: the n-th request (over all connections) gets `answers[n]` written as
    it is (`HANG`: nothing, until the client closes); after one in `close_after`, the server closes."""

    def __init__(
        self, answers: list[bytes], *, close_after: frozenset[int] = frozenset(), tls: ssl.SSLContext | None = None
    ):
        self._answers = answers
        self._close_after = close_after
        self._tls = tls
        self.connections: list[Seen] = []
        self.requests = 0
        self.request_arrived = anyio.Event()
        self.url = ""
        self.port = 0

    @asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0) -> AsyncGenerator[ScriptedServer]:
        """Listening on `host` (an address) and `port` (any free one by default)."""
        server = await asyncio.start_server(self._serve, host, port, ssl=self._tls)
        self.port = port = server.sockets[0].getsockname()[1]
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.url = f"{'https' if self._tls else 'http'}://{authority}/mcp?x=1"
        try:
            yield self
        finally:
            server.close()
            for seen in self.connections:
                await seen.closed.wait()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = Seen()
        self.connections.append(seen)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                seen.heads.append(head)
                seen.bodies.append(await reader.readexactly(length))
                number, self.requests = self.requests, self.requests + 1
                self.request_arrived.set()
                self.request_arrived = anyio.Event()
                answer = self._answers[number]
                if answer:
                    writer.write(answer)
                    await writer.drain()
                if number in self._close_after:
                    break
                if not answer:
                    await reader.read()  # until the client closes
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()
            seen.closed.set()


@asynccontextmanager
async def pool_for(server: ScriptedServer, **options: Any) -> AsyncGenerator[Http1Pool]:
    # No idle connection is closed by the clock unless a test asks: each test sees its own cause at work.
    pool = Http1Pool(
        CONNECTOR, server.url, tls=verifying_context(), connect_timeout=5, **{"idle_seconds": 60, **options}
    )
    try:
        yield pool
    finally:
        await pool.aclose()


async def body_of(pool: Http1Pool, payload: bytes = b"{}", limit: int = 1 << 20) -> tuple[int, bytes]:
    response = await pool.post({"content-type": "application/json"}, payload)
    try:
        return response.status, await response.read(limit, TooBig)
    finally:
        response.release()


async def ignore_notification(message: dict[str, Any]) -> None:
    """A `StreamHandlers.on_notification` for tests that expect none worth keeping."""
    del message


async def refuse_question(message: dict[str, Any]) -> dict[str, Any]:
    """A `StreamHandlers.on_question` that answers a downstream's question with an error."""
    return {"jsonrpc": "2.0", "id": message.get("id"), "error": {"code": -32600, "message": "no"}}


NO_STREAM: Final = StreamHandlers(None, ignore_notification, refuse_question)
"""Handlers for calls whose stream carries nothing the test looks at."""


def lean_client(
    connector_id: str,
    url: str,
    lost: list[str],
    *,
    auth: ClientCredentialsAuth | None = None,
    max_message_bytes: int = 1 << 20,
    connect_timeout: float = 5,
    tls: ssl.SSLContext | None = None,
) -> LeanHttpClient:
    """A `LeanHttpClient` with no extra headers that notes in `lost` each connection loss it reports (`tls`: the
    hub's verifying context by default)."""
    return LeanHttpClient(
        ConnectorId(connector_id),
        url,
        headers={},
        auth=auth,
        max_message_bytes=max_message_bytes,
        connect_timeout=connect_timeout,
        on_lost=lost.append,
        tls=tls,
    )


async def test_requests_in_turn_share_one_kept_alive_connection() -> None:
    """RFC 9112 §9.3: HTTP/1.1 connections persist unless one side says otherwise; the pool reuses its one."""
    async with ScriptedServer([OK] * 3).running() as server, pool_for(server) as pool:
        answers = [await body_of(pool, f"[{n}]".encode()) for n in range(3)]
    assert answers == [(200, b'{"ok":true}')] * 3
    assert len(server.connections) == 1
    assert server.connections[0].bodies == [b"[0]", b"[1]", b"[2]"]


async def test_a_connection_the_server_closed_while_idle_does_not_fail_the_next_call() -> None:
    """Our choice (RFC 9112 §9.3.1 allows it: the server cannot have read the request): a pooled connection the
    server has closed is not written to; the next request goes on a new connection, and is sent once."""
    async with ScriptedServer([OK, OK], close_after=frozenset({0})).running() as server, pool_for(server) as pool:
        first = await body_of(pool)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()
        second = await body_of(pool)
    assert first == second == (200, b'{"ok":true}')
    assert [len(seen.bodies) for seen in server.connections] == [1, 1]


def _serve_twice_closing_the_first(
    listener: socket.socket, released: threading.Event, closed: threading.Event
) -> list[int]:
    """A blocking server thread: two connections, one request each; the first is closed once `released`."""
    served: list[int] = []
    for number in range(2):
        connection, _ = listener.accept()
        with connection:
            received = b""
            while b"\r\n\r\n{}" not in received:
                received += connection.recv(65536)
            connection.sendall(OK)
            served.append(number)
            if number == 0:
                released.wait(5)
                connection.shutdown(socket.SHUT_RDWR)
        if number == 0:
            closed.set()
    return served


async def test_a_close_the_event_loop_has_not_read_yet_is_found_before_the_write() -> None:
    """Our choice (RFC 9112 §9.3.1 allows it: the server cannot have read the request): the server's close of an
    idle connection can reach the socket in the same turn of the event loop as the next request; a poll of the
    socket finds it before the write (here the loop is held while the close arrives), and the request goes on a
    new connection."""
    released, closed = threading.Event(), threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        result: list[list[int]] = []
        listener.settimeout(10)  # a failing test's client never comes back: the thread ends anyway
        server = threading.Thread(
            target=lambda: result.append(_serve_twice_closing_the_first(listener, released, closed)), daemon=True
        )
        server.start()
        pool = Http1Pool(CONNECTOR, f"http://127.0.0.1:{port}/", tls=verifying_context(), connect_timeout=5)
        try:
            first = await body_of(pool)
            released.set()
            assert closed.wait(5)  # blocking on purpose: the event loop must not read the close first
            second = await body_of(pool)
        finally:
            await pool.aclose()
            server.join(5)
    assert first == second == (200, b'{"ok":true}')
    assert result == [[0, 1]]


async def test_a_request_whose_connection_closes_after_it_was_sent_is_not_sent_again() -> None:
    """RFC 9112 §9.3.1: a POST is not idempotent; once it may have reached the server, a close without an
    answer fails it (`DownstreamClosedError`) instead of repeating it, on a reused connection too."""
    async with ScriptedServer([OK, b""], close_after=frozenset({1})).running() as server, pool_for(server) as pool:
        await body_of(pool)
        with pytest.raises(DownstreamClosedError, match="closed the connection during the call"):
            await body_of(pool)
    assert server.requests == 2
    assert len(server.connections) == 1


async def test_connection_close_from_the_server_is_honoured() -> None:
    """RFC 9112 §9.6: after an answer with `Connection: close` the client sends nothing more on that connection
    (and closes it, even if the server keeps it open)."""
    closing = OK.replace(b"Content-Length", b"Connection: close\r\nContent-Length")
    async with ScriptedServer([closing, OK]).running() as server, pool_for(server) as pool:
        await body_of(pool)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()
        await body_of(pool)
    assert [len(seen.bodies) for seen in server.connections] == [1, 1]


async def test_an_http_1_0_answer_without_keep_alive_is_not_reused() -> None:
    """RFC 9112 §9.3: an HTTP/1.0 answer without `keep-alive` ends its connection."""
    old = OK.replace(b"HTTP/1.1", b"HTTP/1.0")
    async with ScriptedServer([old, OK]).running() as server, pool_for(server) as pool:
        await body_of(pool)
        await body_of(pool)
    assert len(server.connections) == 2


async def test_a_chunked_body_is_read_whole_and_the_connection_kept() -> None:
    """RFC 9112 §7.1: the chunked transfer coding, with a chunk extension and a trailer section."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'4;ext=1\r\n{"a"\r\n'
        b"3\r\n:[1\r\n"
        b"2\r\n]}\r\n"
        b"0\r\nX-Trailer: yes\r\n\r\n"
    )
    async with ScriptedServer([chunked, OK]).running() as server, pool_for(server) as pool:
        first = await body_of(pool)
        second = await body_of(pool)
    assert first == (200, b'{"a":[1]}')
    assert second == (200, b'{"ok":true}')
    assert len(server.connections) == 1


async def test_a_body_without_a_length_ends_with_the_connection() -> None:
    """RFC 9112 §6.3 ¶8: neither Content-Length nor chunked: the body is what comes until the server closes."""
    until_close = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + b'{"long":"' + b"x" * 100_000 + b'"}'
    async with (
        ScriptedServer([until_close, OK], close_after=frozenset({0})).running() as server,
        pool_for(server) as pool,
    ):
        status, body = await body_of(pool)
        await body_of(pool)
    assert (status, len(body)) == (200, 100_011)
    assert len(server.connections) == 2


UNTIL_CLOSE_HEAD = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"cut": '


async def _reset_after_a_partial_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n{}")
    writer.write(UNTIL_CLOSE_HEAD)
    await writer.drain()
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # with SO_LINGER 0: a reset, not a close


async def test_a_body_without_a_length_cut_by_a_reset_is_not_complete() -> None:
    """RFC 9112 §8 (an incomplete message MUST be recorded as incomplete): a body that runs until the close
    ends only with the server's orderly close; a reset fails the request (`DownstreamClosedError`)."""
    server = await asyncio.start_server(_reset_after_a_partial_body, "127.0.0.1", 0)
    pool = Http1Pool(
        CONNECTOR, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", tls=verifying_context(), connect_timeout=5
    )
    try:
        with anyio.fail_after(5), pytest.raises(DownstreamClosedError):
            await body_of(pool)
    finally:
        await pool.aclose()
        server.close()


async def test_a_body_without_a_length_cut_by_closing_the_pool_is_not_complete() -> None:
    """RFC 9112 §8: the hub's own close (the pool closing under a call) does not end a body that runs until
    the close either; the reader gets `DownstreamClosedError`, not the body so far."""
    async with ScriptedServer([UNTIL_CLOSE_HEAD]).running() as server:
        pool = Http1Pool(CONNECTOR, server.url, tls=verifying_context(), connect_timeout=5)
        response = await pool.post({}, b"{}")
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(pool.aclose)
                with anyio.fail_after(5), pytest.raises(DownstreamClosedError):
                    await response.read(1 << 20, TooBig)
        finally:
            response.release()
            await pool.aclose()


async def test_an_interim_answer_is_skipped() -> None:
    """RFC 9110 §15.2: 1xx answers are interim; the final one follows on the same connection."""
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n" + OK
    async with ScriptedServer([early, OK]).running() as server, pool_for(server) as pool:
        assert await body_of(pool) == (200, b'{"ok":true}')
        assert await body_of(pool) == (200, b'{"ok":true}')
    assert len(server.connections) == 1


@pytest.mark.parametrize("pieces", [1, 40], ids=["in-one-write", "unfinished-field"])
async def test_an_oversized_header_section_fails_the_request_and_closes_the_connection(pieces: int) -> None:
    """Our choice (RFC 9112 §2.3 lets a recipient bound it): a header section over `max_header_bytes` fails the
    request as not MCP, and the connection is closed; a field that never ends is cut at the bound too."""
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"y" * 20_000
    answer = big + b"\r\nContent-Length: 2\r\n\r\n{}" if pieces == 1 else big * pieces
    async with ScriptedServer([answer]).running() as server, pool_for(server, max_header_bytes=16 * 1024) as pool:
        with pytest.raises(DownstreamProtocolError, match="header section over 16384 bytes"):
            await body_of(pool)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()


@pytest.mark.parametrize(
    "framing",
    [b"0\r\nX-Trailer: " + b"t" * 200_000, b"1;ext=" + b"e" * 200_000],
    ids=["trailer-field", "chunk-extension"],
)
async def test_a_trailer_field_or_chunk_line_that_never_ends_fails_the_request(framing: bytes) -> None:
    """Threats T25, T32, our choice (RFC 9112 §7.1.1, §7.1.2 let a recipient bound them): after the head, the
    bytes of a chunked body that llhttp completes nothing with (a trailer field, a chunk line) are bounded as the
    header section is, instead of held (llhttp's binding buffers a field until it ends) for as long as the
    server sends them; the request fails as not MCP and the connection is closed."""
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n" + framing
    async with ScriptedServer([answer]).running() as server, pool_for(server, max_header_bytes=16 * 1024) as pool:
        with anyio.fail_after(5), pytest.raises(DownstreamProtocolError, match="over 16384 bytes"):
            await body_of(pool)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTX/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n b\r\nContent-Length: 2\r\n\r\n{}",
    ],
    ids=["status-line", "two-lengths", "chunk-size", "obsolete-fold"],
)
async def test_a_malformed_answer_is_a_protocol_error_and_its_connection_is_dropped(answer: bytes) -> None:
    """RFC 9112 §6.3, §5.2 (obs-fold rejected), our choice of error: what llhttp's strict mode refuses fails the
    request as not MCP; the connection is closed and the next request gets a new one."""
    async with ScriptedServer([answer, OK]).running() as server, pool_for(server) as pool:
        with pytest.raises(DownstreamProtocolError, match="malformed HTTP"):
            await body_of(pool)
        assert await body_of(pool) == (200, b'{"ok":true}')
    assert len(server.connections) == 2


async def test_bytes_after_the_answer_cost_the_connection_not_the_answer() -> None:
    """RFC 9112 §9.3 (no pipelining here, so more bytes are unsolicited), our choice: the answer stands, the
    connection is not reused."""
    async with ScriptedServer([OK + b"HTTP/1.1 200 OK\r\n\r\n", OK]).running() as server, pool_for(server) as pool:
        assert await body_of(pool) == (200, b'{"ok":true}')
        assert await body_of(pool) == (200, b'{"ok":true}')
    assert len(server.connections) == 2


@pytest.mark.parametrize(
    "answer",
    [OK, b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{"ok":\r\n5\r\ntrue}\r\n0\r\n\r\n'],
    ids=["content-length", "chunked"],
)
async def test_a_body_over_the_limit_is_abandoned_and_its_connection_closed(answer: bytes) -> None:
    """Threat T32, our choice: a body over the reader's limit fails as soon as that is known (at once from a
    Content-Length); its connection is closed, even when the whole body had arrived."""
    async with ScriptedServer([answer]).running() as server, pool_for(server) as pool:
        with pytest.raises(TooBig):
            await body_of(pool, limit=10)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()


async def test_cancelling_a_request_closes_its_connection() -> None:
    """Spec 2026-07-28 (transports: over HTTP, closing the request's stream cancels it): a request cancelled
    while it waits for its answer closes its connection, which the server sees."""
    async with ScriptedServer([HANG, OK]).running() as server, pool_for(server) as pool:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(body_of, pool)
            with anyio.fail_after(5):
                await server.request_arrived.wait()
            tasks.cancel_scope.cancel()
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()
        assert await body_of(pool) == (200, b'{"ok":true}')
    assert len(server.connections) == 2


class _StallingReader(asyncio.Protocol):
    """A server connection that reads the first bytes of a request and then stops reading until `resume`d;
    `received` counts what it read, `ended` is set when the client's side is gone."""

    def __init__(self, arriving: anyio.Event, ended: anyio.Event) -> None:
        self.arriving, self.ended = arriving, ended
        self.received = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)

    def data_received(self, data: bytes) -> None:
        if not self.received and self.transport is not None:
            self.transport.pause_reading()
            self.arriving.set()
        self.received += len(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.ended.set()


async def test_a_cancelled_request_stops_sending_its_body() -> None:
    """Threat T25, spec 2026-07-28 (closing the request's stream cancels it), our choice: a request cancelled
    while its body is still being written drops what is unsent and closes its connection at once, instead of
    going on writing it (a server that never reads would keep the connection, its socket and the buffered body
    in the hub for ever; one that does would get the whole request and could run it after its cancellation)."""
    arriving, ended = anyio.Event(), anyio.Event()
    protocol = _StallingReader(arriving, ended)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # little room in the kernel: the rest waits
    server = await asyncio.get_running_loop().create_server(lambda: protocol, sock=listener)
    body = b"x" * (32 << 20)
    pool = Http1Pool(
        CONNECTOR, f"http://127.0.0.1:{listener.getsockname()[1]}/", tls=verifying_context(), connect_timeout=5
    )
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(body_of, pool, body)
            with anyio.fail_after(5):
                await arriving.wait()
            tasks.cancel_scope.cancel()
        assert protocol.transport is not None
        protocol.transport.resume_reading()
        with anyio.fail_after(5):
            await ended.wait()
    finally:
        await pool.aclose()
        server.close()
    assert protocol.received < len(body)


async def test_idle_connections_are_closed_after_the_keep_alive_timeout() -> None:
    """Our choice: a connection idle for `idle_seconds` is closed by the client."""
    async with ScriptedServer([OK]).running() as server, pool_for(server, idle_seconds=0.05) as pool:
        await body_of(pool)
        with anyio.fail_after(5):
            await server.connections[0].closed.wait()


async def test_at_most_max_idle_connections_are_kept() -> None:
    """Our choice: beyond `max_idle` idle connections, the oldest are closed; the newest serves the next call."""
    async with ScriptedServer([OK] * 4).running() as server, pool_for(server, max_idle=1) as pool:
        responses: dict[int, Response] = {}

        async def post(number: int) -> None:
            responses[number] = await pool.post({}, str(number).encode())

        async with anyio.create_task_group() as tasks:  # three at once: three connections
            for number in range(3):
                tasks.start_soon(post, number)
        for number in range(3):
            responses[number].release()
        carried = {seen.bodies[0]: seen for seen in server.connections}
        with anyio.fail_after(5):
            await carried[b"0"].closed.wait()
            await carried[b"1"].closed.wait()
        await body_of(pool, b"3")
    assert len(server.connections) == 3
    assert carried[b"2"].bodies == [b"2", b"3"]


async def test_a_header_value_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    """RFC 9110 §5.5: CR, LF and NUL are not allowed in a field value (they would add fields of the sender's
    choosing); the request is refused before a connection is even opened."""
    async with ScriptedServer([OK]).running() as server, pool_for(server) as pool:
        for value in ("a\r\nX-Injected: 1", "a\nb", "a\0b"):
            with pytest.raises(ValueError, match="CR, LF or NUL"):
                await pool.post({"x-note": value}, b"{}")
    assert server.connections == []


def self_signed(directory: Path, *names: str) -> tuple[Path, Path]:
    """A certificate (its own CA) for 127.0.0.1 and the DNS `names`, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), *(x509.DNSName(name) for name in names)]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


async def test_https_verifies_the_servers_certificate(tmp_path: Path) -> None:
    """RFC 9110 §4.3.4 (https: the server's certificate must match its name): the hub's verifying context refuses
    a certificate it does not trust (the connector is unreachable); one that trusts it gets answers, over one
    kept-alive TLS connection."""
    cert_file, key_file = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    trusting = ssl.create_default_context(cafile=str(cert_file))
    async with ScriptedServer([OK, OK], tls=server_tls).running() as server:
        async with pool_for(server) as pool:
            with pytest.raises(DownstreamUnreachableError, match="is unreachable"):
                await body_of(pool)
        pool = Http1Pool(CONNECTOR, server.url, tls=trusting, connect_timeout=5)
        try:
            answers = [await body_of(pool), await body_of(pool)]
        finally:
            await pool.aclose()
    assert answers == [(200, b'{"ok":true}')] * 2
    assert [len(seen.bodies) for seen in server.connections if seen.bodies] == [2]


async def test_the_lean_client_reads_progress_and_the_result_from_a_real_chunked_event_stream() -> None:
    """Spec 2026-07-28 (a request's SSE answer carries its progress before the result), RFC 9112 §7.1: the fault
    server (uvicorn) streams the answer in chunks; progress arrives as it is sent, then the result."""
    port = free_port()
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    }
    headers = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call"}

    def call(request_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        params = {"name": name, "arguments": arguments, "_meta": {**meta, "progressToken": request_id}}
        return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}

    lost: list[str] = []
    with http_fault_server(port):
        with anyio.fail_after(30):
            while True:  # until the server process listens
                try:
                    await (await anyio.connect_tcp("127.0.0.1", port)).aclose()
                    break
                except OSError:
                    await anyio.sleep(0.05)
        async with lean_client("faults", f"http://127.0.0.1:{port}/mcp", lost) as lean:
            handlers = StreamHandlers(on_progress, ignore_notification, refuse_question)
            slow = await lean.request(call("p1", "slow", {"seconds": 0.2}), {**headers, "mcp-name": "slow"}, handlers)
            echoed = await lean.request(
                call("p2", "echo", {"text": "again"}), {**headers, "mcp-name": "echo"}, handlers
            )
    assert slow["content"][0]["text"] == "done"
    assert seen
    assert seen == sorted(seen)
    assert echoed["content"][0]["text"] == "again"
    assert lost == []


async def test_credentials_in_the_connector_url_are_sent_as_basic_and_not_in_the_target() -> None:
    """RFC 7617, RFC 9110 §4.2.4 (userinfo is never sent in the target), our choice (as httpx2 on the SDK path):
    `http://user:pass@host/...` sends `Authorization: Basic`, and the Host field without the credentials."""
    lost: list[str] = []

    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 36\r\n\r\n"
        b'{"jsonrpc":"2.0","id":1,"result":{}}'
    )
    async with ScriptedServer([answer]).running() as server:
        url = server.url.replace("http://", "http://hub%40a:s%3Acret@")
        async with lean_client("basic", url, lost, max_message_bytes=1024) as lean:
            result = await lean.request({"jsonrpc": "2.0", "id": 1, "method": "ping"}, {}, NO_STREAM)
    head = server.connections[0].heads[0].decode()
    assert result == {}
    assert head.startswith("POST /mcp?x=1 HTTP/1.1\r\n")
    assert f"Host: {url.split('@')[1].split('/')[0]}\r\n" in head
    assert "authorization: Basic aHViQGE6czpjcmV0\r\n" in head  # base64 of "hub@a:s:cret"
    assert lost == []
