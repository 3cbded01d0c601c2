"""The hub's HTTP app with a front door for its MCP endpoints: one frame instead of Starlette's middleware stack.

Every request to an MCP endpoint (`/mcp`, a connector's profile, a virtual server) used to pass through
uvicorn's proxy headers, Starlette's `ServerErrorMiddleware`, the replica header, `BodyDeadline`,
`EndpointThrottle` (which leaves these paths alone), Starlette's `ExceptionMiddleware`, the router and the route:
eight frames on every resumption of the request's coroutine and four wrappers around every `send`. `FrontDoor`
does what they do, for exactly these paths, in one frame with one `receive` and one `send` wrapper:

- the deadline on the body (`mcp_hub.bodies.BodyDeadline`: 408 and `Connection: close`, the app told the client
  went away, whatever it sends afterwards dropped);
- the replica header (`Mcp-Hub-Replica`, when a replica id is named) on every response but the 500 below, as
  before (`ServerErrorMiddleware` sits outside it);
- an `HTTPException` answered as `ExceptionMiddleware` answers it (or, once a response started, a `RuntimeError`);
- any other exception answered 500 "Internal Server Error" if nothing was sent yet, and raised again;
- the scope keys the router sets (`router`, `route`, `endpoint`, `path_params`).

Anything else (another path, a `root_path`, a path the endpoint throttle guards, a route with a method filter)
goes through the full stack, unchanged. So a middleware added to the app's list later does NOT see the MCP
endpoints' requests: what must (metrics, request logs) goes in `FrontDoor` itself or around the endpoint.
`tests/test_mcp_front_door.py` (against the stack it replaces), `tests/test_front_door.py`,
`tests/test_parsing_hardening.py`, `tests/test_endpoint_limits.py` and `tests/test_fast_path_differential.py`
hold the behaviour.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.bodies import TimedBody

_START: Final = "http.response.start"


class FrontDoor:
    """ASGI app: requests for the paths of `routes` go straight to their endpoints (see the module docstring);
    everything else to `stack`, Starlette's middleware stack."""

    def __init__(
        self,
        stack: ASGIApp,
        routes: Mapping[str, Route],
        *,
        router: Any,
        body_timeout_seconds: float,
        replica: str | None,
    ) -> None:
        self._stack = stack
        self._routes = dict(routes)
        self._router = router
        self._seconds = body_timeout_seconds
        self._replica_header = None if replica is None else (b"mcp-hub-replica", replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"]) if scope["type"] == "http" and not scope.get("root_path") else None
        if route is None:
            await self._stack(scope, receive, send)
            return
        if "router" not in scope:
            scope["router"] = self._router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(scope.get("path_params", {}))

        replica_header = self._replica_header
        app_started = False  # the endpoint sent a response start (ExceptionMiddleware's flag)
        answered = False  # a response start went out, the 408 included (ServerErrorMiddleware's flag)

        async def out(message: Message) -> None:
            nonlocal answered
            if message["type"] == _START:
                answered = True
                if replica_header is not None:
                    message = {**message, "headers": [*message.get("headers", ()), replica_header]}
            await send(message)

        body = TimedBody(receive, out, self._seconds)  # BodyDeadline's part
        bounded_receive = body.receive

        async def guarded_send(message: Message) -> None:
            nonlocal app_started
            is_start = message["type"] == _START
            if is_start:
                app_started = True
            if body.timed_out:
                return  # answered with 408 already
            if is_start:
                body.response_started = True
            await out(message)

        try:
            try:
                await route.app(scope, bounded_receive, guarded_send)
            except HTTPException as exc:
                if app_started:
                    raise RuntimeError("Caught handled exception, but response already started.") from exc
                await _http_exception_response(exc)(scope, bounded_receive, guarded_send)
                exc.__traceback__ = None
        except Exception:
            if not answered:
                await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
            raise


def _http_exception_response(exc: HTTPException) -> Response:
    """As Starlette's `ExceptionMiddleware.http_exception`."""
    if exc.status_code in {204, 304}:
        return Response(status_code=exc.status_code, headers=exc.headers)
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=exc.headers)


def direct_routes(routes: Sequence[BaseRoute], *, excluded: Collection[str]) -> dict[str, Route]:
    """The routes the front door may serve itself: plain-path ASGI endpoints with no method filter, none of
    `excluded` (the paths some middleware of the stack acts on), and no earlier route that could match first."""
    direct: dict[str, Route] = {}
    seen: set[str] = set()
    for route in routes:
        if not isinstance(route, Route) or route.param_convertors:
            break  # it may match many paths: it and the routes after it are left to the router
        if route.methods is None and route.path not in seen and route.path not in excluded:
            direct[route.path] = route
        seen.add(route.path)
    return direct


class HubApp(Starlette):
    """Starlette, with `FrontDoor` in front of its middleware stack for the routes of `direct` (the MCP endpoints)."""

    def __init__(
        self,
        *,
        direct: Mapping[str, Route],
        body_timeout_seconds: float,
        replica: str | None,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._direct = dict(direct)
        self._body_timeout_seconds = body_timeout_seconds
        self._replica = replica

    def build_middleware_stack(self) -> ASGIApp:
        return FrontDoor(
            super().build_middleware_stack(),
            self._direct,
            router=self.router,
            body_timeout_seconds=self._body_timeout_seconds,
            replica=self._replica,
        )
