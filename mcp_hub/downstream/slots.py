"""`CallSlots`: how many calls one connector runs at once, the rest queued in arrival order (threat T25).

asyncio's semaphore takes a free slot without a trip through the event loop; anyio's `CapacityLimiter` (used
before) yields twice per acquisition even when a slot is free, which every forwarded call paid. The counts are
what `/healthz` shows and what the connection's busy check reads.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class CallSlots:
    """At most `total` calls at once; `running` and `waiting` count them."""

    __slots__ = ("_semaphore", "running", "total", "waiting")

    def __init__(self, total: int) -> None:
        self.total = total
        self.running = 0
        self.waiting = 0
        self._semaphore = asyncio.Semaphore(total)

    @property
    def full(self) -> bool:
        return self.running >= self.total

    async def __aenter__(self) -> None:
        if self._semaphore.locked():
            self.waiting += 1
            try:
                await self._semaphore.acquire()
            finally:
                self.waiting -= 1
        else:
            await self._semaphore.acquire()  # a free slot: returns without yielding
        self.running += 1

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.running -= 1
        self._semaphore.release()
