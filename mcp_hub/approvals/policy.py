"""Which calls need a human's approval (issue 4 §1).

Rules come from `config.toml` (`[[approvals.rules]]`: globs over public tool names, prompt names and resource
URIs, optionally connectors and agents, conditions on arguments, approvers) and from connector files
(`sensitive_tools`, globs over the connector's own tool names, approvers `role:approver`). Every matching rule
applies: the approvers are the union of theirs.
A downstream's tool annotations are never read here: a server's own `readOnlyHint` cannot lower the bar.

A rule with `after` matches a sequence (threat T18: untrusted content, then private data, then a public sink): the
call is held only when each of its `after` globs matches a tool the same caller (agent and user) was admitted to
call within `within_seconds`. Those calls are read from `history.py` by the service and given here as `Earlier`;
when they cannot be read, the rule holds the call (fail closed) and says why.

A match explains itself (issue 13 §3): the `Requirement` of a held request carries, for each rule that holds it,
the parts of it that matched, in words an approver reads ("tool `git__push` matches `git__*`", "argument `amount` =
5000 > 1000"), so the page shows why a call waits, not only the rule's name. The service stores that explanation
with the action when it is held (`reasons.py`): the rules may be edited afterwards, and `explain` then says how they
read now.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.authz.scopes import matches
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import ApprovalCondition, ApprovalRule

SENSITIVE_RULE_PREFIX = "sensitive:"
_MISSING = object()
_MAX_REMEMBERED_SUBJECTS = 100_000
_SHOWN_VALUE_CHARS = 120


@dataclass(frozen=True, slots=True)
class Webhook:
    rule: str
    url: str
    secret_reference: str | None


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that holds a request, and why: each part of the rule that matched, in words."""

    rule: str
    because: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Earlier:
    """What the caller called before this call, for rules with `after`: each watched tool it was admitted to call
    within the longest window, with how many seconds ago it last was; or why that could not be read."""

    calls: Mapping[str, float]
    unavailable: str | None = None


@dataclass(frozen=True, slots=True)
class Requirement:
    """Why a call is held (each holding rule with what of it matched) and who may decide it."""

    matches: tuple[RuleMatch, ...]
    approvers: tuple[str, ...]
    webhooks: tuple[Webhook, ...]

    @property
    def rules(self) -> tuple[str, ...]:
        """The names of the rules that hold the call."""
        return tuple(match.rule for match in self.matches)


def _lookup(arguments: Mapping[str, Any], path: str) -> object:
    current: object = arguments
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return _MISSING
        current = cast("Mapping[str, object]", current).get(part, _MISSING)
    return current


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: object) -> str:
    if value is None or isinstance(value, bool | str):
        return type(value).__name__
    return "number" if _is_number(value) else "structured"


def condition_holds(condition: ApprovalCondition, arguments: Mapping[str, Any]) -> bool:
    """Does one condition hold for these arguments? A missing field satisfies only `!=`.

    A value of another JSON type than the condition expects holds the call: the hub does not validate
    arguments against the tool's schema, and many servers coerce `"true"` to true or `"5000"` to 5000,
    so answering "does not match" to a value the rule cannot judge would let such a call through unheld.
    """
    value = _lookup(arguments, condition.field)
    if condition.op == "exists":
        return value is not _MISSING
    if value is _MISSING:
        return condition.op == "!="
    if condition.op == "matches":
        return not isinstance(value, str) or re.search(str(condition.value), value) is not None
    if condition.op == "==":
        return value == condition.value or _kind(value) != _kind(condition.value)
    if condition.op == "!=":
        return value != condition.value
    if not _is_number(value):
        return True
    number, threshold = float(cast("float", value)), float(cast("float", condition.value))
    return {
        ">": number > threshold,
        ">=": number >= threshold,
        "<": number < threshold,
        "<=": number <= threshold,
    }[condition.op]


