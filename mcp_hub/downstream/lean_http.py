"""Forwarding a request to a 2026-07-28 Streamable HTTP downstream with a lean pooled client (issue 12 §1).

The era is stateless (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports): one request is
one POST, answered by a JSON body or by an SSE stream that carries, before the response, what the server sends about
that request (progress, log entries). The SDK client models and validates every message with pydantic and runs each
POST through its dispatcher, memory streams and httpx2: about 1 ms of the hub's CPU per call. For request/response
forwarding this client posts the JSON-RPC bytes itself (orjson) over the hub's own HTTP/1.1 transport
(`mcp_hub.downstream.http1`: kept-alive connections on asyncio's Protocol API, llhttp parsing the answers; it
replaced aiohttp's client, a fifth of the hub's Python work per call: docs/benchmarks.md), with the era's headers
(`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`, built by the connection; field names in lower case,
so that each is sent once), and reads the answer as plain dicts. The SDK `Client` keeps the handshake, listing and
`subscriptions/listen`. TLS: the hub's one verifying context (`mcp_hub.downstream.tls`), as the SDK client's.

- Cancellation: over 2026-07-28 HTTP, closing the request's response stream is the cancellation signal (the SDK's
  `streamable_http` transport aborts the POST instead of writing `notifications/cancelled`); a cancelled `request`
  releases its answer unfinished, which closes the connection.
- Size: a JSON body, or one SSE event, over `max_message_bytes` is not read further (threat T32): the response is
  abandoned (its connection closed) and only that call fails.
- Errors are the SDK path's (`DownstreamConnection._call_error`; tests/test_lean_http_answers.py compares them): a
  JSON-RPC error (in a 2xx body, or a non-2xx JSON body) is the downstream's own; otherwise a 404 is
  `METHOD_NOT_FOUND`, another non-2xx `INTERNAL_ERROR` (whatever its body, JSON or not), a 202 or a redirect not
  followed `INVALID_REQUEST`; an unparsable JSON body of a 2xx answer `PARSE_ERROR`. A refused connection (or none
  within the connect timeout: `DownstreamUnreachableError`), a connection closed before the answer ended
  (`DownstreamClosedError`) or a stream that ends without an answer is the connection lost (`on_lost`: the owner
  reconnects). Such a stream is not resumed: 2026-07-28 has no stream resumption (the SDK client's GET with
  `Last-Event-ID` is the 2025-11-25 mechanism, and a 2026-07-28 server answers that GET 405). An answer that is
  not HTTP/1.1 (`DownstreamProtocolError`) fails only its call. A connection the server closed while it sat idle
  in the pool fails nothing: the request goes on a new one (`http1`'s retry rule).
- Redirects: followed as the SDK path's client follows them (`mcp.shared._httpx_utils.stream_within_origin`), at
  most 20 for a request: a 307 or 308 that brings no credentials of its own, within the origin of the request it
  answers (its scheme, host and port) or from `http` on port 80 to `https` on 443 of the same host (httpx2's
  https upgrade; its connections are pooled beside the connector's, made at the first such redirect), the same
  request, with the same fields (the connector's credentials included, as httpx2 keeps them for that upgrade),
  sent again where it leads. Never to another host or port, never from https to http (`INVALID_REQUEST`).
- Downstream OAuth: the connector's own client-credentials bearer (`mcp_hub.downstream.oauth`), renewed once after
  a 401 (RFC 6750 §3.1), as the SDK path's `httpx2.Auth` flow does.
- Questions: a downstream's request on the stream is put to the caller (`on_question`), and the answer POSTed back
  (`_reply`) on another pooled connection; notifications other than the request's progress go to `on_notification`.
"""

from __future__ import annotations

import ssl
from base64 import b64encode
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import unquote, urljoin, urlsplit

import orjson
import structlog
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR

from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.http1 import Http1Pool, Origin, Response, origin_of
from mcp_hub.downstream.oauth import ClientCredentialsAuth
from mcp_hub.downstream.progress import report_progress
from mcp_hub.downstream.sse import sse_events
from mcp_hub.downstream.tls import verifying_context
from mcp_hub.errors import (
    ConnectorUnavailableError,
    DownstreamClosedError,
    DownstreamError,
    DownstreamProtocolError,
    DownstreamRejectedError,
    DownstreamUnreachableError,
)

logger = structlog.get_logger(__name__)

