"""The process-wide feed of approval transitions: whoever watches actions without waiting on a particular one
(the approval inbox's event streams, tests) follows it. Changes made by other processes are not in the feed:
watchers that need them also read the database, through one snapshot they all share (`version` names the
feed's state it was read after; `mcp_hub.web.approvals.events`), never one poller each. With a shared bus
(`mcp_hub.fanout`) another process's change bumps the version too (`changed_elsewhere`), so the pages see it at
once; their slow re-read stays as the safety net for a lost message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import structlog

from mcp_hub.db.approvals import ActionRecord

logger = structlog.get_logger(__name__)

ActionListener = Callable[[ActionRecord], Awaitable[None]]


class ActionFeed:
    """An `ApprovalService` listener. `next_change()` is an event the next transition in this process sets;
    `subscribe` calls a listener with every transition until it unsubscribes."""

    def __init__(self) -> None:
        self._event: anyio.Event | None = None
        self._subscribers: list[ActionListener] = []
        self.version = 0
        """How many transitions this process has published: a snapshot read at one version is stale at the next."""

    def next_change(self) -> anyio.Event:
        if self._event is None:
            self._event = anyio.Event()
        return self._event

    def subscribe(self, listener: ActionListener) -> Callable[[], None]:
        """Follow every transition from now on; returns the function that stops following."""
        self._subscribers.append(listener)
        return lambda: self._subscribers.remove(listener)

    async def changed_elsewhere(self, message: Mapping[str, Any]) -> None:
        """A bus handler: another replica (or the `mcp-hub` command) changed an action. Watchers wake and read the
        database (the snapshot at the new version); the subscribers, who want this process's records, are not
        called."""
        del message
        self.version += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()

    async def publish(self, action: ActionRecord) -> None:
        self.version += 1
        event, self._event = self._event, None
        if event is not None:
            event.set()
        for listener in list(self._subscribers):
            await listener(action)
