"""`header_proxy`, the test helper that lets the conformance suite (which sends no headers of ours) reach an
endpoint that wants a token: it adds headers and relays everything else, streams included, unchanged.

Each test puts the proxy in front of a small ASGI app served by uvicorn on loopback and talks to it over HTTP.
"""

from __future__ import annotations

import json

import anyio
import httpx2
from starlette.types import Receive, Scope, Send

from tests.conformance.header_proxy import header_proxy, serve_on_loopback


async def _echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what it received: method, path, query, headers and body, as JSON."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode(),
        "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
        "body": body.decode(),
    }
    await send({"type": "http.response.start", "status": 207, "headers": [(b"x-upstream", b"yes")]})
    await send({"type": "http.response.body", "body": json.dumps(seen).encode()})


def _headers(seen: dict[str, object], name: str) -> list[str]:
    pairs = seen["headers"]
    assert isinstance(pairs, list)
    return [value for key, value in pairs if key == name]  # pyright: ignore[reportUnknownVariableType]


async def test_the_proxy_adds_its_headers_and_relays_the_request_and_response_unchanged() -> None:
    """Our choice: the added header replaces one of the same name sent by the client; method, path, query,
    body, status and the upstream's headers pass unchanged."""
    async with (
        serve_on_loopback(_echo) as port,
        header_proxy(f"http://127.0.0.1:{port}/mcp", {"Authorization": "Bearer added"}) as proxied,
    ):
        assert proxied.endswith("/mcp")
        async with httpx2.AsyncClient() as client:
            response = await client.post(
                f"{proxied}/deeper?x=1&y=two",
                content=b'{"jsonrpc":"2.0"}',
                headers={"Authorization": "Bearer from-client", "Mcp-Session-Id": "abc"},
            )
    assert response.status_code == 207
    assert response.headers["x-upstream"] == "yes"
    seen = response.json()
    assert (seen["method"], seen["path"], seen["query"], seen["body"]) == (
        "POST",
        "/mcp/deeper",
        "x=1&y=two",
        '{"jsonrpc":"2.0"}',
    )
    assert _headers(seen, "authorization") == ["Bearer added"]
    assert _headers(seen, "mcp-session-id") == ["abc"]


async def test_a_host_naming_the_proxy_becomes_the_target_and_a_foreign_host_passes_unchanged() -> None:
    """Our choice, so that the suite's DNS-rebinding scenario still judges the target: the proxy's own Host and
    Origin are rewritten to the target's, any other value reaches the target as sent."""
    async with serve_on_loopback(_echo) as port, header_proxy(f"http://127.0.0.1:{port}/mcp", {"X-A": "b"}) as proxied:
        proxy_authority = httpx2.URL(proxied).netloc.decode()
        async with httpx2.AsyncClient() as client:
            own = (await client.get(proxied, headers={"Origin": f"http://{proxy_authority}"})).json()
            foreign = (
                await client.get(proxied, headers={"Host": "evil.example.com", "Origin": "http://evil.example.com"})
            ).json()
    assert _headers(own, "host") == [f"127.0.0.1:{port}"]
    assert _headers(own, "origin") == [f"http://127.0.0.1:{port}"]
    assert _headers(foreign, "host") == ["evil.example.com"]
    assert _headers(foreign, "origin") == ["http://evil.example.com"]


async def test_an_event_stream_is_relayed_as_it_is_written_and_closed_when_the_client_goes() -> None:
    """Our choice (SSE-safe relaying): the first event reaches the client while the upstream still holds the
    second back, and the upstream learns of the client's disconnect."""
    first_read = anyio.Event()
    upstream_saw_disconnect = anyio.Event()

    async def events(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # the (empty) request body
        headers = [(b"content-type", b"text/event-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"data: first\n\n", "more_body": True})
        await first_read.wait()
        await send({"type": "http.response.body", "body": b"data: second\n\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        upstream_saw_disconnect.set()

    async with serve_on_loopback(events) as port, header_proxy(f"http://127.0.0.1:{port}/sse", {"X-A": "b"}) as url:
        async with httpx2.AsyncClient() as client, client.stream("GET", url) as response:
            lines = response.aiter_lines()
            with anyio.fail_after(10):
                assert await anext(lines) == "data: first"
                first_read.set()
                assert await anext(lines) == ""
                assert await anext(lines) == "data: second"
        with anyio.fail_after(10):
            await upstream_saw_disconnect.wait()


async def test_an_unreachable_target_is_a_502_naming_it() -> None:
    """Our choice: a target that refuses connections is a 502 whose text names it, not a hang."""
    async with serve_on_loopback(_echo) as port:
        dead = f"http://127.0.0.1:{port}/mcp"
    async with header_proxy(dead, {"X-A": "b"}) as proxied, httpx2.AsyncClient() as client:
        response = await client.get(proxied)
    assert response.status_code == 502
    assert f"127.0.0.1:{port}" in response.text
