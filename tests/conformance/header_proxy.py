"""A loopback reverse proxy that adds HTTP headers to every request: the conformance suite "with a token".

The suite's server scenarios send no `Authorization` header and have no option to (`conformance server --help`;
its scenarios build requests with the TypeScript SDK, `fetch`, undici and `node:http`), so a run against an
endpoint that requires a token goes through this proxy, which adds the headers and relays everything else
unchanged: the method, path, query, body, and the response's status, headers and body, streamed chunk by
chunk as they arrive (SSE streams stay live; nothing is buffered or re-encoded). When the suite's client
goes away, the upstream request is closed too.

Host and Origin: the suite's `dns-rebinding-protection` scenario sends a foreign Host and Origin and expects a
4xx, and its own loopback ones and expects success. So a Host (or Origin) naming the proxy itself is rewritten
to name the target, and any other value is passed on unchanged for the target to judge.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Final, cast

import anyio
import httpx2
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",  # httpx2 sets it for the body it sends; uvicorn frames the relayed response
    }
)
"""Headers of one connection, not of the message (RFC 9110 §7.6.1), dropped in both directions."""


class HeaderAddingProxy:
    """The ASGI app: relays every request to `target` (scheme, host and port) with `headers` added."""

    def __init__(self, client: httpx2.AsyncClient, target: httpx2.URL, headers: Mapping[str, str]) -> None:
        self._client = client
        self._target = target
        self._headers = {name.lower(): value for name, value in headers.items()}
        self.own_authority = ""
        """host:port of the proxy itself, set once it listens."""

    @property
    def _target_authority(self) -> str:
        return f"{self._target.host}:{self._target.port}" if self._target.port else self._target.host

    def _request_headers(self, scope: Scope) -> list[tuple[str, str]]:
        own_origin = f"http://{self.own_authority}"
        relayed: list[tuple[str, str]] = []
        for raw_name, raw_value in cast(list[tuple[bytes, bytes]], scope["headers"]):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name in HOP_BY_HOP or name in self._headers:
                continue
            if name == "host" and value == self.own_authority:
                value = self._target_authority
            elif name == "origin" and value == own_origin:
                value = f"{self._target.scheme}://{self._target_authority}"
            relayed.append((name, value))
        relayed.extend(self._headers.items())
        return relayed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body", False):
                break
        path = cast(bytes, scope.get("raw_path") or scope["path"].encode())
        query = cast(bytes, scope.get("query_string", b""))
        url = self._target.copy_with(raw_path=path + (b"?" + query if query else b""))
        request = self._client.build_request(
            cast(str, scope["method"]), url, headers=self._request_headers(scope), content=bytes(body)
        )
        try:
            upstream = await self._client.send(request, stream=True)
        except httpx2.TransportError as exc:
            await _respond_bad_gateway(send, f"header proxy: {self._target} unreachable: {exc!r}")
            return
        try:
            await self._relay(upstream, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await upstream.aclose()

    async def _relay(self, upstream: httpx2.Response, receive: Receive, send: Send) -> None:
        headers = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in upstream.headers.multi_items()
            if name.lower() not in HOP_BY_HOP
        ]
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
        async with anyio.create_task_group() as relay:

            async def pump() -> None:
                async for chunk in upstream.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                relay.cancel_scope.cancel()

            async def watch_client() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                relay.cancel_scope.cancel()

            relay.start_soon(pump)
            relay.start_soon(watch_client)


async def _respond_bad_gateway(send: Send, text: str) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": 502,
        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
    }
    await send(start)
    await send({"type": "http.response.body", "body": text.encode()})


@asynccontextmanager
async def serve_on_loopback(app: ASGIApp, *, on_port: Callable[[int], None] | None = None) -> AsyncGenerator[int]:
    """Serve `app` with uvicorn on a free loopback port until exit; yield the port once the app has started.

    `on_port` learns the port before the app starts (the socket is bound and listening already)."""
    started = anyio.Event()

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncGenerator[None]:
        started.set()
        yield

    wrapper = Starlette(routes=[Mount("/", app=app)], lifespan=lifespan)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        port = cast(tuple[str, int], listener.getsockname())[1]
        if on_port is not None:
            on_port(port)
        config = uvicorn.Config(wrapper, log_config=None, access_log=False, lifespan="on", timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as serving:
            serving.start_soon(server.serve, [listener])
            with anyio.fail_after(30):
                await started.wait()
            try:
                yield port
            finally:
                server.should_exit = True


@asynccontextmanager
async def header_proxy(target_url: str, headers: Mapping[str, str]) -> AsyncGenerator[str]:
    """Serve a proxy on a free loopback port that adds `headers` to every request for `target_url`'s origin,
    and yield the URL that reaches `target_url` through it (same path and query)."""
    target = httpx2.URL(target_url)
    # No read timeout: SSE streams may stay quiet for as long as the suite's client keeps them open.
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30.0, read=None), follow_redirects=False) as client:
        proxy = HeaderAddingProxy(client, target.copy_with(raw_path=b"/"), headers)

        def learn_port(port: int) -> None:
            proxy.own_authority = f"127.0.0.1:{port}"

        async with serve_on_loopback(proxy, on_port=learn_port):
            query = f"?{target.query.decode()}" if target.query else ""
            yield f"http://{proxy.own_authority}{target.path}{query}"
