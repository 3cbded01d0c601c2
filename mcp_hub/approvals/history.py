"""What each caller was admitted to call lately, for approval rules over sequences of calls (`after`; threat T18).

A toxic flow is a sequence: the agent reads untrusted content (a fetched page), then private data (a repository),
then writes to a public sink (a post). No one call of it is wrong; the rule `after = [...]` with `within_seconds`
holds the sink when the caller (agent and user: `Principal.key`) was admitted to call a tool matching each `after`
glob within the window. The trace id a call may carry (W3C Trace Context `traceparent`) is not the key: the caller
chooses it, so a new trace per call would leave no history.

Only tools that some `after` glob matches are recorded (`CallHistory.watches`, remembered per name), when a call is
admitted to run (not held, or held and approved; never a refused one): a call no such glob names pays one dict
look-up. Each caller keeps, per watched tool, when it last called it; the whole is kept as long as the longest
window (`keep_seconds`) after the caller's last watched call.

- `MemoryHistory`: this process (no `[limits] redis_url`), bounded in callers; a caller it had to forget makes the
  history unreadable for the window, never empty.
- `RedisHistory`: one hash per caller in the limits' Redis (`<redis_key_prefix>seq:<agent>/<user>`), timed by the
  server's clock (`TIME` in a Lua script), expiring `keep_seconds` after its last write: shared by every replica.

Fail closed: when the history cannot be read (Redis unreachable, a watched call this replica could not record,
callers forgotten), a rule with `after` holds the call and says why (`policy.Earlier.unavailable`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol, cast

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcp_hub.approvals.policy import Earlier
from mcp_hub.authz.decisions import Principal
from mcp_hub.authz.scopes import matches
from mcp_hub.config.settings import ApprovalRule, LimitsSection
from mcp_hub.errors import CallHistoryUnavailableError

logger = structlog.get_logger(__name__)

MAX_MEMORY_CALLERS: Final = 100_000
_MAX_REMEMBERED_NAMES: Final = 4096


class HistoryBackend(Protocol):
    """Where the callers' recent watched calls are kept."""

    async def record(self, caller: str, tool: str) -> None:
        """`caller` was admitted to call `tool` now."""
        ...

    async def recent(self, caller: str) -> dict[str, float]:
        """Each watched tool `caller` called within `keep_seconds`, with how many seconds ago it last did
        (`CallHistoryUnavailableError` when that cannot be told)."""
        ...

    async def aclose(self) -> None: ...


