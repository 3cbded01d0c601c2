"""Where limit state lives: in this process, or in Redis shared by every replica (issue 10 §1, §3, §7).

One operation, `admit`: given token buckets and window counters, either every one of them has room (then each
bucket gives a token and each counter counts one) or none changes, and the answer names the limit that refused
and when to retry. All-or-nothing matters: a call refused by its tool's bucket must not spend the agent's token.

- Token buckets (rate per second, burst): refilled continuously from the time of their last use.
- Window counters (a limit per fixed window: a UTC day, a month, a loop window): the key names the window, the
  entry expires with it.

`MemoryLimits` does it in one synchronous step (no await inside: nothing interleaves on the event loop),
bounded in entries. `RedisLimits` does it in one Lua script (atomic on the server, the server's clock for
every replica: no read-modify-write race, no clock skew between replicas).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

logger = structlog.get_logger(__name__)

_MAX_MEMORY_ENTRIES: Final = 200_000


@dataclass(frozen=True, slots=True)
class BucketSpec:
    key: str
    rate: float
    burst: int
    name: str
    """What the caller is told refused it, e.g. `per_agent_tool`."""
    fail_closed: bool = False
    """With the backend unreachable: refuse (True) or let through."""


@dataclass(frozen=True, slots=True)
class CounterSpec:
    key: str
    limit: int
    window_seconds: int
    """How long the counter lives after its first count (the rest of the day, the month, a loop window)."""
    name: str
    fail_closed: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    refused_by: str | None = None
    retry_after_seconds: float = 0.0


ALLOWED: Final = Verdict(True)


class LimitBackend(Protocol):
    """Admits a request against buckets and counters, all or nothing."""

    async def admit(self, buckets: Sequence[BucketSpec], counters: Sequence[CounterSpec]) -> Verdict: ...

    async def counts(self, keys: Sequence[str]) -> list[int]:
        """The current values of window counters (0 for none), for `mcp-hub limits show`."""
        ...

    async def aclose(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


class MemoryLimits:
    """Limits of this process only (no `redis_url`): buckets and counters in a bounded dict."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._counters: dict[str, tuple[int, float]] = {}
        self._next_sweep = 0.0

    async def admit(self, buckets: Sequence[BucketSpec], counters: Sequence[CounterSpec]) -> Verdict:
        now = self._clock()
        levels = [self._level(bucket, now) for bucket in buckets]
        refusal = _worst(
            [
                (bucket.name, (1 - level) / bucket.rate)
                for bucket, level in zip(buckets, levels, strict=True)
                if level < 1
            ]
            + [
                (counter.name, max(0.0, expires - now))
                for counter in counters
                for count, expires in [self._counter(counter, now)]
                if count >= counter.limit
            ]
        )
        if refusal is not None:
            return refusal
        for bucket, level in zip(buckets, levels, strict=True):
            self._buckets[bucket.key] = (level - 1, now)
        for counter in counters:
            count, expires = self._counter(counter, now)
            self._counters[counter.key] = (count + 1, expires)
        self._bound(now)
        return ALLOWED

    async def counts(self, keys: Sequence[str]) -> list[int]:
        now = self._clock()
        return [count if expires > now else 0 for count, expires in (self._counters.get(k, (0, 0.0)) for k in keys)]

    async def aclose(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": True}

    def _level(self, bucket: BucketSpec, now: float) -> float:
        tokens, last = self._buckets.get(bucket.key, (float(bucket.burst), now))
        return min(float(bucket.burst), tokens + max(0.0, now - last) * bucket.rate)

    def _counter(self, counter: CounterSpec, now: float) -> tuple[int, float]:
        count, expires = self._counters.get(counter.key, (0, now + counter.window_seconds))
        if expires <= now:
            return 0, now + counter.window_seconds
        return count, expires

    def _bound(self, now: float) -> None:
        # Over the bound, expired entries are swept at most once a second (a sweep walks every entry: on every
        # call it would make a table full of live entries cost O(n) per call), and the oldest live ones go.
        over = len(self._counters) > _MAX_MEMORY_ENTRIES or len(self._buckets) > _MAX_MEMORY_ENTRIES
        if over and now >= self._next_sweep:
            self._next_sweep = now + 1.0
            self._counters = {key: value for key, value in self._counters.items() if value[1] > now}
            # A bucket idle for long enough to be full again holds nothing worth keeping.
            self._buckets = {key: value for key, value in self._buckets.items() if now - value[1] < 3600}
        for table in (self._counters, self._buckets):
            while len(table) > _MAX_MEMORY_ENTRIES:
                del table[next(iter(table))]


def _worst(refusals: list[tuple[str, float]]) -> Verdict | None:
    if not refusals:
        return None
    name, wait = max(refusals, key=lambda refusal: refusal[1])
    return Verdict(False, name, wait)


# KEYS: the buckets' keys, then the counters' keys. ARGV: number of buckets, then rate and burst per bucket, then
# limit and window per counter. Returns {0} when admitted, else {index (1-based over KEYS), wait in ms}.
_ADMIT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local nb = tonumber(ARGV[1])
local levels = {}
local worst, refused = -1, 0
for b = 1, nb do
  local rate, burst = tonumber(ARGV[2 * b]), tonumber(ARGV[2 * b + 1])
  local state = redis.call('HMGET', KEYS[b], 't', 'ts')
  local tokens, ts = tonumber(state[1]) or burst, tonumber(state[2]) or now
  local level = math.min(burst, tokens + math.max(0, now - ts) * rate)
  levels[b] = level
  if level < 1 then
    local wait = (1 - level) / rate
    if wait > worst then worst, refused = wait, b end
  end
end
local base = 2 * nb + 1
for c = 1, #KEYS - nb do
  local limit, window = tonumber(ARGV[base + 2 * c - 1]), tonumber(ARGV[base + 2 * c])
  local count = tonumber(redis.call('GET', KEYS[nb + c]) or '0')
  if count >= limit then
    local ttl = redis.call('PTTL', KEYS[nb + c])
    local wait = (ttl > 0) and ttl / 1000 or window
    if wait > worst then worst, refused = wait, nb + c end
  end
end
if refused > 0 then return {refused, math.ceil(worst * 1000)} end
for b = 1, nb do
  local rate, burst = tonumber(ARGV[2 * b]), tonumber(ARGV[2 * b + 1])
  redis.call('HSET', KEYS[b], 't', tostring(levels[b] - 1), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[b], math.ceil(burst / rate * 1000) + 1000)
end
for c = 1, #KEYS - nb do
  local window = tonumber(ARGV[base + 2 * c])
  if redis.call('INCR', KEYS[nb + c]) == 1 then redis.call('EXPIRE', KEYS[nb + c], window) end
end
return {0}
"""


class RedisLimits:
    """Limits shared by every replica through one Redis server; a failure answers as configured."""

    def __init__(self, url: str, *, prefix: str = "mcp-hub:limits:", timeout_seconds: float = 0.5) -> None:
        self._redis: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._script = self._redis.register_script(_ADMIT)  # pyright: ignore[reportUnknownMemberType]
        self._prefix = prefix
        self._ok = True
        self._last_error: str | None = None

    async def admit(self, buckets: Sequence[BucketSpec], counters: Sequence[CounterSpec]) -> Verdict:
        keys = [self._prefix + spec.key for spec in (*buckets, *counters)]
        args: list[Any] = [len(buckets)]
        for bucket in buckets:
            args += [repr(float(bucket.rate)), bucket.burst]
        for counter in counters:
            args += [counter.limit, counter.window_seconds]
        try:
            answer = cast("list[int]", await self._script(keys=keys, args=args))
        except (RedisError, OSError) as exc:
            return self._failed(exc, buckets, counters)
        self._ok, self._last_error = True, None
        if answer[0] == 0:
            return ALLOWED
        specs: list[BucketSpec | CounterSpec] = [*buckets, *counters]
        return Verdict(False, specs[int(answer[0]) - 1].name, answer[1] / 1000)

    async def counts(self, keys: Sequence[str]) -> list[int]:
        if not keys:
            return []
        values = cast("list[bytes | None]", await self._redis.mget([self._prefix + key for key in keys]))
        return [int(value) if value is not None else 0 for value in values]

    async def aclose(self) -> None:
        await self._redis.aclose()

    def health(self) -> dict[str, Any]:
        state: dict[str, Any] = {"backend": "redis", "ok": self._ok}
        if not self._ok:
            state["detail"] = self._last_error
        return state

    def _failed(self, exc: Exception, buckets: Sequence[BucketSpec], counters: Sequence[CounterSpec]) -> Verdict:
        if self._ok:
            logger.warning("limits backend unreachable", error=type(exc).__name__)
        self._ok, self._last_error = False, f"{type(exc).__name__}: redis unreachable"
        closed = [spec.name for spec in (*buckets, *counters) if spec.fail_closed]
        if closed:
            return Verdict(False, f"{closed[0]} (limits backend unreachable)", 1.0)
        return ALLOWED


def retry_after_header(seconds: float) -> str:
    """An HTTP `Retry-After` value (RFC 9110 §10.2.3: whole seconds, at least 1)."""
    return str(max(1, math.ceil(seconds)))
