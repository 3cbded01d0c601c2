"""Which `tools/call` may run now: token buckets, quotas and loop breaking, keyed on the agent (issue 10 §1, §3).

Per call of an authenticated agent, in one all-or-nothing step of the backend (`mcp_hub.limits.backends`):
- buckets per agent, per agent and connector and per agent and tool (`[limits]`, overridden per agent by
  `[[limits.agents]]`, and those by what `mcp-hub limits set` stored, read through a cache of
  `decision_cache_seconds`): a burst is admitted, then calls at the sustained rate;
- quotas per agent and UTC day or month (`daily_calls`, `monthly_calls`; 0: none);
- loop breaking: the same agent making the same call (public tool name and the SHA-256 of its arguments' JSON
  with sorted keys) more than `max_repeats` times in a window of `window_seconds` (the first `[[limits.loops]]`
  rule whose glob matches the tool).
A refusal says which limit refused and when to retry. Without auth there is no identity to key on: nothing is
limited (auth off is for a loopback hub only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from mcp_hub.authz.scopes import matches
from mcp_hub.config.settings import AgentLimits, LimitsSection, LoopRule, Rate
from mcp_hub.domain import AgentId, AuditOutcome, Clock, utc_now
from mcp_hub.limits.backends import BucketSpec, CounterSpec, LimitBackend, MemoryLimits, RedisLimits, Verdict
from mcp_hub.ttl_cache import TtlCache

LIMIT_META_KEY: Final = "io.github.mcp-hub/limit"
"""`_meta` key of a refused call's tool error: which limit, and `retryAfterSeconds`."""

