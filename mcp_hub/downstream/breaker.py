"""A circuit breaker per connector (threat T25): a downstream that keeps failing is given a rest, not more calls.

`closed`: calls go through; `breaker_failures` consecutive failures (a timeout, a lost connection, an oversized or
unreadable answer: not the downstream's JSON-RPC error, which is an answer) open it. `open`: every call fails at once
with an error that says when the next attempt is due. After `breaker_cooldown_seconds` it is `half_open`: exactly
one call goes through as a probe (the others still fail at once); its success closes the breaker, its failure opens
it again for another cooldown. A probe that ends without a verdict (its caller went away) lets the next call probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the breaker refused a call, in words for the caller."""

    reason: str


class CircuitBreaker:
    """One connector's breaker; `admit` before a call, then exactly one of `succeeded`, `failed`, `abandoned`."""

    def __init__(self, failures: int, cooldown_seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown_seconds
        self._clock = clock
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() >= self._opened_at + self._cooldown:
            return "half_open"
        return self._state

    def admit(self) -> Refusal | None:
        """None when the call may go (as the probe, when half-open), else why not."""
        state = self.state
        if state == "open":
            wait = self._opened_at + self._cooldown - self._clock()
            return Refusal(
                f"circuit breaker open after {self._failures} consecutive failures; next attempt in {wait:.1f} s"
            )
        if state == "half_open":
            if self._probing:
                return Refusal("circuit breaker half-open: a probe call is testing the connector")
            self._state, self._probing = "half_open", True
        return None

    def succeeded(self) -> None:
        self._state, self._failures, self._probing = "closed", 0, False

    def failed(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            if self._state != "open":
                self.times_opened += 1
            self._state, self._opened_at, self._probing = "open", self._clock(), False

    def abandoned(self) -> None:
        """The call ended without telling whether the connector works (its caller cancelled it)."""
        self._probing = False

    def report(self) -> dict[str, Any]:
        """The breaker as `/healthz` shows it."""
        state = self.state
        report: dict[str, Any] = {"state": state, "consecutive_failures": self._failures, "opened": self.times_opened}
        if state == "open":
            report["retry_in_seconds"] = round(self._opened_at + self._cooldown - self._clock(), 1)
        return report
