"""Progress notifications of one forwarded request, coalesced to a bounded rate (issue 10 §2).

A downstream may report progress as fast as it can write (tens of thousands a second); each relayed notification
costs the caller's stream a write and the hub a task switch. A token bucket bounds the rate: the first `BURST`
notifications pass as they come (an ordinary request's few steps are never merged), then one per `interval`,
always the newest: one that arrives too soon is held, replaced by any later one, and sent with the next that is
due, or just before the result (`flush`), so the caller always sees the last progress before the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from mcp.shared.dispatcher import ProgressFnT

BURST = 10


class CoalescedProgress:
    """A progress callback that passes on `BURST` calls at once, then at most one per `interval` seconds."""

    def __init__(self, forward: ProgressFnT, interval: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._forward = forward
        self._interval = interval
        self._clock = clock
        self._tokens = float(BURST)
        self._refilled = clock()
        self._held: tuple[float, float | None, str | None] | None = None
        self.received = 0
        self.relayed = 0

    async def __call__(self, progress: float, total: float | None, message: str | None) -> None:
        self.received += 1
        now = self._clock()
        if self._interval > 0:
            self._tokens = min(float(BURST), self._tokens + (now - self._refilled) / self._interval)
        else:
            self._tokens = float(BURST)
        self._refilled = now
        if self._tokens < 1:
            self._held = (progress, total, message)
            return
        self._tokens -= 1
        self._held = None
        self.relayed += 1
        await self._forward(progress, total, message)

    async def flush(self) -> None:
        """Relay the held notification, if any (before the result goes to the caller)."""
        if self._held is not None:
            held, self._held = self._held, None
            self.relayed += 1
            await self._forward(*held)


async def report_progress(params: Mapping[str, Any], on_progress: ProgressFnT | None) -> None:
    """Pass the params of a downstream's `notifications/progress` (a raw dict) to `on_progress`; a notification
    without a numeric `progress` is dropped, as the SDK's model would refuse it."""
    progress, total, text = params.get("progress"), params.get("total"), params.get("message")
    if on_progress is None or not isinstance(progress, int | float) or isinstance(progress, bool):
        return
    await on_progress(
        float(progress),
        float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None,
        text if isinstance(text, str) else None,
    )
