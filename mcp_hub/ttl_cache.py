"""A small in-process cache whose entries expire, with single-flight loads.

It keeps hot-path reads (grants, agents, revocations) off the database for a bounded time: every entry expires
after `ttl` seconds of a monotonic clock, so every replica converges within that bound without any shared
invalidation. Bounded in size; a burst of misses for one key shares one load.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

ValueT = TypeVar("ValueT")


class _Load(Generic[ValueT]):
    """One read of the store in flight, shared by every request that misses the same key meanwhile."""

    __slots__ = ("done", "value")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: ValueT | None = None


class TtlCache(Generic[ValueT]):
    """A small map whose entries expire after `ttl` seconds (monotonic clock); bounded by `max_entries`.

    `get_or_load` is single-flight: when an entry expires under load, the requests that miss it together
    share one read of the store instead of each making their own (a stampede of identical queries every
    `ttl` seconds). A load that fails or is cancelled caches nothing; its waiters then load for themselves.
    `drop` and `clear` also detach loads already in flight, so a value read before them is never cached.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[object, tuple[float, ValueT]] = {}
        self._loading: dict[object, _Load[ValueT]] = {}

    def get(self, key: object) -> ValueT | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    async def get_or_load(self, key: object, load: Callable[[], Awaitable[ValueT]]) -> ValueT:
        """The cached value, or the one `load()` returns (shared with concurrent misses, then cached)."""
        while True:
            value = self.get(key)
            if value is not None:
                return value
            pending = self._loading.get(key)
            if pending is None:
                break
            await pending.done.wait()
            if pending.value is not None:
                return pending.value
            # The shared load failed or was detached: try again (fail closed: never a guessed value).
        mine = _Load[ValueT]()
        self._loading[key] = mine
        try:
            value = await load()
            if self._loading.get(key) is mine:  # not detached by drop/clear meanwhile
                self.put(key, value)
                mine.value = value
            return value
        finally:
            if self._loading.get(key) is mine:
                del self._loading[key]
            mine.done.set()

    def put(self, key: object, value: ValueT) -> None:
        if len(self._entries) >= self._max_entries:
            now = self._clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= self._max_entries:
                self._entries.clear()
        self._entries[key] = (self._clock() + self._ttl, value)

    def drop(self, key: object) -> None:
        self._entries.pop(key, None)
        self._loading.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
        self._loading.clear()
