"""The lean client's reading of each kind of HTTP answer is the SDK path's (`mcp_hub.downstream.lean_http`).

Both clients post one 2026-07-28 request to the same scripted server (`tests.test_http1.ScriptedServer`, a raw
HTTP/1.1 server on a real socket; for how a TLS connection ends, a blocking TLS server thread, which can close with
or without its `close_notify`): the MCP SDK's client over its Streamable HTTP transport, as the hub's SDK path
sends it (`send_raw_request`), and the lean client. Whatever the answer (an error status, a body that is not what
its content type says, a redirect, 202), both end the same way: the same result, or the same JSON-RPC error code
(`DownstreamConnection._call_error` keeps the SDK's code for these, the lean client raises the
`DownstreamRejectedError` of that code). The SDK's behaviour is the reference (lean_http.py's docstring).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import PARSE_ERROR

from mcp_hub.downstream._raw import send_raw_request
from mcp_hub.errors import DownstreamRejectedError
from tests.test_http1 import NO_STREAM, ScriptedServer, lean_client, self_signed

pytestmark = pytest.mark.anyio

Answer = Callable[[str, str], bytes]
"""An answer to the request of the given JSON id (`1` from the SDK's client, `"r1"` from the lean one), from the
server of the given origin (`http://127.0.0.1:PORT`)."""


def http(status: str, content_type: str | None, body: bytes = b"", *fields: str) -> Answer:
    """An answer; `{origin}` in a field is the server's origin, `{authority}` its host and port."""

    def answer(request_id: str, origin: str) -> bytes:
        head = f"HTTP/1.1 {status}\r\n" + "".join(
            f"{field.format(origin=origin, authority=origin.removeprefix('http://'))}\r\n" for field in fields
        )
        if content_type is not None:
            head += f"Content-Type: {content_type}\r\n"
        return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body

    return answer


def result(request_id: str, origin: str) -> bytes:
    body = f'{{"jsonrpc":"2.0","id":{request_id},"result":{{"ok":true}}}}'.encode()
    return http("200 OK", "application/json", body)(request_id, origin)


def events(*messages: str) -> Answer:
    """An SSE answer, one `message` event per message (`ID` in one is the request's id)."""

    def answer(request_id: str, origin: str) -> bytes:
        stream = "".join(f"event: message\ndata: {message.replace('ID', request_id)}\n\n" for message in messages)
        return http("200 OK", "text/event-stream", stream.encode())(request_id, origin)

    return answer


def redirect(status: str, location: str) -> Answer:
    return http(status, None, b"", f"Location: {location}")


ANSWERS: dict[str, list[Answer]] = {
    "404-html": [http("404 Not Found", "text/html", b"<h1>no</h1>")],
    "404-json-that-is-not-json": [http("404 Not Found", "application/json", b"Not Found")],
    "500-json-that-is-not-json": [http("500 Internal Server Error", "application/json", b"Internal Server Error")],
    "400-json-not-json-rpc": [http("400 Bad Request", "application/json", b'{"detail":"bad"}')],
    "400-json-rpc-error": [
        http(
            "400 Bad Request", "application/json", b'{"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"no"}}'
        )
    ],
    "302": [redirect("302 Found", "/mcp/")],
    "307-within-the-origin": [redirect("307 Temporary Redirect", "/mcp/"), result],
    "308-within-the-origin-absolute": [redirect("308 Permanent Redirect", "{origin}/next?a=b"), result],
    "307-to-another-port": [redirect("307 Temporary Redirect", "http://127.0.0.1:1/mcp")],
    "307-to-https-on-the-same-port": [redirect("307 Temporary Redirect", "https://{authority}/mcp")],
    "307-bringing-credentials": [redirect("307 Temporary Redirect", "http://who:pw@{authority}/mcp/")],
    "307-without-location": [http("307 Temporary Redirect", None)],
    "20-redirects": [*[redirect("307 Temporary Redirect", f"/mcp/{hop}") for hop in range(20)], result],
    "21-redirects": [redirect("307 Temporary Redirect", f"/mcp/{hop}") for hop in range(21)],
    "202": [http("202 Accepted", None)],
    "200-text": [http("200 OK", "text/plain", b"hi")],
    "200-json-array": [http("200 OK", "application/json", b"[1]")],
    "200-result": [result],
    "200-events-the-answer": [events('{"jsonrpc":"2.0","id":ID,"result":{"ok":true}}')],
    "200-events-an-answer-of-another-id": [events('{"jsonrpc":"2.0","id":"other","result":{"ok":true}}')],
    "200-events-an-error-of-another-id": [events('{"jsonrpc":"2.0","id":7,"error":{"code":-32001,"message":"x"}}')],
    "200-events-not-an-object": [events("[1]")],
    "200-events-not-json": [events("{not json")],
}


Outcome = tuple[str, object]


async def sdk_outcome(url: str, tls: ssl.SSLContext | None = None) -> Outcome:
    """The SDK path's outcome of one `tools/call` to `url` (`tls`: httpx2's default context if None)."""
    async with (
        httpx2.AsyncClient(verify=tls if tls is not None else True) as client,
        Client(streamable_http_client(url, http_client=client), mode="2026-07-28") as sdk,
    ):
        try:
            return "result", await send_raw_request(sdk.session, "tools/call", {"name": "t", "arguments": {}})
        except MCPError as exc:
            return "error", exc.error.code


async def lean_outcome(url: str, tls: ssl.SSLContext | None = None) -> Outcome:
    """The lean client's outcome of the same call (`tls`: the hub's verifying context if None)."""
    lost: list[str] = []
    async with lean_client("lean", url, lost, tls=tls) as lean:
        arguments: dict[str, Any] = {}
        message = {
            "jsonrpc": "2.0",
            "id": "r1",
            "method": "tools/call",
            "params": {"name": "t", "arguments": arguments},
        }
        try:
            outcome: Outcome = "result", await lean.request(message, {}, NO_STREAM)
        except DownstreamRejectedError as exc:
            outcome = "error", exc.code
    assert lost == []  # an answer, whatever it says, is not the connection lost
    return outcome


async def outcome_and_targets(answers: list[Answer], request_id: str, lean: bool) -> tuple[Outcome, list[str]]:
    """One client's outcome, and the request targets the server saw."""
    script: list[bytes] = []  # the server reads it as requests come; answers name its origin
    async with ScriptedServer(script).running() as server:
        url = server.url.partition("?")[0]
        origin = url.removesuffix("/mcp")
        script += [answer(request_id, origin) for answer in answers]
        with anyio.fail_after(10):
            outcome = await (lean_outcome(url) if lean else sdk_outcome(url))
    targets = [head.split(b" ")[1].decode() for seen in server.connections for head in seen.heads]
    return outcome, targets


@pytest.mark.parametrize("answers", ANSWERS.values(), ids=ANSWERS.keys())
async def test_the_lean_client_ends_each_answer_as_the_sdk_path_does(answers: list[Answer]) -> None:
    """Our choice (the SDK's client is the reference): the same result or JSON-RPC error code, after the same
    requests."""
    sdk = await outcome_and_targets(answers, "1", lean=False)
    lean = await outcome_and_targets(answers, '"r1"', lean=True)
    assert lean == sdk


def _serve_one_over_tls(listener: socket.socket, context: ssl.SSLContext, answer: bytes, close_notify: bool) -> None:
    """A blocking server thread: one TLS connection, one request, `answer`, then the close: after the TLS
    `close_notify` alert, or the TCP close alone (an incomplete close, RFC 9112 §9.8)."""
    connection, _ = listener.accept()
    with connection, context.wrap_socket(connection, server_side=True) as tls:
        received = b""
        while b"\r\n\r\n" not in received:
            received += tls.recv(65536)
        head, _, body = received.partition(b"\r\n\r\n")
        length = next(int(line[15:]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += tls.recv(65536)
        tls.sendall(answer)
        if close_notify:
            with contextlib.suppress(OSError):  # the client may close without its own alert
                tls.unwrap()
        else:
            tls.shutdown(socket.SHUT_RDWR)  # `SSLSocket.shutdown` drops TLS first: no alert, only the FIN


UNTIL_CLOSE: Final = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
WHOLE: Final = b'{"jsonrpc":"2.0","id":1,"result":{"ok":true}}'


@pytest.mark.parametrize(
    "anyio_backend", [("asyncio", {}), ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"]
)
@pytest.mark.parametrize("close_notify", [True, False], ids=["close-notify", "incomplete-close"])
@pytest.mark.parametrize("body", [WHOLE, WHOLE[:-8]], ids=["whole", "cut"])
async def test_a_tls_body_ended_by_the_close_is_read_as_on_the_sdk_path(
    body: bytes, close_notify: bool, tmp_path: Path
) -> None:
    """Threat T32, RFC 9112 §6.3 ¶8, §9.8, our choice (the SDK path's): a body without a length over TLS ends with
    the connection's close, with or without the server's `close_notify` first. httpx2 reads a close without it as
    the end of the stream (httpcore2 wraps TLS with anyio's `standard_compatible=False`), and so does the lean
    client, on both event loops: a whole JSON-RPC message is the result, a cut one fails to parse, on both paths
    alike (an answer is one JSON object, so a cut one never parses as a message)."""
    cert_file, key_file = self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert_file, key_file)
    client_tls = ssl.create_default_context(cafile=str(cert_file))
    outcomes: list[Outcome] = []
    for outcome_of in (sdk_outcome, lean_outcome):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            listener.settimeout(10)  # a failing test's client never comes: the thread ends anyway
            url = f"https://127.0.0.1:{listener.getsockname()[1]}/mcp"
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(
                    anyio.to_thread.run_sync,
                    _serve_one_over_tls,
                    listener,
                    server_tls,
                    UNTIL_CLOSE + body,
                    close_notify,
                )
                with anyio.fail_after(10):
                    outcomes.append(await outcome_of(url, client_tls))
    expected: Outcome = ("result", {"ok": True}) if body == WHOLE else ("error", PARSE_ERROR)
    assert outcomes == [expected, expected]
