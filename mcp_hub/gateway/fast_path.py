"""The inbound fast path: a 2026-07-28 `tools/call` or list request served without the SDK's server machinery.

Streamable HTTP at 2026-07-28 (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports) is a
single exchange: one POSTed JSON-RPC request, one answer (JSON, or an SSE stream once the server sends something
before its answer). For the methods the hub answers most (`FAST_METHODS`), `FastPath` does what the SDK's
stateless entry does (`mcp.server._streamable_http_modern.handle_modern_request`) with one body read and one parse
(shared with the bearer guard through the ASGI scope), no per-request transport, dispatcher or typed-model round
trip, and serialises with pydantic-core's JSON writer.

It accepts only a request it is sure of: Host/Origin and Content-Type pass the SDK's own transport check, Accept
names JSON and SSE, the body is within the cap, parses, is one request with a valid envelope, the routing headers
are not duplicated and agree with the body (the SDK's `classify_inbound_request`), `Mcp-Param-*` headers agree with
the tool's schema, and the params validate (the per-request `_meta` through the SDK's own validator, cached per
distinct `_meta`; anything beyond the usual fields through the SDK's full validation). Everything else — a bad
header, a bad envelope, a batch, a notification, another method or era — goes to the SDK path with the body
replayed, so every refusal is the SDK's own (same HTTP status, same JSON-RPC code and message).

What runs is the same pipeline as on the SDK path: the server's middleware (`requestState` sealing, the hub's
error mapping, tracing) around the very handler registered for the method (`ToolRequests.call`, the list
methods), given a `FastContext` (`mcp_hub.gateway.context.HubContext`). Its answer is written as the SDK writes it:
errors with the SDK's HTTP status table; progress and log entries turn the answer into an SSE stream, with the
same deferral and keepalive; a client that disconnects cancels the call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import anyio
import mcp_types as types
import pydantic_core
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.streamable_http import check_accept_headers
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    X_MCP_HEADER_KEY,
    InboundLadderRejection,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data, progress_token_from_params
from mcp_types import methods as wire_methods
from mcp_types.jsonrpc import INTERNAL_ERROR
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.gateway.guard import MODERN_ERA, READ_BODY_KEY, ReadBody, buffer_body, header_of, parse_message
from mcp_hub.gateway.lists import PageResult
from mcp_hub.gateway.server import HubServer

logger = logging.getLogger(__name__)

FAST_METHODS: Final = frozenset(
    {"tools/call", "tools/list", "prompts/list", "resources/list", "resources/templates/list"}
)
"""What the fast path serves; every other method takes the SDK path."""

_USUAL_FIELDS: Final[Mapping[str, frozenset[str]]] = {
    "tools/call": frozenset({"name", "arguments", "_meta"}),
    **{method: frozenset({"cursor", "_meta"}) for method in FAST_METHODS - {"tools/call"}},
}
"""The params a request usually has: checked by hand; any other field sends the params through the SDK validator."""

_SSE_PING_INTERVAL: Final = 15.0
"""As the SDK: a call that stays silent this long commits the SSE stream and keeps it alive with pings."""
_SSE_HEADERS: Final = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"connection", b"keep-alive"),
    (b"x-accel-buffering", b"no"),
]
_MAX_VALIDATED_METAS: Final = 1024
_MAX_REMEMBERED_KEY_SIZE: Final = 4096
"""A verdict on longer header values (characters in all) or a longer `_meta` (bytes of JSON) is not remembered but
judged each time: a head may have `[hub] max_header_bytes` (up to 1 MiB) and a body `max_body_bytes`, so the caches
would otherwise hold whatever their callers sent, up to `_MAX_VALIDATED_METAS` times."""
_K = TypeVar("_K")
_V = TypeVar("_V")
_WATCH_AFTER: Final = 0.05
"""Seconds a call runs before its client's disconnect is watched for (see `FastPath._serve`)."""


def _json(value: Any) -> bytes:
    return pydantic_core.to_json(value)


