"""What any Python proxy adds to a 2026-07-28 `tools/call` at concurrency 1: the floor under the hub's overhead.

    .venv/bin/python bench/proxy_floor.py [--calls 3000] [--rounds 3]

Three pass-through proxies that do nothing but relay one POST to `bench/echo_server.py` (Streamable HTTP, uvloop)
and its answer back, each in its own process on uvloop:

- `asgi+aiohttp`: an ASGI app on uvicorn (httptools) posting with aiohttp's pooled `ClientSession`, the stack
  the hub's fast path had before `mcp_hub/downstream/http1.py`;
- `asgi+http1`: the same ASGI app posting with the hub's own client (`mcp_hub.downstream.http1.Http1Pool`);
- `protocols`: asyncio protocols both ways (httptools parsing requests and answers), no ASGI, no client library:
  the least a Python process on this event loop can do.

A keep-alive client on a blocking socket (little CPU of its own, so the machine's two cores stay with the servers)
calls the echo directly and through each proxy, `--calls` sequential calls per route in `--rounds` alternating
rounds. Printed: p50 per route (median of the rounds, [min-max]), what each proxy adds to the direct p50, and the
proxy's CPU per call (from /proc). docs/benchmarks.md compares the hub's own added p50 with these.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import child, cpu_seconds, free_port, log

ECHO = Path(__file__).with_name("echo_server.py")
KINDS = ("asgi+aiohttp", "asgi+http1", "protocols")
_FORWARDED = (b"mcp-protocol-version", b"mcp-method", b"mcp-name", b"accept", b"content-type")


# --- the proxies (run as `proxy_floor.py --serve KIND PORT DOWNSTREAM_PORT`) ------------------------------------


def _asgi_app(post: Callable[[dict[str, str], bytes], Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {key.decode(): value.decode() for key, value in scope["headers"] if key in _FORWARDED}
        answer: bytes = await post(headers, body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    return app


def _serve_asgi(kind: str, port: int, downstream: str) -> None:
    import uvicorn

    state: dict[str, Any] = {}

    async def post(headers: dict[str, str], body: bytes) -> bytes:
        if kind == "asgi+aiohttp":
            import aiohttp

            if "session" not in state:
                state["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            async with state["session"].post(downstream, data=body, headers=headers) as response:
                return await response.read()
        from mcp_hub.domain import ConnectorId
        from mcp_hub.downstream.http1 import Http1Pool
        from mcp_hub.downstream.tls import verifying_context

        if "pool" not in state:
            state["pool"] = Http1Pool(ConnectorId("echo"), downstream, tls=verifying_context(), connect_timeout=5)
        answer = await state["pool"].post(headers, body)
        try:
            return await answer.read(1 << 20, lambda: ValueError("too large"))
        finally:
            answer.release()

    uvicorn.run(_asgi_app(post), host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_level="warning")


def _serve_protocols(port: int, downstream_port: int) -> None:
    import httptools
    import uvloop

    idle: list[Upstream] = []
    relaying: set[asyncio.Task[None]] = set()  # referenced until done (the loop keeps only weak references)

    class Upstream(asyncio.Protocol):
        def __init__(self) -> None:
            self.parser = httptools.HttpResponseParser(self)
            self.parts: list[bytes] = []
            self.answer: asyncio.Future[bytes] | None = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_body(self, body: bytes) -> None:
            self.parts.append(body)

        def on_message_complete(self) -> None:
            if self.answer is not None:
                self.answer.set_result(b"".join(self.parts))
            self.parts, self.answer = [], None

    class Downstream(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.fields: list[bytes] = []
            self.parts: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() in _FORWARDED:
                self.fields.append(name + b": " + value + b"\r\n")

        def on_body(self, body: bytes) -> None:
            self.parts.append(body)

        def on_message_complete(self) -> None:
            fields, body = b"".join(self.fields), b"".join(self.parts)
            self.fields, self.parts = [], []
            task = asyncio.ensure_future(self.relay(fields, body))
            relaying.add(task)
            task.add_done_callback(relaying.discard)

        async def relay(self, fields: bytes, body: bytes) -> None:
            up = idle.pop() if idle else None
            while up is not None and up.transport.is_closing():
                up = idle.pop() if idle else None
            if up is None:
                _, up = await asyncio.get_running_loop().create_connection(Upstream, "127.0.0.1", downstream_port)
            up.answer = asyncio.get_running_loop().create_future()
            head = b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%bContent-Length: %d\r\n\r\n"
            up.transport.write(head % (downstream_port, fields, len(body)) + body)
            answer = await up.answer
            idle.append(up)
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%b"
                % (len(answer), answer)
            )

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Downstream, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())


# --- the client ------------------------------------------------------------------------------------------------


def _request(port: int) -> bytes:
    body = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": "echo",
                "arguments": {"text": "floor"},
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
    ).encode()
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nMCP-Protocol-Version: 2026-07-28\r\n"
        "Mcp-Method: tools/call\r\nMcp-Name: echo\r\nAccept: application/json, text/event-stream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _call(sock: socket.socket, request: bytes) -> bytes:
    """One request and its whole answer (Content-Length framed: the echo answers JSON)."""
    sock.sendall(request)
    received = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        received += chunk
        head, separator, body = received.partition(b"\r\n\r\n")
        if not separator:
            continue
        lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        if not lengths:
            raise ValueError(f"no Content-Length in {head!r}")
        size = int(lengths[0].split(b":", 1)[1])
        while len(body) < size:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            body += chunk
        return body


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _wait_listening(port: int, within_seconds: float = 30) -> None:
    deadline = time.monotonic() + within_seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port)).close()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # a child process starting: nothing to await across processes
        else:
            return


def measure(calls: int, rounds: int) -> None:
    echo_port = free_port()
    ports = {kind: free_port() for kind in KINDS}
    logs = Path(tempfile.mkdtemp(prefix="proxy-floor-"))
    with child([sys.executable, str(ECHO), "--http", str(echo_port)], logs / "floor-echo.log"):
        _wait_listening(echo_port)
        downstream = f"http://127.0.0.1:{echo_port}/mcp"
        with (
            child(
                [sys.executable, __file__, "--serve", KINDS[0], str(ports[KINDS[0]]), downstream],
                logs / "floor-0.log",
            ) as first,
            child(
                [sys.executable, __file__, "--serve", KINDS[1], str(ports[KINDS[1]]), downstream],
                logs / "floor-1.log",
            ) as second,
            child(
                [sys.executable, __file__, "--serve", KINDS[2], str(ports[KINDS[2]]), str(echo_port)],
                logs / "floor-2.log",
            ) as third,
        ):
            pids = {KINDS[0]: first.pid, KINDS[1]: second.pid, KINDS[2]: third.pid}
            routes = {"direct": echo_port, **ports}
            for port in ports.values():
                _wait_listening(port)
            _run(routes, pids, calls, rounds)


def _run(routes: dict[str, int], pids: dict[str, int], calls: int, rounds: int) -> None:
    p50s: dict[str, list[float]] = {name: [] for name in routes}
    cpu: dict[str, float] = dict.fromkeys(pids, 0.0)
    for round_number in range(rounds):
        log(f"round {round_number + 1} of {rounds}: {calls} calls per route")
        for name, port in routes.items():
            # A fresh connection per round: the proxies' idle connections to the echo outlive no keep-alive timeout.
            with _connect(port) as sock:
                request = _request(port)
                if b"floor" not in _call(sock, request):
                    raise RuntimeError(f"{name}: not the echo's answer")
                before = cpu_seconds(pids.get(name))
                times: list[float] = []
                for _ in range(calls):
                    started = time.perf_counter()
                    _call(sock, request)
                    times.append(time.perf_counter() - started)
                if name in pids:
                    cpu[name] += cpu_seconds(pids[name]) - before
            p50s[name].append(statistics.median(times) * 1000)
    direct = statistics.median(p50s["direct"])
    print(f"Concurrency 1, ms; {calls} calls per route in {rounds} alternating rounds; proxies on uvloop")
    print(f"{'route':<14} {'p50':>22} {'added p50':>10} {'proxy cpu/call':>15}")
    for name, values in p50s.items():
        median = statistics.median(values)
        spread = f"{median:.3f} [{min(values):.3f}-{max(values):.3f}]"
        added = "-" if name == "direct" else f"{median - direct:.3f}"
        used = "-" if name not in cpu else f"{cpu[name] / (calls * rounds) * 1000:.3f}"
        print(f"{name:<14} {spread:>22} {added:>10} {used:>15}")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "DOWNSTREAM"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve is None:
        measure(options.calls, options.rounds)
        return 0
    kind, port, downstream = options.serve
    if kind == "protocols":
        _serve_protocols(int(port), int(downstream))
    else:
        _serve_asgi(kind, int(port), downstream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
