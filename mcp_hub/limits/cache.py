"""Caching and coalescing of the `tools/call` results an admin marks cacheable (issue 10 §4, §7).

`[[cache.rules]]` name tools (public-name globs) and/or connectors, with a TTL. For such a tool:
- **The key** is the public tool name, the tool's definition hash (a changed tool is another tool), the SHA-256
  of the arguments' RFC 8785 JSON and the authorization context: the principal, agent id and user id. No result
  crosses agents, nor users of one agent (threat T27). Sharing wider (say, by agent only) would be a choice per
  rule; none is offered until a need is shown.
- **Cached** is only a complete result without `isError`, at most `max_result_bytes` of JSON: never an error
  result, a JSON-RPC error, an `input_required` or a call that carries answers (`requestState`).
- **Coalesced**: identical calls in flight together make one downstream call. In this process the first runs
  and the others wait for it (at most `coalesce_wait_seconds`, then they run themselves): they get its result,
  error results and JSON-RPC errors included (the answer to the same question at the same moment), but nothing
  is cached from an error. If the first is cancelled or its answer cannot be shared (`input_required`), the
  waiting calls try again: one of them runs.
- **Shared by replicas** with `[limits] redis_url`: the result is a key with `SET PX` (the TTL), and the call
  runs under a lease (`SET NX PX`, released by compare-and-delete); a replica that finds the lease taken polls
  for the result, backing off from 10 to 200 ms, until it appears, the lease goes (then it claims it, and runs),
  or `coalesce_wait_seconds` pass (then it runs anyway). Errors are not shared across replicas: a replica whose
  wait ends without a result runs the call itself. Redis being unreachable makes the cache a miss and the call
  runs (the cache fails open: it only ever saves work); `/healthz` says so.
Without `redis_url`, results live in this process, bounded by `max_entries` and `max_bytes` (oldest first).

Callers reach a cached result only after grants and limits (`mcp_hub.gateway.tools`); a tool any approval rule
could hold is never cached.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, cast

import anyio
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_hub.authz.scopes import matches
from mcp_hub.config.settings import CacheSection

logger = structlog.get_logger(__name__)

_POLL_FIRST_SECONDS: Final = 0.01
_POLL_MAX_SECONDS: Final = 0.2
_RELEASE_SECONDS: Final = 1.0


class Served(StrEnum):
    """How a call through the cache was answered."""

    RAN = "ran"
    """It went downstream (the forwarder audited it)."""
    CACHED = "cached"
    COALESCED = "coalesced"
    """It waited for an identical call in flight and got its answer."""


@dataclass(frozen=True, slots=True)
class Answer:
    result: dict[str, Any]
    served: Served


class ResultStore(Protocol):
    """Where cached results and leases live: this process, or Redis shared by every replica."""

    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None: ...

    async def claim(self, key: str, lease_seconds: float) -> str | None:
        """A token when this process may run the call now; None while another replica holds the lease."""
        ...

    async def release(self, key: str, token: str) -> None: ...

    async def aclose(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


class MemoryResults:
    """Results of this process only: bounded in entries and bytes, oldest first out. Coalescing within the
    process is `CallCache`'s, so every claim succeeds."""

    def __init__(self, max_entries: int, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> tuple[int, int]:
        """Entries and bytes held now."""
        return len(self._entries), self._bytes

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(key)
            return None
        return entry[1]

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        if len(value) > self._max_bytes:
            return
        self._drop(key)
        self._entries[key] = (self._clock() + ttl_seconds, value)
        self._bytes += len(value)
        if len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            now = self._clock()
            for stale in [k for k, (expires, _) in self._entries.items() if expires <= now]:
                self._drop(stale)
        while len(self._entries) > self._max_entries or self._bytes > self._max_bytes:
            self._drop(next(iter(self._entries)))

    async def claim(self, key: str, lease_seconds: float) -> str | None:
        return "local"

    async def release(self, key: str, token: str) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def health(self) -> dict[str, Any]:
        return {"backend": "memory", "ok": True, "entries": len(self._entries), "bytes": self._bytes}

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[1])


