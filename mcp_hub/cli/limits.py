"""`mcp-hub limits show|set|clear AGENT`: the limits that apply to an agent, what it has used, and its own
limits (issue 10 §1, §8). What `set` stores reaches a running hub within `[auth] decision_cache_seconds`."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any, Final

from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import InvalidInputError
from mcp_hub.limits.calls import CallLimits, backend_for
from mcp_hub.runtime import AdminTools

_RATES: Final = ("per_agent", "per_agent_connector", "per_agent_tool")
# The outcomes of calls the limits admitted and that reached (or were meant to reach) a downstream.
_ADMITTED: Final = (
    AuditOutcome.OK,
    AuditOutcome.TOOL_ERROR,
    AuditOutcome.INPUT_REQUIRED,
    AuditOutcome.UNAVAILABLE,
    AuditOutcome.TIMEOUT,
    AuditOutcome.DOWNSTREAM_ERROR,
    AuditOutcome.CANCELLED,
    AuditOutcome.INTERNAL_ERROR,
)


def add_limits_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `limits` on the top-level `commands` sub-parser action."""
    limits = commands.add_parser("limits", parents=[common], help="rate limits, quotas and their use per agent")
    verbs = limits.add_subparsers(dest="limits_command", required=True)
    show = verbs.add_parser("show", parents=[common], help="an agent's limits, quota use and live counters")
    show.add_argument("agent")
    show.add_argument("--json", action="store_true")
    setting = verbs.add_parser("set", parents=[common], help="an agent's own limits (over the configured ones)")
    setting.add_argument("agent")
    for name in _RATES:
        setting.add_argument(f"--{name.replace('_', '-')}", metavar="RATE/BURST", help="calls per second / burst")
    setting.add_argument("--daily-calls", type=int, metavar="N", help="per UTC day (0: no quota)")
    setting.add_argument("--monthly-calls", type=int, metavar="N")
    verbs.add_parser("clear", parents=[common], help="drop an agent's own limits").add_argument("agent")


async def run_limits(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    agent = await tools.stores.identities.agent_by_name(args.agent)
    if args.limits_command == "set":
        own = await tools.limits.set(tools.actor, agent.name, _changes(args))
        print(f"{agent.name}: own limits {json.dumps(own, sort_keys=True)}")
        return 0
    if args.limits_command == "clear":
        cleared = await tools.limits.clear(tools.actor, agent.name)
        print(f"{agent.name}: {'own limits dropped' if cleared else 'had no own limits'}")
        return 0
    settings = tools.settings.limits
    backend = backend_for(settings)
    try:
        limits = CallLimits(settings, backend, lambda _name: None, own_limits=tools.stores.limits.agent_limits)
        override = await limits.override_of(agent.id, agent.name)
        counters = limits.quota_counters(agent.id, override)
        live = await backend.counts([counter.key for counter in counters]) if settings.redis_url else None
        now = datetime.now(UTC)
        day = datetime(now.year, now.month, now.day, tzinfo=UTC)
        month = datetime(now.year, now.month, 1, tzinfo=UTC)
        report: dict[str, Any] = {
            "agent": agent.name,
            "limits": limits.limits_of(agent.name, override),
            "recorded_calls": {
                "today": await tools.stores.audit.count_calls(agent.name, day, _ADMITTED),
                "this_month": await tools.stores.audit.count_calls(agent.name, month, _ADMITTED),
            },
            "backend": "redis" if settings.redis_url else "memory",
        }
        if live is not None:
            report["quota_counters"] = {counter.name: used for counter, used in zip(counters, live, strict=True)}
    finally:
        await backend.aclose()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print(report)
    return 0


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in _RATES:
        value: str | None = getattr(args, name)
        if value is not None:
            rate, slash, burst = value.partition("/")
            try:
                changes[name] = {"rate": float(rate), "burst": int(burst)} if slash else None
            except ValueError:
                changes[name] = None
            if changes[name] is None:
                raise InvalidInputError(f"--{name.replace('_', '-')}: expected RATE/BURST, such as 5/20")
    for name in ("daily_calls", "monthly_calls"):
        count: int | None = getattr(args, name)
        if count is not None:
            changes[name] = count
    if not changes:
        raise InvalidInputError("name at least one limit to set (see mcp-hub limits set --help)")
    return changes


def _print(report: dict[str, Any]) -> None:
    limits: dict[str, Any] = report["limits"]
    print(f"agent: {report['agent']}")
    for name in ("per_agent", "per_agent_connector", "per_agent_tool"):
        bucket = limits[name]
        shown = f"{bucket['rate']:g}/s, burst {bucket['burst']}" if bucket else "none"
        print(f"  {name + ':':<22}{shown}")
    recorded = report["recorded_calls"]
    for name, period in (("daily_calls", "today"), ("monthly_calls", "this_month")):
        quota = limits[name] or "no quota"
        print(f"  {name + ':':<22}{recorded[period]} recorded {period.replace('_', ' ')} (UTC) of {quota}")
    for rule in limits["loops"]:
        repeats, window = rule["max_repeats"], rule["window_seconds"]
        print(f"  loop rule:            {repeats} identical calls per {window} s for {', '.join(rule['tools'])}")
    if "quota_counters" in report:
        counters = ", ".join(f"{name} {used}" for name, used in report["quota_counters"].items()) or "none"
        print(f"  live (redis):         {counters}")
    else:
        print("  live counters:        in the running hub's memory (set [limits] redis_url to share and show them)")
