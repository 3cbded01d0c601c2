"""Progress notifications of one forwarded request, coalesced to a bounded rate (issue 10 §2).

A downstream may report progress as fast as it can write (tens of thousands a second); each relayed notification
costs the caller's stream a write and the hub a task switch. At most one notification per `interval` is relayed,
always the newest: one that arrives too soon is held, replaced by any later one, and sent with the next that is due,
or just before the result (`flush`), so the caller always sees the last progress before the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mcp.shared.dispatcher import ProgressFnT


class CoalescedProgress:
    """A progress callback that passes on at most one call per `interval` seconds to `forward`."""

    def __init__(self, forward: ProgressFnT, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._forward = forward
        self._interval = interval
        self._clock = clock
        self._last_sent: float | None = None
        self._held: tuple[float, float | None, str | None] | None = None
        self.received = 0
        self.relayed = 0

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.received += 1
        now = self._clock()
        if self._last_sent is not None and now - self._last_sent < self._interval:
            self._held = (progress, total, message)
            return
        self._held = None
        self._last_sent = now
        self.relayed += 1
        await self._forward(progress, total, message)

    async def flush(self) -> None:
        """Relay the held notification, if any (before the result goes to the caller)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._last_sent = self._clock()
            self.relayed += 1
            await self._forward(*held)