# KEYS[1]: the lease; ARGV[1]: the holder's token. Deletes the lease only if it is still that holder's.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisResults:
    """Results and leases in Redis, shared by every replica; unreachable, it is a miss (fail open)."""

    def __init__(self, url: str, *, prefix: str = "mcp-hub:cache:", timeout_seconds: float = 0.5) -> None:
        self._redis: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._release = self._redis.register_script(_RELEASE)  # pyright: ignore[reportUnknownMemberType]
        self._prefix = prefix
        self._ok = True
        self._last_error: str | None = None

    async def get(self, key: str) -> bytes | None:
        try:
            value = cast("bytes | None", await self._redis.get(self._prefix + "r:" + key))
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return None
        self._ok, self._last_error = True, None
        return value

    async def put(self, key: str, value: bytes, ttl_seconds: float) -> None:
        try:
            await self._redis.set(self._prefix + "r:" + key, value, px=max(1, round(ttl_seconds * 1000)))
        except (RedisError, OSError) as exc:
            self._failed(exc)

    async def claim(self, key: str, lease_seconds: float) -> str | None:
        token = secrets.token_hex(16)
        try:
            taken = await self._redis.set(
                self._prefix + "l:" + key, token, nx=True, px=max(1, round(lease_seconds * 1000))
            )
        except (RedisError, OSError) as exc:
            self._failed(exc)
            return token  # no lease to be had: run, uncoalesced across replicas
        return token if taken else None

    async def release(self, key: str, token: str) -> None:
        try:
            await self._release(keys=[self._prefix + "l:" + key], args=[token])
        except (RedisError, OSError) as exc:
            self._failed(exc)  # the lease lapses by itself

    async def aclose(self) -> None:
        await self._redis.aclose()

    def health(self) -> dict[str, Any]:
        state: dict[str, Any] = {"backend": "redis", "ok": self._ok}
        if not self._ok:
            state["detail"] = self._last_error
        return state

    def _failed(self, exc: Exception) -> None:
        if self._ok:
            logger.warning("cache backend unreachable", error=type(exc).__name__)
        self._ok, self._last_error = False, f"{type(exc).__name__}: redis unreachable"


def store_for(settings: CacheSection, redis_url: str) -> ResultStore:
    """Redis when `[limits] redis_url` is set (shared by every replica), else this process's memory."""
    if redis_url:
        return RedisResults(redis_url)
    return MemoryResults(settings.max_entries, settings.max_bytes)


def cache_key(public_name: str, definition_sha256: str, arguments_digest: str, principal: str) -> str:
    """One key per tool (and definition), arguments and authorization context."""
    parts = json.dumps([public_name, definition_sha256, arguments_digest, principal]).encode()
    return hashlib.sha256(parts).hexdigest()


def cacheable(result: Mapping[str, Any]) -> bool:
    """A complete result without `isError` and without a state to answer: the only kind ever stored."""
    return (
        result.get("resultType", "complete") == "complete"
        and not result.get("isError")
        and "requestState" not in result
        and "inputRequests" not in result
    )


def _shareable(result: Mapping[str, Any]) -> bool:
    """Can calls that waited for this one be given its result? A tool error yes, a question no."""
    return result.get("resultType", "complete") == "complete" and "requestState" not in result