def _response_json(message: Mapping[str, Any]) -> bytes:
    """A JSON-RPC response; a list page's result is written from its JSON (`PageResult.body`), not serialised again."""
    result = message.get("result")
    if isinstance(result, PageResult):
        return b'{"jsonrpc":"2.0","id":' + _json(message["id"]) + b',"result":' + result.body + b"}"
    return _json(message)


def _sse_event(message: Mapping[str, Any]) -> bytes:
    return b"event: message\r\ndata: " + _response_json(message) + b"\r\n\r\n"


@dataclass
class FastSession:
    """The caller's side of one fast-path request (`HubSession`): its progress token and response stream."""

    progress_token: types.ProgressToken | None
    sink: _Responder | None = None
    client_params: types.InitializeRequestParams | None = None
    """Never set: a 2026-07-28 caller's `clientInfo` is read from the request's `_meta`."""
    client_capabilities: types.ClientCapabilities | None = None
    """Never set: a 2026-07-28 caller declares its capabilities per request, in `_meta`."""
    can_send_request: bool = False
    """2026-07-28 has no server-to-client requests."""

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is None:
            return
        params: dict[str, Any] = {"progressToken": self.progress_token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self._notify("notifications/progress", params)

    async def send_notification(
        self, notification: types.ServerNotification, related_request_id: types.RequestId | None = None
    ) -> None:
        if related_request_id is None:
            return  # 2026-07-28 has no stream outside a request for it
        data = notification.model_dump(by_alias=True, mode="json", exclude_none=True)
        await self._notify(data["method"], data.get("params"))

    async def _notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        if self.sink is None:
            return
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        if not await self.sink.event(_sse_event(message)):
            logger.debug("dropped %s: response stream closed", method)


@dataclass(kw_only=True)
class FastContext:
    """One fast-path request (`HubContext`), with the field names of the SDK's `ServerRequestContext` so that the
    server's middleware (which reads and `dataclasses.replace`s those fields) runs on it unchanged."""

    session: FastSession
    protocol_version: str
    method: str
    params: Mapping[str, Any] | None
    request_id: types.RequestId
    meta: Mapping[str, Any] | None
    request: Request
    lifespan_context: Any = None
    close_sse_stream: None = None
    close_standalone_sse_stream: None = None
    accepted: _Accepted | None = None
    """What the fast path accepted (the handler's typed params come from it)."""


@dataclass
class _Accepted:
    """A request the fast path will serve."""

    request_id: types.RequestId
    method: str
    params: dict[str, Any]
    protocol_version: str
    typed: BaseModel | None
    """The params validated by the SDK (an unusual request); None: built from `params` at call time."""


@dataclass
class FastPathStats:
    """What the fast path did (tests and operators see that it is taken)."""

    served: int = 0
    passed_on: int = 0
    pages_written: int = 0
    """List answers written from the page cache's JSON (`PageResult.body`) rather than serialised again."""


@dataclass
class _Validated:
    metas: dict[bytes, bool] = field(default_factory=dict[bytes, bool])
    transports: dict[tuple[str | None, ...], bool] = field(default_factory=dict[tuple[str | None, ...], bool])
    """Per distinct (Content-Type, Host, Origin, Accept): whether the transport check passes."""
    header_schemas: dict[str, tuple[Any, bool]] = field(default_factory=dict[str, tuple[Any, bool]])
    """Per tool name: its input schema (compared by identity: a catalog change brings a new one) and whether it
    has an `x-mcp-header` key."""


class _Responder:
    """Writes one fast-path answer as the SDK does: JSON, unless a notification (or `_SSE_PING_INTERVAL` of
    silence) came first, which commits the answer to an SSE stream kept alive with pings."""

    __slots__ = ("_closed", "_lock", "_loop", "_ping", "_ping_task", "_send", "_streaming")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._streaming = False
        self._closed = False
        self._lock: asyncio.Lock | None = None
        """Made with the first event or ping (the answer alone needs none): from then on the writers (the call,
        pings, notifications from other tasks) take turns."""
        self._ping_task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._ping: asyncio.TimerHandle | None = self._loop.call_later(_SSE_PING_INTERVAL, self._ping_due)

    async def event(self, data: bytes) -> bool:
        """Write one SSE event (a notification of the call); False once the answer is written."""
        async with self._turns():
            if self._closed:
                return False
            await self._write(data)
        if self._ping is not None:  # silence is counted from the last event
            self._ping.cancel()
            self._ping = self._loop.call_later(_SSE_PING_INTERVAL, self._ping_due)
        return True

    async def finish(self, status: int, body: dict[str, Any]) -> None:
        """Write the answer: the last SSE event of a stream, or the JSON response."""
        if self._lock is None:
            await self._finish(status, body)
        else:
            async with self._lock:
                await self._finish(status, body)

    def stop_pings(self) -> None:
        if self._ping is not None:
            self._ping.cancel()
            self._ping = None
        if self._ping_task is not None:
            self._ping_task.cancel()

    async def _finish(self, status: int, body: dict[str, Any]) -> None:
        self._closed = True
        if self._streaming:
            await self._send({"type": "http.response.body", "body": _sse_event(body), "more_body": False})
        else:
            await _write_json(status, _response_json(body), self._send)

    async def _write(self, data: bytes) -> None:
        if not self._streaming:
            self._streaming = True
            await self._send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await self._send({"type": "http.response.body", "body": data, "more_body": True})

    def _turns(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _ping_due(self) -> None:
        self._ping = None
        self._ping_task = self._loop.create_task(self._send_ping())

    async def _send_ping(self) -> None:
        async with self._turns():
            if self._closed:
                return
            try:
                await self._write(b": ping\r\n\r\n")
            except OSError:  # the client is gone: its call is cancelled by the disconnect watch
                return
        self._ping = self._loop.call_later(_SSE_PING_INTERVAL, self._ping_due)


class _DisconnectWatch:
    """Cancels a call's scope when its client disconnects, watching from `_WATCH_AFTER` on."""

    __slots__ = ("_receive", "_scope", "_start", "_task")

    def __init__(self, receive: Receive, scope: anyio.CancelScope) -> None:
        self._receive = receive
        self._scope = scope
        self._task: asyncio.Task[None] | None = None
        self._start: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(_WATCH_AFTER, self._begin)

    def stop(self) -> None:
        if self._start is not None:
            self._start.cancel()
        if self._task is not None:
            self._task.cancel()

    def _begin(self) -> None:
        self._start = None
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive()).get("type") != "http.disconnect":
            pass
        self._scope.cancel()


class FastPath:
    """ASGI middleware in front of the SDK's endpoint: serves `FAST_METHODS` at 2026-07-28, passes on the rest."""

    def __init__(
        self,
        app: ASGIApp,
        server: HubServer,
        *,
        security: TransportSecuritySettings,
        max_body_bytes: int,
        stats: FastPathStats,
    ) -> None:
        self._app = app
        self._server = server
        self._security = TransportSecurityMiddleware(security)
        self._max_body_bytes = max_body_bytes
        self._stats = stats
        self._validated = _Validated()
        self._chains: dict[str, CallNext] = {}
        # Fixed when the server is built; the stamped result is serialised at once and never changed, so one copy
        # serves every answer (the SDK's property copies it per request).
        self._server_info = server.server_info_stamp
        self._server_info_json = _json(self._server_info)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or header_of(scope, b"mcp-protocol-version") != MODERN_ERA
        ):
            await self._app(scope, receive, send)
            return
        request = Request(scope)
        # Decoded once here (Starlette's `Headers` decodes them again on every lookup and copy).
        pairs = [(key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]]
        # As `dict(request.headers)`: a repeated name's first value (read in reverse, the first is written last).
        first = dict(reversed(pairs))
        if not await self._transport_acceptable(first, request):
            await self._pass_on(scope, receive, send)
            return
        read = scope.get(READ_BODY_KEY)
        if not isinstance(read, ReadBody):
            body, receive = await buffer_body(receive, self._max_body_bytes)
            read = ReadBody(body, parse_message(body))
            scope[READ_BODY_KEY] = read
        accepted = None if len(read.body) > self._max_body_bytes else self._accept(read.message, request, pairs, first)
        if accepted is None:
            await self._pass_on(scope, receive, send)
            return
        self._stats.served += 1
        await self._serve(accepted, request, scope, receive, send)

    async def _pass_on(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stats.passed_on += 1
        await self._app(scope, receive, send)

    # --- acceptance: only what the SDK would accept, else None --------------------------------------------------

    async def _transport_acceptable(self, first: Mapping[str, str], request: Request) -> bool:
        """The SDK's transport check (Content-Type, Host, Origin) passes and Accept names JSON and SSE: a verdict
        that depends on those four headers alone, remembered per distinct set of their values (a client sends the
        same ones every time; not a set of long ones). A refusal is the SDK path's to answer (and log)."""
        key = (first.get("content-type"), first.get("host"), first.get("origin"), first.get("accept"))
        verdict = self._validated.transports.get(key)
        if verdict is None:
            has_json, has_sse = check_accept_headers(request)
            verdict = has_json and has_sse and await self._security.validate_request(request, is_post=True) is None
            if sum(len(value) for value in key if value is not None) <= _MAX_REMEMBERED_KEY_SIZE:
                _remember(self._validated.transports, key, verdict)
        return verdict

    def _accept(
        self, message: Any, request: Request, pairs: list[tuple[str, str]], first: dict[str, str]
    ) -> _Accepted | None:
        if not isinstance(message, dict):
            return None
        fields = cast("dict[str, Any]", message)
        method = fields.get("method")
        request_id = fields.get("id")
        params = fields.get("params")
        if (
            method not in FAST_METHODS
            or fields.get("jsonrpc") != "2.0"
            or len(fields) != 4
            or not isinstance(request_id, str | int)
            or isinstance(request_id, bool)
            or not isinstance(params, dict)
        ):
            return None
        method = cast("str", method)
        params = cast("dict[str, Any]", params)
        if find_duplicated_routing_header(pairs) is not None:
            return None
        verdict = classify_inbound_request(fields, headers=first)
        if isinstance(verdict, InboundLadderRejection):
            return None
        if method == "tools/call" and not self._mcp_params_agree(params, pairs, request):
            return None
        validated = self._validate(method, verdict.protocol_version, params)
        if validated is False:
            return None
        typed = validated if isinstance(validated, BaseModel) else None
        return _Accepted(request_id, method, params, verdict.protocol_version, typed)

    def _mcp_params_agree(self, params: Mapping[str, Any], pairs: list[tuple[str, str]], request: Request) -> bool:
        """The SDK's `Mcp-Param-*` check of a `tools/call` (the headers mirror arguments the schema marks)."""
        name = params.get("name")
        arguments = params.get("arguments")
        if not isinstance(name, str) or (arguments is not None and not isinstance(arguments, Mapping)):
            return True  # the params check refuses these
        given: Mapping[str, Any] = cast("Mapping[str, Any]", arguments) if arguments is not None else {}
        prefix = MCP_PARAM_HEADER_PREFIX.lower()
        if not given and not any(header.startswith(prefix) for header, _ in pairs):
            return True
        lookup = self._server.get_tool_input_schema
        schema = lookup(name) if lookup is not None else None
        if schema is None or not self._annotates_headers(name, schema):
            return True
        return validate_mcp_param_headers(schema, given, request.headers) is None

    def _annotates_headers(self, name: str, schema: Any) -> bool:
        """Whether the tool's schema may mark arguments for `Mcp-Param-*` headers (an `x-mcp-header` key anywhere
        in it), remembered per tool and schema: a schema with none has nothing for the SDK's check to compare, so
        the walk of the schema on every call is skipped."""
        known = self._validated.header_schemas.get(name)
        if known is not None and known[0] is schema:
            return known[1]
        annotates = X_MCP_HEADER_KEY in str(schema)  # conservative: the key, or any text that names it
        _remember(self._validated.header_schemas, name, (schema, annotates))
        return annotates

    def _validate(self, method: str, version: str, params: Mapping[str, Any]) -> BaseModel | bool:
        """True: the usual params, valid (typed at call time); a model: unusual params the SDK validated;
        False: let the SDK refuse them."""
        if not params.keys() <= _USUAL_FIELDS[method]:
            return self._validated_by_the_sdk(method, version, params)
        if method == "tools/call":
            arguments = params.get("arguments")
            if not isinstance(params.get("name"), str) or not (arguments is None or isinstance(arguments, dict)):
                return False
        elif not isinstance(params.get("cursor", ""), str):
            return False
        meta = cast("dict[str, Any]", params["_meta"])  # a mapping: `classify_inbound_request` checked
        token = meta.get("progressToken")
        if token is not None and (isinstance(token, bool) or not isinstance(token, str | int)):
            return False
        return self._meta_valid(version, {key: value for key, value in meta.items() if key != "progressToken"})

    def _meta_valid(self, version: str, meta: Mapping[str, Any]) -> bool:
        """The SDK's validation of the request's `_meta`, remembered per distinct `_meta` (a client sends the same
        one every time; not a long one; the progress token, which changes, is checked apart)."""
        key = version.encode() + _json(meta)
        known = self._validated.metas.get(key)
        if known is None:
            try:
                wire_methods.validate_client_request("tools/list", version, {"_meta": meta})
                known = True
            except (ValidationError, KeyError, ValueError):
                known = False
            if len(key) <= _MAX_REMEMBERED_KEY_SIZE:
                _remember(self._validated.metas, key, known)
        return known

    def _validated_by_the_sdk(self, method: str, version: str, params: Mapping[str, Any]) -> BaseModel | bool:
        entry = self._server.get_request_handler(method)
        if entry is None:
            return False
        try:
            wire_methods.validate_client_request(method, version, params)
            return entry.params_type.model_validate(params, by_name=False)
        except (ValidationError, KeyError, ValueError):
            return False

    # --- serving ------------------------------------------------------------------------------------------------

    async def _serve(self, accepted: _Accepted, request: Request, scope: Scope, receive: Receive, send: Send) -> None:
        responder = _Responder(send)
        session = FastSession(progress_token_from_params(accepted.params), responder)
        ctx = FastContext(
            session=session,
            protocol_version=accepted.protocol_version,
            method=accepted.method,
            params=accepted.params,
            request_id=accepted.request_id,
            meta=cast("Mapping[str, Any]", accepted.params["_meta"]),
            request=request,
            accepted=accepted,
        )
        # The call runs in this task under one cancel scope, which a client that goes away cancels: no task
        # group, no stream between tasks. Watching for that costs a task, started only for a call still running
        # after `_WATCH_AFTER` (most are answered sooner, and a call answered is no longer worth cancelling).
        with anyio.CancelScope() as cancel_scope:
            watch = _DisconnectWatch(receive, cancel_scope)
            try:
                status, body = await self._answer(ctx, accepted)
            finally:
                watch.stop()
                responder.stop_pings()
            if isinstance(body.get("result"), PageResult):
                self._stats.pages_written += 1
            await responder.finish(status, body)

    async def _answer(self, ctx: FastContext, accepted: _Accepted) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON-RPC response of the request, as the SDK's single exchange makes them."""
        try:
            result = await self._through_middleware(ctx, accepted)
        except Exception as exc:
            error = handler_exception_to_error_data(exc)
            if error is None:
                logger.exception("modern request handler raised")
                error = types.ErrorData(code=INTERNAL_ERROR, message="Internal server error")
            body = {
                "jsonrpc": "2.0",
                "id": accepted.request_id,
                "error": error.model_dump(by_alias=True, mode="json", exclude_none=True),
            }
            return ERROR_CODE_HTTP_STATUS.get(error.code, 200), body
        return 200, {"jsonrpc": "2.0", "id": accepted.request_id, "result": result}

    async def _through_middleware(self, ctx: FastContext, accepted: _Accepted) -> dict[str, Any]:
        chain = self._chains.get(accepted.method)
        if chain is None:
            chain = self._chains[accepted.method] = self._chain(accepted.method)
        # The middleware and handlers read only the fields `FastContext` shares with the SDK's context.
        result = await chain(cast("ServerRequestContext[Any, Any]", ctx))
        if not isinstance(result, dict):
            raise TypeError(f"handler returned {type(result).__name__}; expected a dict")
        return result

    def _chain(self, method: str) -> CallNext:
        """The server's middleware around the method's handler, composed once per method."""
        entry = self._server.get_request_handler(method)
        if entry is None:  # registered at start: never happens, but never guessed at either
            raise MCPError(code=INTERNAL_ERROR, message="Internal server error")

        async def inner(sdk_ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
            accepted = cast("FastContext", sdk_ctx).accepted
            # Read off the context: the `requestState` boundary hands the handler the opened state.
            params = sdk_ctx.params or {}
            if accepted is None or params is not accepted.params:  # a retry's opened state: validated as the SDK does
                typed = entry.params_type.model_validate(params, by_name=False)
            else:
                typed = accepted.typed or _typed(entry.params_type, params)
            result = await entry.handler(sdk_ctx, typed)
            if isinstance(result, types.ErrorData):
                raise MCPError.from_error_data(result)
            if isinstance(result, PageResult):
                return _stamped_page(self._server_info, self._server_info_json, result)
            return _stamped(self._server_info, result)

        call: CallNext = inner
        for middleware in reversed(self._server.middleware):
            call = _bound(middleware, call)
        return call


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    """`cache[key] = value`, the cache emptied first when it holds `_MAX_VALIDATED_METAS` entries (what a client
    varies cannot grow it without bound)."""
    if len(cache) >= _MAX_VALIDATED_METAS:
        cache.clear()
    cache[key] = value


def _bound(
    middleware: Callable[[ServerRequestContext[Any, Any], CallNext], Awaitable[HandlerResult]], call_next: CallNext
) -> CallNext:
    async def call(ctx: ServerRequestContext[Any, Any]) -> HandlerResult:
        return await middleware(ctx, call_next)

    return call


def _typed(params_type: type[BaseModel], params: Mapping[str, Any]) -> BaseModel:
    """The handler's params model from params already checked (no second validation)."""
    fields: dict[str, Any] = {}
    for key, value in params.items():
        fields["meta" if key == "_meta" else key] = value
    return params_type.model_construct(**fields)


def _stamped_page(server_info: dict[str, Any], server_info_json: bytes, page: PageResult) -> dict[str, Any]:
    """`_stamped` for a list page: a `PageResult` whose JSON gets the stamp spliced in, so the page is never
    serialised again; a page that has a `_meta` of its own is stamped as any result."""
    if "_meta" in page:
        return _stamped(server_info, dict(page))
    stamp = b',"_meta":{"' + types.SERVER_INFO_META_KEY.encode() + b'":' + server_info_json + b"}"
    stamped = {**page, "_meta": {types.SERVER_INFO_META_KEY: server_info}}
    if "resultType" not in page:
        stamp = b',"resultType":"complete"' + stamp
        stamped["resultType"] = "complete"
    return PageResult(stamped, page.body[:-1] + stamp + b"}")


def _stamped(server_info: dict[str, Any], result: Any) -> dict[str, Any]:
    """What the SDK adds to every 2026-07-28 result: `resultType` and the `serverInfo` stamp."""
    if not isinstance(result, dict):
        raise TypeError(f"handler returned {type(result).__name__}; expected a dict")
    dumped: dict[str, Any] = dict(cast("dict[str, Any]", result))
    if dumped.get("resultType") is None:
        dumped["resultType"] = "complete"
    meta = dumped.get("_meta")
    if meta is None:
        dumped["_meta"] = {types.SERVER_INFO_META_KEY: server_info}
    elif isinstance(meta, dict) and cast("dict[str, Any]", meta).get(types.SERVER_INFO_META_KEY) is None:
        dumped["_meta"] = {**cast("dict[str, Any]", meta), types.SERVER_INFO_META_KEY: server_info}
    return dumped


async def _write_json(status: int, content: bytes, send: Send) -> None:
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json")],
    }
    await send(start)
    await send({"type": "http.response.body", "body": content})