class MemoryHistory:
    """The history of this process: per caller, per tool, the monotonic time of its last call."""

    def __init__(
        self,
        keep_seconds: int,
        *,
        max_callers: int = MAX_MEMORY_CALLERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keep = float(keep_seconds)
        self._max_callers = max_callers
        self._clock = clock
        self._calls: dict[str, dict[str, float]] = {}
        self._forgot_until = float("-inf")

    async def record(self, caller: str, tool: str) -> None:
        now = self._clock()
        # Re-inserted last, so the dict's order is the order of the callers' latest watched calls.
        calls = self._calls.pop(caller, None) or {}
        calls[tool] = now
        self._calls[caller] = calls
        if len(self._calls) > self._max_callers:
            self._bound(now)

    async def recent(self, caller: str) -> dict[str, float]:
        now = self._clock()
        calls = self._calls.get(caller)
        if calls is None and now < self._forgot_until:
            raise CallHistoryUnavailableError("this hub's in-process history was full and forgot some callers lately")
        return {tool: now - at for tool, at in (calls or {}).items() if now - at <= self._keep}

    async def aclose(self) -> None:
        return None

    def _bound(self, now: float) -> None:
        # Callers are in the order of their latest watched call: the first is the one idle longest. If its
        # window has not passed, forgetting it could hide a sequence, so until then no history reads as empty.
        caller = next(iter(self._calls))
        if max(self._calls.pop(caller).values()) > now - self._keep:
            self._forgot_until = now + self._keep


_RECORD: Final = """
local t = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], t[1] * 1000 + math.floor(t[2] / 1000))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
_RECENT: Final = """
local t = redis.call('TIME')
local found = redis.call('HGETALL', KEYS[1])
table.insert(found, 1, t[1] * 1000 + math.floor(t[2] / 1000))
return found
"""


class RedisHistory:
    """The history shared by every replica, in the limits' Redis."""

    def __init__(self, url: str, keep_seconds: int, *, prefix: str, timeout_seconds: float = 0.5) -> None:
        self._redis: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
            url, socket_timeout=timeout_seconds, socket_connect_timeout=timeout_seconds
        )
        self._record = self._redis.register_script(_RECORD)  # pyright: ignore[reportUnknownMemberType]
        self._recent = self._redis.register_script(_RECENT)  # pyright: ignore[reportUnknownMemberType]
        self._keep_ms = keep_seconds * 1000
        self._prefix = prefix + "seq:"
        self._lost_until = float("-inf")

    async def record(self, caller: str, tool: str) -> None:
        try:
            await self._record(keys=[self._prefix + caller], args=[tool, self._keep_ms])
        except (RedisError, OSError) as exc:
            # The call runs (refusing an untrusted read would not make the sink safer), but this replica holds
            # every sequence rule's sink until the window has passed: what it could not write may matter.
            logger.warning("call history not recorded", error=type(exc).__name__, tool=tool)
            self._lost_until = time.monotonic() + self._keep_ms / 1000

    async def recent(self, caller: str) -> dict[str, float]:
        if time.monotonic() < self._lost_until:
            raise CallHistoryUnavailableError("this replica could not record an earlier call (Redis unreachable)")
        try:
            found = cast("list[Any]", await self._recent(keys=[self._prefix + caller]))
        except (RedisError, OSError) as exc:
            raise CallHistoryUnavailableError(
                f"the call history in Redis is unreachable ({type(exc).__name__})"
            ) from exc
        now_ms = int(found[0])
        pairs = zip(found[1::2], found[2::2], strict=True)
        ago = {_text(tool): (now_ms - int(at)) / 1000 for tool, at in pairs}
        return {tool: seconds for tool, seconds in ago.items() if seconds * 1000 <= self._keep_ms}

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class CallHistory:
    """The tools the rules' `after` globs watch, and each caller's recent calls of them."""

    def __init__(self, rules: Sequence[ApprovalRule], backend: HistoryBackend) -> None:
        self._globs = tuple(dict.fromkeys(glob for rule in rules for glob in rule.after))
        self.backend = backend
        self._watched: dict[str, bool] = {}

    @classmethod
    def for_rules(cls, rules: Sequence[ApprovalRule], limits: LimitsSection) -> CallHistory | None:
        """The history the rules need (in Redis when the limits are), or None when no rule has `after`."""
        keep = keep_seconds(rules)
        if keep == 0:
            return None
        if limits.redis_url:
            return cls(rules, RedisHistory(limits.redis_url, keep, prefix=limits.redis_key_prefix))
        return cls(rules, MemoryHistory(keep))

    def watches(self, public_name: str) -> bool:
        """Does some rule's `after` match this tool (so a call of it is recorded)?"""
        known = self._watched.get(public_name)
        if known is None:
            known = any(matches(f"tool:{glob}", "tool", public_name) for glob in self._globs)
            if len(self._watched) >= _MAX_REMEMBERED_NAMES:
                self._watched.clear()
            self._watched[public_name] = known
        return known

    async def record(self, principal: Principal, public_name: str) -> None:
        """`principal` was admitted to call `public_name`, a watched tool."""
        await self.backend.record(caller_key(principal), public_name)

    async def earlier(self, principal: Principal | None) -> Earlier:
        """The caller's recent watched calls, or why they cannot be told."""
        if principal is None:
            return Earlier({}, "the call has no authenticated agent to keep a history for")
        try:
            return Earlier(await self.backend.recent(caller_key(principal)))
        except CallHistoryUnavailableError as exc:
            return Earlier({}, str(exc))

    async def aclose(self) -> None:
        await self.backend.aclose()


def keep_seconds(rules: Sequence[ApprovalRule]) -> int:
    """How long the history must be kept: the longest `within_seconds` (0: no rule has `after`)."""
    return max((rule.within_seconds or 0 for rule in rules if rule.after), default=0)


def caller_key(principal: Principal) -> str:
    """Whose history: the agent, and the user it acts for (a user-delegated token's calls are that user's)."""
    return f"{principal.agent_id}/{principal.user_id or ''}"