class _Flight:
    """One call running in this process, awaited by identical calls that came meanwhile."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.result: dict[str, Any] | None = None
        self.error: Exception | None = None


class CallCache:
    """The cache rules, the store, and the calls in flight in this process."""

    def __init__(
        self, settings: CacheSection, store: ResultStore, *, on_served: Callable[[Served], None] | None = None
    ) -> None:
        """`on_served`: told how each call was answered (the metrics' hits and misses)."""
        self._on_served = on_served
        self._settings = settings
        self.store = store
        self._flights: dict[str, _Flight] = {}

    def ttl_for(self, connector_id: str, public_name: str) -> float | None:
        """The TTL of the first rule naming this tool, or None when it is not cacheable."""
        for rule in self._settings.rules:
            if rule.connectors and connector_id not in rule.connectors:
                continue
            if rule.tools and not any(matches(f"tool:{glob}", "tool", public_name) for glob in rule.tools):
                continue
            return rule.ttl_seconds
        return None

    async def call(
        self,
        key: str,
        ttl_seconds: float,
        run: Callable[[], Awaitable[dict[str, Any]]],
        *,
        personal: Callable[[], bool] = lambda: False,
    ) -> Answer:
        """The cached result, the result of the identical call in flight, or `run()`'s (cached if it may be).

        `personal()` true after `run()`: the result depends on this caller (the downstream asked them something
        mid-call), so it is neither cached nor given to the calls that waited (they try again)."""
        answer = await self._answer(key, ttl_seconds, run, personal)
        if self._on_served is not None:
            self._on_served(answer.served)
        return answer

    async def _answer(
        self,
        key: str,
        ttl_seconds: float,
        run: Callable[[], Awaitable[dict[str, Any]]],
        personal: Callable[[], bool],
    ) -> Answer:
        deadline = anyio.current_time() + self._settings.coalesce_wait_seconds
        while True:
            flight = self._flights.get(key)
            if flight is None:
                break
            with anyio.move_on_after(max(0.0, deadline - anyio.current_time())):
                await flight.done.wait()
            if not flight.done.is_set():
                return Answer(await run(), Served.RAN)  # waited long enough: run, uncoalesced
            if flight.error is not None:
                raise flight.error
            if flight.result is not None:
                return Answer(_copy(flight.result), Served.COALESCED)
            # The one we waited for was cancelled, or asked a question: try again (one of us runs).
        mine = _Flight()
        self._flights[key] = mine
        try:
            answer = await self._lead(key, ttl_seconds, run, deadline, personal)
        except Exception as exc:
            mine.error = exc
            raise
        else:
            if _shareable(answer.result) and not (answer.served is Served.RAN and personal()):
                mine.result = _copy(answer.result)
            return answer
        finally:
            if self._flights.get(key) is mine:
                del self._flights[key]
            mine.done.set()

    async def _lead(
        self,
        key: str,
        ttl_seconds: float,
        run: Callable[[], Awaitable[dict[str, Any]]],
        deadline: float,
        personal: Callable[[], bool],
    ) -> Answer:
        """This process's one call for `key`: from the store, after another replica's run, or run here."""
        pause = _POLL_FIRST_SECONDS
        while True:
            found = await self.store.get(key)
            if found is not None:
                decoded = _decode(found)
                if decoded is not None:
                    return Answer(decoded, Served.CACHED)
            token = await self.store.claim(key, self._settings.coalesce_wait_seconds)
            if token is not None:
                return Answer(await self._run_claimed(key, token, ttl_seconds, run, personal), Served.RAN)
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return Answer(await run(), Served.RAN)  # another replica's run is taking too long
            await anyio.sleep(min(pause, remaining))
            pause = min(pause * 2, _POLL_MAX_SECONDS)

    async def _run_claimed(
        self,
        key: str,
        token: str,
        ttl_seconds: float,
        run: Callable[[], Awaitable[dict[str, Any]]],
        personal: Callable[[], bool],
    ) -> dict[str, Any]:
        try:
            result = await run()
            if cacheable(result) and not personal():
                encoded = _encode(result)
                if encoded is not None and len(encoded) <= self._settings.max_result_bytes:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_SECONDS):
                        await self.store.put(key, encoded, ttl_seconds)
            return result
        finally:
            # Shielded and bounded: a cancelled leader frees the lease for the others at once.
            with anyio.CancelScope(shield=True), anyio.move_on_after(_RELEASE_SECONDS):
                await self.store.release(key, token)


def _encode(result: Mapping[str, Any]) -> bytes | None:
    try:
        return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError):
        return None


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        decoded: object = json.loads(value)
    except ValueError:
        return None
    return cast("dict[str, Any]", decoded) if isinstance(decoded, dict) else None


def _copy(result: dict[str, Any]) -> dict[str, Any]:
    """A result of its own for each caller (what answers one request may be changed on its way out)."""
    encoded = _encode(result)
    decoded = _decode(encoded) if encoded is not None else None
    return decoded if decoded is not None else dict(result)
