"""Why an action was held: what held it, recorded when it was held, against the rules as they read now (issue 13
§3; threat T31).

The approval rules are configuration: an admin may edit `config.toml` and restart, or a connector's
`sensitive_tools` may change with a live reload, while calls wait. Explained by the rules as they read when the
approver looks, a held call would name rules that did not hold it, or none. So when a call is held, its
`Requirement`'s matches (each holding rule with the parts of it that matched, a connector's `sensitive_tools` entry
included) are stored with the action (`approval_actions.hold_reasons`, migration 0013) as bounded JSON: at most
`MAX_RULES` rules (the action's `rules` names them all), `MAX_PARTS` parts each, `MAX_PART_CHARS` characters a
part, a cut marked. The pages show that record and, beside it, how the rules as they read now differ: a rule that
no longer holds the call, one that holds it for other reasons, one that holds it now; or that none would. An action
stored before 0013 has no record: it is explained by the rules as they read now, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast

from mcp_hub.approvals.policy import RuleMatch

MAX_RULES: Final = 16
MAX_PARTS: Final = 10
MAX_PART_CHARS: Final = 240
"""Bounds of the record (the largest is about 40 KB of JSON; a real one is a few hundred bytes)."""
CHANGED: Final = "The rules have changed since this call was held"


@dataclass(frozen=True, slots=True)
class HoldReasons:
    """Why an action was held, and whether the rules as they read now would hold it the same way."""

    held: tuple[RuleMatch, ...]
    """What held it, as recorded then; for an action stored before the record existed, the rules as they read now."""
    recorded: bool
    """False for an action stored before the record existed: `held` is then the rules as they read now."""
    now: tuple[RuleMatch, ...]
    """What would hold the same call as the rules read now (bounded like the record, so like is compared with like)."""
    changed: bool
    """The rules as they read now would not hold the call the way the record says (never for an unrecorded one)."""
    changes: tuple[str, ...]
    """When changed and some rule still holds the call: each rule's part in it now, one sentence a rule."""

    @property
    def note(self) -> str:
        """Where `held` comes from, in a sentence."""
        if self.recorded:
            return "Recorded when the call was held."
        if self.held:
            return (
                "As the rules read now: this action was held before the hub recorded why, so these may not be the "
                "rules that held it."
            )
        return "This action was held before the hub recorded why, and as the rules read now none would hold it."

    @property
    def summary(self) -> str | None:
        """None while the rules hold the call as recorded; otherwise that they have changed, and how in brief."""
        if not self.changed:
            return None
        if not self.now:
            return f"{CHANGED}: as they read now, none would hold it."
        return f"{CHANGED}. As they read now:"


def bounded(matches: Sequence[RuleMatch]) -> tuple[RuleMatch, ...]:
    """`matches` cut to the record's bounds: the first `MAX_RULES`, each with at most `MAX_PARTS` parts of at most
    `MAX_PART_CHARS` characters (a cut part ends in "…"; cut parts are counted in the last one)."""
    kept: list[RuleMatch] = []
    for match in matches[:MAX_RULES]:
        parts = [_cut(part) for part in match.because]
        if len(parts) > MAX_PARTS:
            left = len(parts) - MAX_PARTS + 1
            parts = [*parts[: MAX_PARTS - 1], f"and {left} more parts of the rule matched"]
        kept.append(RuleMatch(_cut(match.rule), tuple(parts)))
    return tuple(kept)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_PART_CHARS else text[: MAX_PART_CHARS - 1] + "…"


def record_of(matches: Sequence[RuleMatch]) -> list[dict[str, Any]]:
    """What is stored with a held action: `matches_json` of the matches, bounded."""
    return matches_json(bounded(matches))


def matches_json(matches: Sequence[RuleMatch]) -> list[dict[str, Any]]:
    """`[{"rule": name, "because": [part, ...]}, ...]`: the stored record's shape and the API's."""
    return [{"rule": match.rule, "because": list(match.because)} for match in matches]


def read_record(value: object) -> tuple[RuleMatch, ...] | None:
    """The matches a stored record holds; None for an action stored before records (or a record not of this shape)."""
    if not isinstance(value, list):
        return None
    matches: list[RuleMatch] = []
    for item in cast("list[object]", value):
        if not isinstance(item, dict):
            return None
        entry = cast("dict[str, object]", item)
        rule, because = entry.get("rule"), entry.get("because")
        if not isinstance(rule, str) or not isinstance(because, list):
            return None
        parts = cast("list[object]", because)
        matches.append(RuleMatch(rule, tuple(part for part in parts if isinstance(part, str))))
    return tuple(matches)


def hold_reasons(record: tuple[RuleMatch, ...] | None, now: Sequence[RuleMatch]) -> HoldReasons:
    """Why an action was held (`record`, or None when nothing was recorded), against the rules as they read now."""
    current = bounded(now)
    if record is None:
        return HoldReasons(held=current, recorded=False, now=current, changed=False, changes=())
    # Compared rule by rule: the same rules listed in another order hold the call the same way.
    changed = _by_rule(current) != _by_rule(record)
    return HoldReasons(
        held=record,
        recorded=True,
        now=current,
        changed=changed,
        changes=_changes(record, current) if changed and current else (),
    )


def _by_rule(matches: tuple[RuleMatch, ...]) -> dict[str, tuple[str, ...]]:
    return {match.rule: match.because for match in matches}


def _changes(record: tuple[RuleMatch, ...], now: tuple[RuleMatch, ...]) -> tuple[str, ...]:
    """Each rule's part now: those recorded first, in their order, then those that hold the call only now."""
    current = {match.rule: match for match in now}
    recorded_names = {match.rule for match in record}
    told: list[str] = []
    for match in record:
        still = current.get(match.rule)
        if still is None:
            told.append(f"rule `{match.rule}` no longer holds it")
        elif still.because == match.because:
            told.append(f"rule `{match.rule}` still holds it, for the same reasons")
        else:
            told.append(f"rule `{match.rule}` holds it for other reasons: {'; '.join(still.because)}")
    told.extend(
        f"rule `{match.rule}` holds it now: {'; '.join(match.because)}"
        for match in now
        if match.rule not in recorded_names
    )
    return tuple(told)