_ACCEPT: Final = "application/json, text/event-stream"
_MAX_REDIRECTS: Final = 20
"""Redirects followed for one request at most: httpx2's default `max_redirects`, which the SDK path's keeps."""

Question = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""A downstream's request on the stream (its JSON-RPC message) → the response message to send back."""
Notification = Callable[[dict[str, Any]], Awaitable[None]]
"""A downstream's notification on the stream (its JSON-RPC message), progress excepted."""


@dataclass(frozen=True, slots=True)
class StreamHandlers:
    """Where what a downstream sends on a request's own stream goes."""

    on_progress: ProgressFnT | None
    on_notification: Notification
    on_question: Question


class LeanHttpClient:
    """One connector's pooled keep-alive client for 2026-07-28 requests; use it as an async context manager."""

    def __init__(
        self,
        connector_id: ConnectorId,
        url: str,
        *,
        headers: Mapping[str, str],
        auth: ClientCredentialsAuth | None,
        max_message_bytes: int,
        connect_timeout: float,
        on_lost: Callable[[str], None],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`on_lost(reason)` when the connection to the downstream is lost during a call (the owner reconnects);
        `tls` for an https URL, by default the hub's verifying context (`mcp_hub.downstream.tls`)."""
        self._id = connector_id
        self._url = url
        # Field names in lower case, as the SDK's `mcp-*` names: merged dicts then hold each field once.
        self._headers = {
            **{name.lower(): value for name, value in headers.items()},
            "accept": _ACCEPT,
            "content-type": "application/json",
            "accept-encoding": "identity",  # bodies are read as they come, never decoded
        }
        parts = urlsplit(url)
        if parts.username is not None:
            # As the SDK client's httpx2 (and aiohttp before this client) do: credentials in the URL go as Basic
            # (RFC 7617), unless the connector sets its own Authorization field.
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self._headers.setdefault("authorization", f"Basic {b64encode(credentials).decode('ascii')}")
        self._auth = auth
        self._cap = max_message_bytes
        self._connect_timeout = connect_timeout
        self._on_lost = on_lost
        self._tls = tls
        self._pool: Http1Pool | None = None
        self._upgraded: Http1Pool | None = None  # the https origin an http connector's redirect upgraded it to

    async def __aenter__(self) -> Self:
        self._pool = self._pool_for(self._url)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        pools = (self._pool, self._upgraded)
        self._pool = self._upgraded = None
        for pool in pools:
            if pool is not None:
                await pool.aclose()

    def _pool_for(self, url: str) -> Http1Pool:
        return Http1Pool(
            self._id,
            url,
            tls=self._tls if self._tls is not None else verifying_context(),
            # The connection's call timeout bounds a call; only connecting has its own bound here.
            connect_timeout=self._connect_timeout,
        )

    async def request(
        self, message: Mapping[str, Any], headers: Mapping[str, str], handlers: StreamHandlers
    ) -> dict[str, Any]:
        """POST one JSON-RPC request; its `result`, or a `DownstreamError` (see the module docstring)."""
        pool = self._pool
        if pool is None:
            raise ConnectorUnavailableError(self._id, f"connector {self._id!r} is not connected")
        body = orjson.dumps(message)
        sent_headers = {**self._headers, **headers}
        token = await self._bearer(None)
        for attempt in (1, 2):
            if token is not None:
                sent_headers["authorization"] = f"Bearer {token}"
            try:
                response = await self._post(pool, sent_headers, body)
                try:
                    if response.status == 401 and token is not None and attempt == 1:
                        token = await self._bearer(token)
                        continue
                    return await self._answer(response, message.get("id"), handlers)
                finally:
                    response.release()  # an unfinished answer closes its connection: a cancelled call's signal
            except DownstreamUnreachableError as exc:
                self._lost(str(exc))
                raise
            except DownstreamClosedError:
                self._lost("the connection closed during a call")
                raise
        raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover

    async def _post(self, pool: Http1Pool, headers: Mapping[str, str], body: bytes) -> Response:
        """POST to the connector's URL, following the redirects the SDK path follows; the last answer."""
        url: str | None = None  # the connector's URL
        for _ in range(_MAX_REDIRECTS):
            response = await pool.post(headers, body, url=url)
            if not 300 <= response.status < 400:  # the common case: no redirect to look into
                return response
            led_to = _redirected_to(pool, response, url or self._url)
            if led_to is None:
                return response
            response.release()  # its body unread: the connection closes unless it has ended
            if not pool.on_origin(led_to):
                pool = self._upgraded_pool(led_to)
            url = led_to
        return await pool.post(headers, body, url=url)

    def _upgraded_pool(self, url: str) -> Http1Pool:
        """The pool of the https origin that `url`, the https upgrade of the connector's http origin, is on."""
        if self._pool is None:  # the client closed while this request was on its way
            raise DownstreamClosedError(self._id, f"connector {self._id!r} is closing")
        if self._upgraded is None:
            self._upgraded = self._pool_for(url)
        return self._upgraded

    def _lost(self, reason: str) -> None:
        self._on_lost(reason)

    def _closed(self, why: str) -> ConnectorUnavailableError:
        """The connection closed under a call (the owner reconnects, as for the SDK's CONNECTION_CLOSED)."""
        self._lost(f"the connection closed during a call ({why})")
        return ConnectorUnavailableError(self._id, f"connector {self._id!r} closed the connection during the call")

    def _oversized(self) -> DownstreamProtocolError:
        logger.warning("oversized message from a downstream abandoned", connector=self._id, limit=self._cap)
        return DownstreamProtocolError(
            self._id,
            f"connector {self._id!r} answered with a message larger than {self._cap} bytes "
            "(max_message_bytes); it was not read",
        )

    async def _bearer(self, refused: str | None) -> str | None:
        if self._auth is None:
            return None
        try:
            return await (self._auth.bearer() if refused is None else self._auth.bearer_after_refusal(refused))
        except DownstreamError as exc:
            self._lost(str(exc))  # as on the SDK path, whose transport ends when its auth flow fails
            raise

    async def _answer(self, response: Response, request_id: object, handlers: StreamHandlers) -> dict[str, Any]:
        status = response.status
        content_type = response.header(b"content-type").lower()
        if status == 202:
            raise DownstreamRejectedError(self._id, INVALID_REQUEST, "server answered a request with 202 Accepted")
        if 300 <= status < 400:
            where = response.header(b"location") or "?"
            raise DownstreamRejectedError(
                self._id, INVALID_REQUEST, f"redirect to {where} not followed (HTTP {status})"
            )
        if status >= 400:
            if content_type.startswith("application/json"):
                # The downstream's own JSON-RPC error if the body is one; anything else (not even JSON) is the
                # status's error below, as on the SDK path.
                try:
                    message = orjson.loads(await self._read_body(response))
                except orjson.JSONDecodeError:
                    message = None
                if isinstance(message, dict) and isinstance(cast("dict[str, Any]", message).get("error"), dict):
                    return self._result(cast("dict[str, Any]", message))
            if status == 404:
                raise DownstreamRejectedError(self._id, METHOD_NOT_FOUND, "Not Found")
            raise DownstreamRejectedError(self._id, INTERNAL_ERROR, "Server returned an error response")
        if content_type.startswith("application/json"):
            message = self._parse(await self._read_body(response))
            if not isinstance(message, dict):
                raise DownstreamRejectedError(self._id, PARSE_ERROR, "Failed to parse JSON response: not an object")
            return self._result(cast("dict[str, Any]", message))
        if content_type.startswith("text/event-stream"):
            return await self._from_events(response, request_id, handlers)
        raise DownstreamRejectedError(self._id, INVALID_REQUEST, f"Unexpected content type: {content_type}")

    def _parse(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DownstreamRejectedError(self._id, PARSE_ERROR, f"Failed to parse JSON response: {exc}") from None

    def _result(self, message: dict[str, Any]) -> dict[str, Any]:
        return result_of(self._id, message)

    async def _read_body(self, response: Response) -> bytes:
        return await response.read(self._cap, self._oversized)

    async def _from_events(self, response: Response, request_id: object, handlers: StreamHandlers) -> dict[str, Any]:
        try:
            return await self._result_of_events(response, request_id, handlers)
        except DownstreamProtocolError:
            response.abandon()  # an oversized event: the rest of the stream is not read
            raise

    async def _result_of_events(
        self, response: Response, request_id: object, handlers: StreamHandlers
    ) -> dict[str, Any]:
        async for data in _event_data(response.chunks(), self._cap, self._oversized):
            if not data:
                continue  # a priming event (an id for resumption, no message)
            message = self._parse(data)
            if not isinstance(message, dict):
                raise DownstreamRejectedError(self._id, PARSE_ERROR, "Failed to parse SSE message: not an object")
            fields = cast("dict[str, Any]", message)
            method = fields.get("method")
            if not isinstance(method, str):
                # This request's own stream: a response on it is its answer, whatever its id (as the SDK client
                # takes it), never an answer to another request of the hub's.
                return self._result(fields)
            if "id" in fields:
                await self._reply(await handlers.on_question(fields))
            elif method == "notifications/progress":
                params = fields.get("params")
                if isinstance(params, dict) and cast("dict[str, Any]", params).get("progressToken") == request_id:
                    await report_progress(cast("dict[str, Any]", params), handlers.on_progress)
            else:
                await handlers.on_notification(fields)
        raise self._closed("the SSE stream ended without a response")

    async def _reply(self, answer: dict[str, Any]) -> None:
        """Send the answer to a downstream's question (the SDK client POSTs it likewise)."""
        pool = self._pool
        if pool is None:
            return
        headers = {
            key: value for key, value in self._headers.items() if key not in (MCP_METHOD_HEADER, MCP_NAME_HEADER)
        }
        token = await self._bearer(None)
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        try:
            response = await self._post(pool, headers, orjson.dumps(answer))
            try:
                await response.read(self._cap, self._oversized)  # read to its end, so the connection is reused
            finally:
                response.release()
        except (DownstreamUnreachableError, DownstreamClosedError, DownstreamProtocolError) as exc:
            logger.warning("answer to a downstream's question not delivered", connector=self._id, error=str(exc))


async def _event_data(
    chunks: AsyncIterator[bytes], cap: int, oversized: Callable[[], DownstreamError]
) -> AsyncIterator[bytes]:
    """The data of each `message` SSE event (its `data:` lines joined), each event at most `cap` bytes, else
    `oversized()` is raised (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)."""
    async for event in sse_events(chunks, cap, lambda _size: oversized()):
        data: list[bytes] = []
        event_type = b""
        for line in event:
            name, _, value = line.partition(b":")
            value = value.removeprefix(b" ")
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event_type = value
        if data and event_type in (b"", b"message"):
            yield b"\n".join(data)


def _redirected_to(pool: Http1Pool, response: Response, url: str) -> str | None:
    """Where `response` (to a POST to `url`, on `pool`'s origin) redirects, if the SDK path would follow it
    (`mcp.shared._httpx_utils.next_request_within_origin`): a 307 or 308 (a POST stays a POST, RFC 9110 §15.4.8,
    §15.4.9) within the origin or to its https upgrade (`_upgrades`), bringing no credentials of its own."""
    if response.status not in (307, 308) or not (location := response.header(b"location")):
        return None
    led_to = urljoin(url, location.strip())
    userinfo = urlsplit(led_to).netloc.rpartition("@")[0]
    if userinfo and userinfo != urlsplit(url).netloc.rpartition("@")[0]:
        return None
    return led_to if pool.on_origin(led_to) or _upgrades(pool.origin, origin_of(led_to)) else None


def _upgrades(sent: Origin, led_to: Origin | None) -> bool:
    """Is `led_to` the https upgrade of `sent`: http on port 80 to https on 443, the same host? The one origin
    besides its own that the SDK path follows a redirect to (`mcp.shared._httpx_utils._within_origin`, httpx2's
    `_is_https_redirect`, which keeps the Authorization field for it): never another host or port, never
    from https to http."""
    scheme, host, port = sent
    return scheme == "http" and port == 80 and led_to == ("https", host, 443)


def result_of(connector_id: ConnectorId, message: Mapping[str, Any]) -> dict[str, Any]:
    """The `result` of a JSON-RPC response, or its `error` as the downstream's own `DownstreamRejectedError`."""
    error = message.get("error")
    if isinstance(error, dict):
        fields = cast("dict[str, Any]", error)
        code, text = fields.get("code"), fields.get("message")
        raise DownstreamRejectedError(
            connector_id,
            code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR,
            text if isinstance(text, str) else "",
            fields.get("data"),
        )
    result = message.get("result")
    if not isinstance(result, dict):
        raise DownstreamRejectedError(connector_id, PARSE_ERROR, "Failed to parse JSON response: no result object")
    return cast("dict[str, Any]", result)
