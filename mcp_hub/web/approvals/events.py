"""`GET /approvals/events`: the inbox's live updates as server-sent events (HTML Living Standard §9.2).

An `action` event, data `{"id": ..., "status": ...}`, whenever an action changes. Changes made by this process
wake the stream at once (`ActionFeed.next_change()`); the store is also polled every `POLL_SECONDS`, so decisions
made by the CLI or another replica appear too. The stream starts with a `retry` hint of `POLL_SECONDS`, sends a
comment as a ping every `PING_SECONDS` (proxies keep it open), sends `signed-out` and ends when the session ends,
and ends after `STREAM_SECONDS` (the browser reconnects) or when the server shuts down (sse-starlette's
`EventSourceResponse` watches for that).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Final

import anyio
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.approvals.feed import ActionFeed
from mcp_hub.approvals.presentation import INBOX_PATH
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.domain import ALL_STATUSES
from mcp_hub.web.pages import SCRIPTED_CSP
from mcp_hub.web.sessions import WebSession, WebSessions

EVENTS_PATH: Final = f"{INBOX_PATH}/events"
POLL_SECONDS: Final = 2.0
"""How often an event stream looks at the database for changes made by other processes."""
STREAM_SECONDS: Final = 300.0
"""An event stream ends after this long and the browser reconnects (a stream is never open for good)."""
PING_SECONDS: Final = 15.0
_SNAPSHOT_LIMIT: Final = 500


class ActionEvents:
    """The event stream's endpoint (behind `mcp_hub.web.access.RequireRole`, like the pages)."""

    def __init__(self, service: ApprovalService, sessions: WebSessions, feed: ActionFeed) -> None:
        self._service = service
        self._sessions = sessions
        self._feed = feed

    async def stream(self, request: Request, viewer: WebSession) -> Response:
        del viewer  # let in by the role check; the stream looks at the session again as it goes
        # Look before the response starts: the browser fetches the list when the stream opens, so every
        # change after this snapshot must become an event, or one made between that fetch and a later
        # snapshot would never reach the page.
        wake = self._feed.next_change()
        seen = await self._statuses()
        return EventSourceResponse(
            self._events(request, wake, seen),
            ping=PING_SECONDS,
            headers={"content-security-policy": SCRIPTED_CSP},
        )

    async def _statuses(self) -> dict[str, str]:
        actions = await self._service.list_actions(ALL_STATUSES, limit=_SNAPSHOT_LIMIT)
        return {action.id: action.status for action in actions}

    async def _events(
        self, request: Request, wake: anyio.Event, seen: dict[str, str]
    ) -> AsyncIterator[ServerSentEvent]:
        yield ServerSentEvent(retry=int(POLL_SECONDS * 1000))
        deadline = anyio.current_time() + STREAM_SECONDS
        while anyio.current_time() < deadline:
            with anyio.move_on_after(POLL_SECONDS):
                await wake.wait()
            wake = self._feed.next_change()
            if await self._sessions.current(request) is None:
                yield ServerSentEvent("{}", event="signed-out")
                return
            now_seen = await self._statuses()
            for action_id, status in now_seen.items():
                if seen.get(action_id) != status:
                    yield ServerSentEvent(json.dumps({"id": action_id, "status": status}), event="action")
            seen = now_seen
