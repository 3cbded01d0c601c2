"""Resumable 2025-11-25 streams at the front door: each request is told whose session it belongs to, every
standalone GET stream starts at a position its client can resume from, and a `Last-Event-ID` that cannot be
resumed is answered instead of half replayed.

Spec: https://modelcontextprotocol.io/specification/2025-11-25/basic/transports ("Listening for Messages from
the Server", "Resumability and Redelivery"). The events themselves are kept by `gateway/event_store.py`.
Pure ASGI middleware (it must not buffer SSE responses), between the bearer guard (whose principal it reads from
`scope["user"]`) and the SDK's endpoint. 2026-07-28 requests pass untouched: that era has no resumption.

Per 2025-11-25 request:
1. **Whose session.** A request without `Mcp-Session-Id` may open a session: it runs with a new `StreamScope` in
   `current_scope`, which the session's task inherits, and the scope is filed under the session id its response
   names. A request naming a session runs in that session's scope only with the credential that opened it;
   otherwise it reaches the SDK untouched, which answers 404 (T13: another principal learns nothing of the
   session's events, not even whether an event id exists).
2. **A GET without `Last-Event-ID`** opens the standalone stream at a position of its own: the hub stores a
   priming event, sends it first (its id, and the `retry` field), and hands the SDK the GET as a resumption from
   it. Two SDK gaps closed: the SDK sends no priming event on a GET stream, so a client cut off before the first
   notification had nothing to resume from; and it forwards live messages only once the response has started,
   so a notification sent in between reached the store but not the client. The SDK's rule of one standalone
   stream per session is kept (409 while one is served), since its replay path does not check it.
3. **A GET with `Last-Event-ID`** the store can replay whole goes to the SDK, which replays and continues live.
   The hub withholds `MCP-Protocol-Version` from the SDK for it (nothing else on the GET path reads it; the SDK
   then takes the spec's default, 2025-03-26, and sends no priming event): the SDK sends that priming event
   between the replay and the start of live forwarding, and a message stored during that send reached neither
   (its own comment calls the replay-to-live window pre-existing). The client keeps resuming from its last id.
4. **A `Last-Event-ID` that cannot be replayed whole** (another session's, forged, or whose successors were
   evicted) replays nothing (spec: never another stream's messages; and a replay with a hole would hide a loss).
   An id of the standalone stream opens a fresh standalone stream that starts with a list-changed notification
   for every list the hub announces changes of: list changes are levels, so "refetch" is exactly what was lost.
   Any other id is a request's response stream, whose response cannot be recovered: 400 with a JSON-RPC error.
   The spec leaves this case open (modelcontextprotocol/modelcontextprotocol#1939); 404 would say the session
   ended, and the SDK's own answer (an empty stream that ends at once) makes clients reconnect in a loop.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Final

import structlog
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, AuthorizationContext, authorization_context
from mcp.server.streamable_http import (
    GET_STREAM_KEY,
    LAST_EVENT_ID_HEADER,
    MCP_SESSION_ID_HEADER,
    check_accept_headers,
)
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types import INVALID_REQUEST, ErrorData, JSONRPCError, JSONRPCNotification
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from sse_starlette import ServerSentEvent
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.domain import Resumption
from mcp_hub.gateway.event_store import EventLog, StreamScope, current_scope, is_standalone_id

logger = structlog.get_logger(__name__)

_DROPPED_ON_RESUME: Final = frozenset({MCP_PROTOCOL_VERSION_HEADER.encode(), LAST_EVENT_ID_HEADER.encode()})


def refetch_notifications(catalog: Catalog) -> list[JSONRPCNotification]:
    """A list-changed notification for every list the hub has something in (tools always): what a client whose
    notification stream lost events is sent, so that it refetches."""
    lists = {
        "tools": True,
        "prompts": len(catalog.prompts) > 0,
        "resources": len(catalog.resources) + len(catalog.templates) > 0,
    }
    return [
        JSONRPCNotification(jsonrpc="2.0", method=f"notifications/{name}/list_changed")
        for name, announced in lists.items()
        if announced
    ]


class ResumableStreams:
    """Scopes 2025-11-25 requests to their session's events and opens GET streams resumably (module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        events: EventLog,
        *,
        retry_ms: int,
        refetch: Callable[[], Sequence[JSONRPCNotification]],
    ) -> None:
        self._app = app
        self._events = events
        self._retry_ms = retry_ms
        self._refetch = refetch
        # A session's scope lives as long as its tasks (which hold it in their context); so does this entry.
        self._sessions: weakref.WeakValueDictionary[str, StreamScope] = weakref.WeakValueDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        version = headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS:
            await self._app(scope, receive, send)  # 2026-07-28 (or a version the SDK refuses): nothing to resume
            return
        session_id = headers.get(MCP_SESSION_ID_HEADER)
        if session_id is None:
            await self._may_open_session(scope, receive, send)
            return
        session = self._sessions.get(session_id)
        if session is None or session.owner != _requestor(scope):
            await self._app(scope, receive, send)  # the SDK's 404: unknown session, or not its opener's credential
            return
        token = current_scope.set(session)
        try:
            if scope["method"] == "GET" and check_accept_headers(Request(scope))[1]:
                await self._open_stream(scope, receive, send, session, headers)
            else:
                await self._app(scope, receive, send)
        finally:
            current_scope.reset(token)

    async def _may_open_session(self, scope: Scope, receive: Receive, send: Send) -> None:
        session = StreamScope(owner=_requestor(scope))

        async def file_session(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] < 400:
                session_id = Headers(raw=message["headers"]).get(MCP_SESSION_ID_HEADER)
                if session_id is not None:
                    self._sessions[session_id] = session
            await send(message)

        token = current_scope.set(session)
        try:
            await self._app(scope, receive, file_session)
        finally:
            current_scope.reset(token)

    async def _open_stream(
        self, scope: Scope, receive: Receive, send: Send, session: StreamScope, headers: Headers
    ) -> None:
        session_id = headers.get(MCP_SESSION_ID_HEADER, "")
        last_event_id = headers.get(LAST_EVENT_ID_HEADER) or None  # an empty one is none, as the SDK reads it
        refetch = False
        if last_event_id is not None:
            found = await self._events.resumption(session.partition, last_event_id)
            standalone = is_standalone_id(last_event_id)
            if found is Resumption.RESUMABLE:
                resumed = _resuming_after(scope, last_event_id)
                await self._serve(resumed, receive, send, session if standalone else None)
                return
            logger.info("stream not resumable", found=found.value, standalone=standalone)
            if not standalone:
                refusal = _refusal(400, "Bad Request: Last-Event-ID names no stream that can be resumed", session_id)
                await refusal(scope, receive, send)
                return
            refetch = True
        elif session.standalone_streams:
            # The SDK's rule, kept: one standalone stream per session (a second would get every notification again).
            refusal = _refusal(409, "Conflict: Only one SSE stream is allowed per session", session_id)
            await refusal(scope, receive, send)
            return
        cursor = await self._events.append(session.partition, GET_STREAM_KEY, None)
        if refetch:
            for notification in self._refetch():
                await self._events.append(session.partition, GET_STREAM_KEY, notification)
        priming = ServerSentEvent(data="", id=cursor, retry=self._retry_ms).encode()

        async def primed(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.start" and message["status"] == 200:
                await send({"type": "http.response.body", "body": priming, "more_body": True})

        await self._serve(_resuming_after(scope, cursor), receive, primed, session)

    async def _serve(self, scope: Scope, receive: Receive, send: Send, standalone_of: StreamScope | None) -> None:
        """The SDK serves the stream; a standalone one is counted for its session while it is served."""
        if standalone_of is None:
            await self._app(scope, receive, send)
            return
        standalone_of.standalone_streams += 1
        try:
            await self._app(scope, receive, send)
        finally:
            standalone_of.standalone_streams -= 1


def _requestor(scope: Scope) -> AuthorizationContext | None:
    """Who is asking, compared the way the SDK's session manager compares a session's owner."""
    user = scope.get("user")
    return authorization_context(user) if isinstance(user, AuthenticatedUser) else None


def _resuming_after(scope: Scope, event_id: str) -> Scope:
    """`scope` as a resumption after `event_id` without `MCP-Protocol-Version` (module docstring, 3)."""
    headers = [(name, value) for name, value in scope["headers"] if name not in _DROPPED_ON_RESUME]
    headers.append((LAST_EVENT_ID_HEADER.encode(), event_id.encode()))
    return {**scope, "headers": headers}


def _refusal(status: int, message: str, session_id: str) -> Response:
    """A JSON-RPC error without id, as the SDK's transport writes its own refusals."""
    error = JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(code=INVALID_REQUEST, message=message))
    return Response(
        error.model_dump_json(by_alias=True, exclude_unset=True),
        status_code=status,
        media_type="application/json",
        headers={MCP_SESSION_ID_HEADER: session_id},
    )
