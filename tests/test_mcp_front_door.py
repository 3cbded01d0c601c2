"""The front door of the MCP endpoints (`mcp_hub.gateway.front_door`) answers exactly as Starlette's middleware
stack it skips: the same messages for a normal answer, a slow body (408), an endpoint's `HTTPException`, an
endpoint's crash (500), with and without the replica header (threat T26: the body deadline still holds)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from mcp_hub.bodies import BodyDeadline
from mcp_hub.gateway.front_door import FrontDoor, HubApp, direct_routes
from mcp_hub.runtime import ReplicaHeader

pytestmark = pytest.mark.anyio

DEADLINE_SECONDS = 0.2


class Endpoint:
    """An ASGI endpoint whose behaviour the test picks: answer, raise, or wait for the whole body."""

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.scopes: list[Scope] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        if self.behaviour == "crash":
            raise RuntimeError("the endpoint failed")
        if self.behaviour == "teapot":
            raise HTTPException(418, "short and stout")
        if self.behaviour == "crash-after-start":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("the endpoint failed mid-answer")
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away (or the deadline passed)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"got " + body})


def apps(endpoint: Endpoint, replica: str | None) -> tuple[Starlette, Starlette]:
    """The hub's app (front door) and the plain Starlette stack it replaces, around the same endpoint."""
    middleware = [Middleware(BodyDeadline, seconds=DEADLINE_SECONDS)]
    if replica is not None:
        middleware.insert(0, Middleware(ReplicaHeader, replica=replica))
    routes = [Route("/mcp", endpoint)]
    plain = Starlette(routes=routes, middleware=middleware)
    hub = HubApp(
        routes=routes,
        middleware=middleware,
        direct=direct_routes(routes, excluded=()),
        body_timeout_seconds=DEADLINE_SECONDS,
        replica=replica,
    )
    return hub, plain


Receiver = Callable[[], Awaitable[Message]]


def whole_body() -> Receiver:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"hello", "more_body": False}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def body_never_ends() -> Receiver:
    first = True

    async def receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"hel", "more_body": True}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


async def exchange(app: Starlette, receive: Receiver) -> tuple[list[Message], str | None]:
    """The messages `app` sends for one POST /mcp, and the exception it raised (its type name), if any."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    raised: str | None = None
    with anyio.fail_after(5):
        try:
            await app(scope, receive, send)
        except (RuntimeError, HTTPException) as exc:  # what the endpoints raise; compared between the two apps
            raised = type(exc).__name__
    return sent, raised


@pytest.mark.parametrize("replica", [None, "replica-a"])
@pytest.mark.parametrize(
    ("behaviour", "receiver"),
    [
        ("echo", whole_body),
        ("echo", body_never_ends),
        ("crash", whole_body),
        ("teapot", whole_body),
        ("crash-after-start", whole_body),
    ],
)
async def test_the_front_door_answers_as_the_middleware_stack_it_skips(
    behaviour: str, receiver: Callable[[], Receiver], replica: str | None
) -> None:
    """Our choice: the MCP endpoints skip Starlette's stack for speed, so they must not notice it is gone."""
    hub_endpoint, plain_endpoint = Endpoint(behaviour), Endpoint(behaviour)
    hub_app, _ = apps(hub_endpoint, replica)
    _, plain_app = apps(plain_endpoint, replica)

    hub_answer = await exchange(hub_app, receiver())
    plain_answer = await exchange(plain_app, receiver())

    assert hub_answer == plain_answer
    assert hub_answer[0], "something was answered"
    assert isinstance(hub_app.middleware_stack, FrontDoor)
    for key in ("router", "route", "endpoint", "path_params"):
        assert key in hub_endpoint.scopes[0], key


async def test_the_slow_body_deadline_holds_through_the_front_door() -> None:
    """T26, our choice: a body that never completes is answered 408 with `Connection: close`."""
    hub_app, _ = apps(Endpoint("echo"), None)
    sent, raised = await exchange(hub_app, body_never_ends())
    assert raised is None
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]


def test_routes_an_earlier_route_could_shadow_are_left_to_the_router() -> None:
    """Our choice: only a path no earlier route can claim is served by the front door."""
    routes = [
        Route("/mcp", Endpoint("echo")),
        Route("/only-get", Endpoint("echo"), methods=["GET"]),
        Route("/throttled", Endpoint("echo")),
        Route("/{anything}", Endpoint("echo")),
        Route("/later", Endpoint("echo")),
    ]
    assert set(direct_routes(routes, excluded={"/throttled"})) == {"/mcp"}