def _shown(value: object) -> str:
    """A JSON value as an approver reads it in a sentence: JSON text, cut after `_SHOWN_VALUE_CHARS` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= _SHOWN_VALUE_CHARS else text[:_SHOWN_VALUE_CHARS] + "…"


def describe_condition(condition: ApprovalCondition, arguments: Mapping[str, Any]) -> str:
    """Why `condition` holds for `arguments` (ask only when it does), in words: the argument, its value, the test."""
    field, op = f"argument `{condition.field}`", condition.op
    value = _lookup(arguments, condition.field)
    if op == "exists":
        return f"{field} is present"
    if value is _MISSING:
        return f"{field} is absent, so it is not {_shown(condition.value)}"
    unjudged = f"{field} is {_shown(value)}, which the rule cannot compare with {_shown(condition.value)}: held"
    if op == "matches":
        return f"{field} = {_shown(value)} matches /{condition.value}/" if isinstance(value, str) else unjudged
    if op == "==":
        return f"{field} = {_shown(value)}" if _kind(value) == _kind(condition.value) else unjudged
    if op == "!=":
        return f"{field} = {_shown(value)}, not {_shown(condition.value)}"
    return f"{field} = {_shown(value)} {op} {_shown(condition.value)}" if _is_number(value) else unjudged


class ApprovalPolicy:
    """The rules, ready to answer per call."""

    def __init__(self, rules: Sequence[ApprovalRule], connectors: Sequence[ConnectorSpec]) -> None:
        self._rules = list(rules)
        self._sensitive = {spec.id: list(spec.sensitive_tools) for spec in connectors if spec.sensitive_tools}
        # Per subject (method, public name or URI, connector, downstream name): the rules whose globs and
        # connectors match it and the sensitive rule that does, if any. Those depend on the subject only, so
        # they are matched once.
        self._by_subject: dict[tuple[str, str, str, str], tuple[tuple[ApprovalRule, ...], str | None]] = {}

    def reconfigure(self, connectors: Sequence[ConnectorSpec]) -> None:
        """The connectors changed while the hub runs (live connectors): their `sensitive_tools` apply from now on."""
        self._sensitive = {spec.id: list(spec.sensitive_tools) for spec in connectors if spec.sensitive_tools}
        self._by_subject = {}

    @property
    def is_empty(self) -> bool:
        return not self._rules and not self._sensitive

    def requirement(
        self,
        agent_name: str,
        subject: HeldSubject,
        arguments: Mapping[str, Any],
        earlier: Earlier | None = None,
        *,
        recorded: Sequence[RuleMatch] = (),
    ) -> Requirement | None:
        """None when the request may run now; otherwise the rules that hold it, each with what matched, and who
        may decide.

        `earlier`: the caller's earlier calls, for the rules with `after` (`needs_history`); None holds like an
        unreadable history, unless `recorded` is given: then each such rule is judged by the earlier calls
        recorded when the call was held (`explain`: the history is a fact of that moment, not of the rules)."""
        if not self._rules and not self._sensitive:
            return None
        candidates, sensitive_rule = self._rules_for(subject)
        held: list[RuleMatch] = []
        approvers: list[str] = []
        webhooks: list[Webhook] = []
        for rule in candidates:
            if rule.agents and agent_name not in rule.agents:
                continue
            if not all(condition_holds(condition, arguments) for condition in rule.when):
                continue
            sequence: tuple[str, ...] = ()
            if rule.after:
                found = _sequence_parts(rule, earlier, recorded)
                if found is None:
                    continue
                sequence = found
            held.append(_rule_match(rule, agent_name, subject, arguments, sequence))
            approvers.extend(rule.approvers)
            if rule.webhook_url:
                webhooks.append(Webhook(rule.name, rule.webhook_url, rule.webhook_secret))
        if sensitive_rule is not None:
            glob = next(
                glob
                for glob in self._sensitive.get(subject.connector_id, [])
                if matches(f"tool:{glob}", "tool", subject.downstream_name)
            )
            because = (
                f"connector `{subject.connector_id}` lists `{glob}` in its sensitive_tools, "
                f"which matches its tool `{subject.downstream_name}`"
            )
            held.append(RuleMatch(sensitive_rule, (because,)))
            approvers.append("role:approver")
        if not held:
            return None
        return Requirement(tuple(held), tuple(dict.fromkeys(approvers)), tuple(webhooks))

    def explain(
        self,
        agent_name: str,
        subject: HeldSubject,
        arguments: Mapping[str, Any],
        recorded: Sequence[RuleMatch] = (),
    ) -> tuple[RuleMatch, ...]:
        """The rules that hold this request now, each with what matched (`requirement`'s; none when it may run).
        A rule with `after` is judged by the earlier calls `recorded` when the call was held."""
        requirement = self.requirement(agent_name, subject, arguments, recorded=recorded)
        return requirement.matches if requirement is not None else ()

    def needs_history(self, subject: HeldSubject) -> bool:
        """Does a rule with `after` match this subject (so the caller's earlier calls must be read)?"""
        if not self._rules:
            return False
        candidates, _sensitive = self._rules_for(subject)
        return any(rule.after for rule in candidates)

    def may_hold(self, subject: HeldSubject) -> bool:
        """Could any rule hold a request for this subject, whatever the agent and arguments? (Such a tool's
        results are never cached: issue 10 §4.)"""
        if not self._rules and not self._sensitive:
            return False
        candidates, sensitive_rule = self._rules_for(subject)
        return bool(candidates) or sensitive_rule is not None

    def holds_for(self, agent_name: str, subject: HeldSubject) -> str | None:
        """Without arguments, for an admin's overview (`mcp-hub catalog --agent`): `always` when a rule holds
        every call of `subject` by this agent, `sometimes` when only rules with argument conditions or with `after`
        (earlier calls) do."""
        candidates, sensitive_rule = self._rules_for(subject)
        applicable = [rule for rule in candidates if not rule.agents or agent_name in rule.agents]
        if sensitive_rule is not None or any(not rule.when and not rule.after for rule in applicable):
            return "always"
        return "sometimes" if applicable else None

    def _rules_for(self, subject: HeldSubject) -> tuple[tuple[ApprovalRule, ...], str | None]:
        key = (subject.method, subject.public_name, subject.connector_id, subject.downstream_name)
        found = self._by_subject.get(key)
        if found is None:
            kind = subject.scope_kind
            candidates = tuple(
                rule
                for rule in self._rules
                if any(matches(f"{kind}:{glob}", kind, subject.public_name) for glob in _globs(rule, kind))
                and (not rule.connectors or subject.connector_id in rule.connectors)
            )
            sensitive = kind == "tool" and any(
                matches(f"tool:{glob}", "tool", subject.downstream_name)
                for glob in self._sensitive.get(subject.connector_id, [])
            )
            found = (candidates, f"{SENSITIVE_RULE_PREFIX}{subject.connector_id}" if sensitive else None)
            if len(self._by_subject) >= _MAX_REMEMBERED_SUBJECTS:
                self._by_subject.clear()
            self._by_subject[key] = found
        return found


def _globs(rule: ApprovalRule, kind: str) -> list[str]:
    return {"tool": rule.tools, "prompt": rule.prompts, "resource": rule.resources}[kind]


EARLIER_CALL = "called `"
"""How each earlier call a rule with `after` matched begins, as recorded ("called `fetch__fetch` 3 min ago ...")."""
HISTORY_UNREADABLE = "the calls made before it could not be read"


def _sequence_parts(
    rule: ApprovalRule, earlier: Earlier | None, recorded: Sequence[RuleMatch]
) -> tuple[str, ...] | None:
    """Why the earlier calls make `rule` hold the call (one part per `after` glob), or None when they do not."""
    if earlier is None and recorded:
        return _recorded_sequence(rule, recorded)
    if earlier is None or earlier.unavailable is not None:
        why = earlier.unavailable if earlier is not None else "no history of calls is kept"
        return (f"{HISTORY_UNREADABLE} ({why}): held, as the rule cannot tell whether they match `after`",)
    window = rule.within_seconds or 0
    parts: list[str] = []
    for glob in rule.after:
        seen = [
            (ago, tool)
            for tool, ago in earlier.calls.items()
            if ago <= window and matches(f"tool:{glob}", "tool", tool)
        ]
        if not seen:
            return None
        ago, tool = min(seen)
        parts.append(f"{EARLIER_CALL}{tool}` {ago_text(ago)} ago (matches `{glob}` of `after`, within {window} s)")
    return tuple(parts)


def _recorded_sequence(rule: ApprovalRule, recorded: Sequence[RuleMatch]) -> tuple[str, ...] | None:
    """The earlier calls recorded for `rule` when the call was held, if the rule still names those globs."""
    match = next((match for match in recorded if match.rule == rule.name), None)
    if match is None:
        return None
    parts = tuple(part for part in match.because if part.startswith((EARLIER_CALL, HISTORY_UNREADABLE)))
    if len(parts) == 1 and parts[0].startswith(HISTORY_UNREADABLE):
        return parts
    named = [part.partition("(matches `")[2].partition("` of `after`")[0] for part in parts]
    return parts if named == list(rule.after) else None


def ago_text(seconds: float) -> str:
    """A duration as an approver reads it: "12 s", "3 min", "1 h 5 min"."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min"
    hours, minutes = divmod(whole // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _rule_match(
    rule: ApprovalRule,
    agent_name: str,
    subject: HeldSubject,
    arguments: Mapping[str, Any],
    sequence: tuple[str, ...] = (),
) -> RuleMatch:
    """Why `rule`, which holds this request, holds it: its glob, its agents and connectors, each condition, the
    earlier calls its `after` matched."""
    kind = subject.scope_kind
    glob = next(glob for glob in _globs(rule, kind) if matches(f"{kind}:{glob}", kind, subject.public_name))
    because = [f"{kind} `{subject.public_name}` matches `{glob}`"]
    if rule.connectors:
        because.append(f"connector `{subject.connector_id}` is one of the rule's connectors")
    if rule.agents:
        because.append(f"agent `{agent_name}` is one of the rule's agents")
    because.extend(describe_condition(condition, arguments) for condition in rule.when)
    if not rule.when and not rule.after:
        because.append("the rule holds every such call, whatever the arguments")
    because.extend(sequence)
    return RuleMatch(rule.name, tuple(because))