_OUTCOMES: Final = {
    "daily_calls": AuditOutcome.QUOTA_EXCEEDED,
    "monthly_calls": AuditOutcome.QUOTA_EXCEEDED,
    "loop": AuditOutcome.LOOP_STOPPED,
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a call may not run now, and when it may."""

    limit: str
    retry_after_seconds: float
    message: str

    @property
    def outcome(self) -> AuditOutcome:
        return _OUTCOMES.get(self.limit.split(" ", 1)[0], AuditOutcome.RATE_LIMITED)

    def meta(self) -> dict[str, Any]:
        return {"limit": self.limit, "retryAfterSeconds": round(self.retry_after_seconds, 3)}


def backend_for(settings: LimitsSection) -> LimitBackend:
    """Redis when `redis_url` is set (shared by every replica), else this process's memory."""
    return RedisLimits(settings.redis_url, prefix=settings.redis_key_prefix) if settings.redis_url else MemoryLimits()


_MAX_REMEMBERED: Final = 4096
"""Bound of the per-tool and per-agent tables below (cleared when full: they are caches of pure functions)."""
_NO_LOOP_RULE: Final = LoopRule(max_repeats=1_000_000)


def arguments_digest(arguments: Mapping[str, Any] | None) -> str:
    """SHA-256 of the arguments' JSON with sorted keys (every replica writes the same bytes for the same value).

    Not RFC 8785 (its pure-Python encoder cost a tenth of the hub's time per call): a digest here only tells
    repeated calls apart (loop breaking, the call cache), and `1` and `1.0` counted as different arguments
    cost nothing but a cache miss."""
    try:
        canonical = orjson.dumps(arguments or {}, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        # Not JSON as orjson knows it (an integer beyond 64 bits, a key that is not a string): repr is stable too.
        canonical = repr(sorted((str(key), repr(value)) for key, value in (arguments or {}).items())).encode()
    return hashlib.sha256(canonical).hexdigest()


class CallLimits:
    """The one decision "may this agent's call run now", charged when it may (both front ends ask it)."""

    def __init__(
        self,
        settings: LimitsSection,
        backend: LimitBackend,
        connector_of: Callable[[str], str | None],
        *,
        own_limits: Callable[[AgentId], Awaitable[dict[str, Any] | None]] | None = None,
        own_limits_ttl_seconds: float = 2.0,
        clock: Clock = utc_now,
    ) -> None:
        self._own_limits = own_limits
        # Boxed: `TtlCache` takes None for a miss, and most agents have no limits of their own.
        self._own_cache: TtlCache[tuple[AgentLimits | None]] = TtlCache(own_limits_ttl_seconds)
        self._settings = settings
        self.backend = backend
        self._connector_of = connector_of
        self._clock = clock
        self._per_agent = {override.agent: override for override in settings.agents}
        # Pure functions of the settings, remembered: the hot path asks them on every call.
        self._loop_rules: dict[str, LoopRule] = {}
        self._bucket_specs: dict[tuple[str, str], tuple[AgentLimits | None, list[BucketSpec]]] = {}

    async def check(
        self, agent_id: str, agent_name: str, public_name: str, arguments: Mapping[str, Any] | None
    ) -> Refusal | None:
        """None (and the call counted) when it may run now; else why not."""
        override = await self.override_of(AgentId(agent_id), agent_name)
        buckets = self._buckets(agent_id, public_name, override)
        counters = [*self.quota_counters(agent_id, override), self._loop_counter(agent_id, public_name, arguments)]
        verdict = await self.backend.admit(buckets, counters)
        return None if verdict.allowed else self._refusal(verdict, agent_name, public_name)

    async def override_of(self, agent_id: AgentId, agent_name: str) -> AgentLimits | None:
        """The agent's own limits: `[[limits.agents]]`, and over those what `mcp-hub limits set` stored."""
        configured = self._per_agent.get(agent_name)
        if self._own_limits is None:
            return configured
        lookup = self._own_limits

        async def load() -> tuple[AgentLimits | None]:
            stored = await lookup(agent_id)
            if stored is None:
                return (configured,)
            base = configured.model_dump(exclude_none=True) if configured is not None else {}
            return (AgentLimits.model_validate({**base, **stored, "agent": agent_name}),)

        (override,) = await self._own_cache.get_or_load(agent_id, load)
        return override

    def quota_counters(self, agent_id: str, override: AgentLimits | None = None) -> list[CounterSpec]:
        """The agent's quota counters of the current day and month (those with a limit)."""
        daily = _pick(override.daily_calls if override else None, self._settings.daily_calls)
        monthly = _pick(override.monthly_calls if override else None, self._settings.monthly_calls)
        if not daily and not monthly:
            return []
        now = self._clock().astimezone(UTC)
        closed = self._settings.quotas_on_backend_failure == "closed"
        tomorrow = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        next_month = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
        counters: list[CounterSpec] = []
        if daily:
            counters.append(
                CounterSpec(
                    f"qd:{agent_id}:{now:%Y-%m-%d}", daily, _seconds_until(now, tomorrow), "daily_calls", closed
                )
            )
        if monthly:
            counters.append(
                CounterSpec(
                    f"qm:{agent_id}:{now:%Y-%m}", monthly, _seconds_until(now, next_month), "monthly_calls", closed
                )
            )
        return counters

    def limits_of(self, agent_name: str, override: AgentLimits | None = None) -> dict[str, Any]:
        """The limits that apply to an agent (for `mcp-hub limits show`)."""
        override = override or self._per_agent.get(agent_name)
        shown: dict[str, Any] = {}
        for name in ("per_agent", "per_agent_connector", "per_agent_tool"):
            rate = self._rate(name, override)
            shown[name] = {"rate": rate.rate, "burst": rate.burst} if rate else None
        shown["daily_calls"] = _pick(override.daily_calls if override else None, self._settings.daily_calls)
        shown["monthly_calls"] = _pick(override.monthly_calls if override else None, self._settings.monthly_calls)
        shown["loops"] = [rule.model_dump() for rule in self._settings.loops]
        return shown

    def _rate(self, name: str, override: AgentLimits | None) -> Rate | None:
        own: Rate | None = getattr(override, name) if override is not None else None
        default: Rate | None = getattr(self._settings, name)
        return own or default

    def _buckets(self, agent_id: str, public_name: str, override: AgentLimits | None) -> list[BucketSpec]:
        # Kept with the override they were made from: a new one (reloaded after `limits set`) makes new specs.
        remembered = (agent_id, public_name)
        known = self._bucket_specs.get(remembered)
        if known is not None and known[0] is override:
            return known[1]
        closed = self._settings.on_backend_failure == "closed"
        connector = self._connector_of(public_name) or "?"
        keys = {
            "per_agent": f"a:{agent_id}",
            "per_agent_connector": f"ac:{agent_id}:{connector}",
            "per_agent_tool": f"at:{agent_id}:{public_name}",
        }
        buckets: list[BucketSpec] = []
        for name, key in keys.items():
            rate = self._rate(name, override)
            if rate is not None:
                buckets.append(BucketSpec(key, rate.rate, rate.burst, name, closed))
        if len(self._bucket_specs) >= _MAX_REMEMBERED:
            self._bucket_specs.clear()
        self._bucket_specs[remembered] = (override, buckets)
        return buckets

    def _loop_counter(self, agent_id: str, public_name: str, arguments: Mapping[str, Any] | None) -> CounterSpec:
        rule = self._loop_rule(public_name)
        window = int(self._clock().timestamp()) // rule.window_seconds
        digest = arguments_digest(arguments)
        key = f"loop:{agent_id}:{public_name}:{digest}:{rule.window_seconds}:{window}"
        return CounterSpec(key, rule.max_repeats, rule.window_seconds, "loop")

    def _loop_rule(self, public_name: str) -> LoopRule:
        known = self._loop_rules.get(public_name)
        if known is not None:
            return known
        rule = next(
            (
                rule
                for rule in self._settings.loops
                if any(matches(f"tool:{glob}", "tool", public_name) for glob in rule.tools)
            ),
            _NO_LOOP_RULE,
        )
        if len(self._loop_rules) >= _MAX_REMEMBERED:
            self._loop_rules.clear()
        self._loop_rules[public_name] = rule
        return rule

    def _refusal(self, verdict: Verdict, agent_name: str, public_name: str) -> Refusal:
        limit = verdict.refused_by or "limit"
        wait = verdict.retry_after_seconds
        if limit == "loop":
            rule = self._loop_rule(public_name)
            message = (
                f"stopped a loop: agent {agent_name!r} called {public_name} with the same arguments "
                f"{rule.max_repeats} times within {rule.window_seconds} s. Change the arguments, or retry after "
                f"{wait:.0f} s"
            )
        elif limit in ("daily_calls", "monthly_calls"):
            period = "daily" if limit == "daily_calls" else "monthly"
            message = f"agent {agent_name!r} has used its {period} call quota; it resets in {wait:.0f} s"
        else:
            message = f"rate limit {limit} reached for agent {agent_name!r}; retry after {wait:.1f} s"
        return Refusal(limit, wait, message)


def _pick(own: int | None, default: int) -> int:
    return own if own is not None else default


def _seconds_until(now: datetime, then: datetime) -> int:
    return max(1, int((then - now).total_seconds()) + 1)
