"""Tagging what a Streamable HTTP downstream sends on a request's own response stream with that request's id.

Streamable HTTP (https://modelcontextprotocol.io/specification/2025-11-25/basic/transports#sending-messages-to-the-server
and the 2026-07-28 transports page) lets a server answer a POSTed request with an SSE stream that carries, before
the response, notifications and requests related to it: log entries, progress, elicitation and sampling
questions. The SDK's client transport merges every stream into one queue and forgets which POST a message came
on, so the hub's HTTP client does it here, below the SDK: an httpx2 transport whose SSE response bodies are
rewritten event by event. Every JSON-RPC request or notification in an event gets
`params._meta[RELATED_REQUEST_META_KEY] = <the POSTed request's id>`; on any other stream (the standalone GET
stream) the key is removed, so a downstream can never name a request itself. Responses pass through untouched
(a quick byte check spares them the JSON round trip).

Events are rewritten whole (the `data:` lines of an event joined, as SSE defines, into one line). Every response
body is read under the connector's `max_message_bytes` (threat T32): an SSE event, or a JSON body, that grows past it
is not read any further: the response is abandoned (the SDK then fails the request it answered) and the request id
is reported through `on_oversized`, so the connection can tell that call why, and keep serving the others.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Final, cast

import httpx2
import structlog

from mcp_hub.bodies import parse_json
from mcp_hub.downstream.relay import RELATED_REQUEST_META_KEY
from mcp_hub.downstream.sse import sse_events

logger = structlog.get_logger(__name__)

_METHOD_MARK: Final = b'"method"'
_TAG_MARK: Final = RELATED_REQUEST_META_KEY.encode()


def _tag_message(message: Any, related: object) -> Any:
    if not isinstance(message, dict):
        return message
    wire = cast("dict[str, Any]", message)
    if "method" not in wire:
        return wire
    params = wire.get("params")
    params = dict(cast("dict[str, Any]", params)) if isinstance(params, dict) else {}
    meta = params.get("_meta")
    meta = dict(cast("dict[str, Any]", meta)) if isinstance(meta, dict) else {}
    meta.pop(RELATED_REQUEST_META_KEY, None)
    if related is not None:
        meta[RELATED_REQUEST_META_KEY] = related
    if meta:
        params["_meta"] = meta
    else:
        params.pop("_meta", None)
    return {**wire, "params": params}


def tag_event_data(data: bytes, related: object) -> bytes:
    """The `data` of one SSE event with its requests and notifications tagged with `related` (None: untagged)."""
    if _METHOD_MARK not in data and _TAG_MARK not in data:
        return data  # a response: nothing to tag, nothing a downstream could have forged
    try:
        message: Any = parse_json(data)
    except ValueError:
        return data  # not JSON: the SDK reports it as such
    if isinstance(message, list):
        tagged: Any = [_tag_message(item, related) for item in cast("list[Any]", message)]
    else:
        tagged = _tag_message(message, related)
    return json.dumps(tagged, separators=(",", ":"), ensure_ascii=False).encode()


OversizedCallback = Callable[[object], None]
"""A response to the request with this JSON-RPC id (None: no request's) was over the cap and abandoned."""


class _Cap:
    """The byte budget of one message; `over` abandons the response."""

    def __init__(self, limit: int, related: object, on_oversized: OversizedCallback) -> None:
        self.limit = limit
        self._related = related
        self._on_oversized = on_oversized

    def over(self, size: int) -> httpx2.StreamError:
        logger.warning("oversized message from a downstream abandoned", bytes_read=size, limit=self.limit)
        self._on_oversized(self._related)
        return httpx2.StreamError(f"the downstream's message is larger than {self.limit} bytes")


class _CappedBody(httpx2.AsyncByteStream):
    """A whole-message body (JSON), read up to the cap."""

    def __init__(self, inner: httpx2.AsyncByteStream, cap: _Cap) -> None:
        self._inner = inner
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._cap.limit:
                raise self._cap.over(size)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _TaggedEvents(httpx2.AsyncByteStream):
    """An SSE body, re-emitted event by event with `tag_event_data` applied to each event's data; an event over the
    cap ends it."""

    def __init__(self, inner: httpx2.AsyncByteStream, related: object, cap: _Cap) -> None:
        self._inner = inner
        self._related = related
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for event in sse_events(self._inner, self._cap.limit, self._cap.over):
            yield self._rewrite(event)

    def _rewrite(self, event: list[bytes]) -> bytes:
        data = [line.removeprefix(b"data:").removeprefix(b" ") for line in event if line.startswith(b"data:")]
        if not data:
            return b"\n".join(event) + b"\n\n"
        tagged = tag_event_data(b"\n".join(data), self._related)
        out: list[bytes] = []
        for line in event:
            if line.startswith(b"data:"):
                if tagged:
                    out.append(b"data: " + tagged)
                    tagged = b""
            else:
                out.append(line)
        return b"\n".join(out) + b"\n\n"

    async def aclose(self) -> None:
        await self._inner.aclose()


def _request_id(request: httpx2.Request) -> object:
    """The JSON-RPC id of a POSTed request (None for notifications, responses, GET)."""
    if request.method != "POST":
        return None
    try:
        body: Any = json.loads(request.content)
    except (ValueError, httpx2.RequestNotRead):
        return None
    if isinstance(body, dict) and "method" in body:
        return cast("dict[str, Any]", body).get("id")
    return None


class RelatedMessageTagger(httpx2.AsyncBaseTransport):
    """An httpx2 transport that tags the messages of each request's SSE response with the request's id, and reads
    every response body under `max_message_bytes` per message."""

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, *, max_message_bytes: int, on_oversized: OversizedCallback
    ) -> None:
        self._inner = inner
        self._max_message_bytes = max_message_bytes
        self._on_oversized = on_oversized

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        stream = response.stream
        if not isinstance(stream, httpx2.AsyncByteStream):  # pragma: no cover - async transports stream async
            return response
        related = _request_id(request)
        cap = _Cap(self._max_message_bytes, related, self._on_oversized)
        capped: httpx2.AsyncByteStream
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            capped = _TaggedEvents(stream, related, cap)
        else:
            capped = _CappedBody(stream, cap)
        return httpx2.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=capped,
            request=request,
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
