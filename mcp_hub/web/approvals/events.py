"""`GET /approvals/events`: the inbox's live updates as server-sent events (HTML Living Standard §9.2).

An `action` event, data `{"id": ..., "status": ...}`, whenever an action changes. Changes made by this process
wake the stream at once (`ActionFeed.next_change()`), and so do those of the CLI or another replica when the
replicas share a bus (`ActionFeed.changed_elsewhere`); the store is also read every `POLL_SECONDS`, so they
appear without a bus (or after a lost message) too. The stream starts with a `retry` hint of `POLL_SECONDS`, sends a
comment as a ping every `PING_SECONDS` (proxies keep it open), sends `signed-out` and ends when the session ends,
and ends after `STREAM_SECONDS` (the browser reconnects) or when the server shuts down (sse-starlette's
`EventSourceResponse` watches for that).

Fair shares (threat T28): every stream of the process is served from one shared snapshot of the actions' statuses,
read at most once per `POLL_SECONDS` or per transition of the feed whatever the number of streams (a single-flight
`TtlCache`), and one web session may hold at most `[approvals] max_event_streams_per_session` streams at once
(429 beyond). Whether a stream's session still lives is likewise read once per session and interval.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, Final

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from mcp_hub.approvals.feed import ActionFeed
from mcp_hub.approvals.presentation import INBOX_PATH
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.credentials import sha256_hex
from mcp_hub.domain import ALL_STATUSES
from mcp_hub.ttl_cache import TtlCache
from mcp_hub.web.pages import SCRIPTED_CSP
from mcp_hub.web.sessions import WebSession, WebSessions

EVENTS_PATH: Final = f"{INBOX_PATH}/events"
POLL_SECONDS: Final = 2.0
"""How often the shared snapshot is read again for changes made by other processes."""
STREAM_SECONDS: Final = 300.0
"""An event stream ends after this long and the browser reconnects (a stream is never open for good)."""
PING_SECONDS: Final = 15.0
_SNAPSHOT_LIMIT: Final = 500


class ActionEvents:
    """The event stream's endpoint (behind `mcp_hub.web.access.RequireRole`, like the pages)."""

    def __init__(
        self, service: ApprovalService, sessions: WebSessions, feed: ActionFeed, *, max_streams_per_session: int
    ) -> None:
        self._service = service
        self._sessions = sessions
        self._feed = feed
        self._max_streams = max_streams_per_session
        self._open: Counter[str] = Counter()
        """Open streams per web session (by the digest of its cookie)."""
        self._snapshots = TtlCache[dict[str, str]](POLL_SECONDS, max_entries=8)
        self._signed_in = TtlCache[bool](POLL_SECONDS)

    async def stream(self, request: Request, viewer: WebSession) -> Response:
        del viewer  # let in by the role check; the stream looks at the session again as it goes
        key = self._session_key(request)
        if self._open[key] >= self._max_streams:
            return JSONResponse(
                {"error": "too_many_streams", "detail": f"at most {self._max_streams} event streams per session"},
                status_code=429,
                headers={"Retry-After": str(int(STREAM_SECONDS))},
            )
        # Look before the response starts: the browser fetches the list when the stream opens, so every
        # change after this snapshot must become an event, or one made between that fetch and a later
        # snapshot would never reach the page.
        wake = self._feed.next_change()
        seen = await self._statuses()
        self._open[key] += 1
        return _CountedStream(
            self._events(request, key, wake, seen),
            release=partial(self._release, key),
            ping=PING_SECONDS,
            headers={"content-security-policy": SCRIPTED_CSP},
        )

    def _release(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def _session_key(self, request: Request) -> str:
        return sha256_hex(request.cookies.get(self._sessions.cookie_name, ""))

    async def _statuses(self) -> dict[str, str]:
        """The shared snapshot at the feed's current version (one read for every stream that asks meanwhile)."""

        async def load() -> dict[str, str]:
            actions = await self._service.list_actions(ALL_STATUSES, limit=_SNAPSHOT_LIMIT)
            return {action.id: action.status for action in actions}

        return await self._snapshots.get_or_load(self._feed.version, load)

    async def _still_signed_in(self, request: Request, key: str) -> bool:
        async def load() -> bool:
            return await self._sessions.current(request) is not None

        return await self._signed_in.get_or_load(key, load)

    async def _events(
        self, request: Request, key: str, wake: anyio.Event, seen: dict[str, str]
    ) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=int(POLL_SECONDS * 1000))
        deadline = anyio.current_time() + STREAM_SECONDS
        while anyio.current_time() < deadline:
            with anyio.move_on_after(POLL_SECONDS):
                await wake.wait()
            wake = self._feed.next_change()
            if not await self._still_signed_in(request, key):
                yield ServerSentEvent("{}", event="signed-out")
                return
            now_seen = await self._statuses()
            for action_id, status in now_seen.items():
                if seen.get(action_id) != status:
                    yield ServerSentEvent(json.dumps({"id": action_id, "status": status}), event="action")
            seen = now_seen


class _CountedStream(EventSourceResponse):
    """An event stream that gives its session's slot back however it ends (done, disconnected, cancelled)."""

    def __init__(self, content: AsyncIterator[ServerSentEvent], *, release: Callable[[], None], **options: Any) -> None:
        super().__init__(content, **options)  # pyright: ignore[reportUnknownMemberType]
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
