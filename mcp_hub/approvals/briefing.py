"""What an approver is told about an action besides the request itself (issue 13 §3; threats T19, T31).

- **Why it waits**: each rule that held it, with the parts that matched (`policy.RuleMatch`), as recorded when it
  was held, and whether the rules as they read now would hold it the same way (`reasons.HoldReasons`).
- **What the tool's server says about it**: the tool's annotations (MCP 2025-11-25, `ToolAnnotations`): the
  server's own claims, "hints" the spec says a client must not trust from an untrusted server. Shown labelled as
  such, with MCP's defaults where the server says nothing (`readOnlyHint` false, `destructiveHint` true,
  `idempotentHint` false, `openWorldHint` true). They never lower the bar: the policy does not read them.
- **Risk cues**: a destructive or open-world tool (claimed, or by default), a connector that lists the tool as
  sensitive, hidden or bidirectional characters in the request, a definition that changed since the request
  (an approval will not run it: `ApprovalService` re-checks the hash).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, cast

from mcp_hub.approvals.policy import SENSITIVE_RULE_PREFIX, RuleMatch
from mcp_hub.approvals.reasons import HoldReasons
from mcp_hub.catalog.review import has_hidden

_HINTS: Final = (
    # (annotation, label, what it claims, MCP's default when the server says nothing)
    ("readOnlyHint", "read-only", "changes nothing", False),
    ("destructiveHint", "destructive", "may delete or overwrite data", True),
    ("idempotentHint", "idempotent", "calling it again with the same arguments does nothing more", False),
    ("openWorldHint", "open world", "reaches systems beyond its own server", True),
)
_RISKY: Final = ("destructive", "open world")


class Definition(StrEnum):
    """The tool's definition now, against the one the request was bound to."""

    SAME = "same"
    CHANGED = "changed"
    GONE = "gone"


@dataclass(frozen=True, slots=True)
class Hint:
    """One annotation: its value, and whether the server stated it (otherwise it is MCP's default)."""

    label: str
    meaning: str
    value: bool
    stated: bool


@dataclass(frozen=True, slots=True)
class Briefing:
    why: HoldReasons
    hints: tuple[Hint, ...]
    """Empty for a prompt or a resource (annotations are the tools')."""
    title: str | None
    """The title the server gives the tool, if any (also a claim of the server)."""
    definition: Definition
    cues: tuple[str, ...]


def hints_of(annotations: Mapping[str, Any] | None) -> tuple[Hint, ...]:
    """The four behaviour hints of a tool's annotations, each stated or defaulted; a non-boolean counts as unstated."""
    given = annotations or {}
    hints: list[Hint] = []
    for key, label, meaning, default in _HINTS:
        value = given.get(key)
        stated = isinstance(value, bool)
        hints.append(Hint(label, meaning, value if isinstance(value, bool) else default, stated))
    return tuple(hints)


def brief(
    why: HoldReasons,
    arguments: Mapping[str, Any],
    tool_definition: Mapping[str, Any] | None,
    definition: Definition,
) -> Briefing:
    """The briefing of a request held as `why` says, for a tool now defined as `tool_definition` (None: a prompt or
    a resource, or no longer offered). The cues speak of the present: a connector that lists the tool as sensitive
    now."""
    annotations = tool_definition.get("annotations") if tool_definition is not None else None
    mapping = cast("Mapping[str, Any]", annotations) if isinstance(annotations, Mapping) else None
    hints = hints_of(mapping) if tool_definition is not None else ()
    title = mapping.get("title") if mapping is not None else None
    if not isinstance(title, str) and tool_definition is not None:
        title = tool_definition.get("title")
    return Briefing(
        why=why,
        hints=hints,
        title=title if isinstance(title, str) and title else None,
        definition=definition,
        cues=_cues(why.now, arguments, hints, definition),
    )


def _cues(
    matches: tuple[RuleMatch, ...], arguments: Mapping[str, Any], hints: tuple[Hint, ...], definition: Definition
) -> tuple[str, ...]:
    cues: list[str] = []
    by_label = {hint.label: hint for hint in hints}
    read_only = "read-only" in by_label and by_label["read-only"].value
    for hint in (by_label[label] for label in _RISKY if label in by_label):
        # destructiveHint means something only when the tool is not read-only (MCP); openWorldHint always does.
        if hint.value and not (read_only and hint.label == "destructive"):
            source = "the server says so" if hint.stated else "the server does not say otherwise"
            cues.append(f"{hint.label} ({hint.meaning}): {source}")
    cues.extend(
        f"sensitive connector: `{match.rule.removeprefix(SENSITIVE_RULE_PREFIX)}` lists this tool in its "
        "sensitive_tools"
        for match in matches
        if match.rule.startswith(SENSITIVE_RULE_PREFIX)
    )
    if has_hidden(json.dumps(dict(arguments), ensure_ascii=False, default=str)):
        cues.append("hidden or bidirectional characters in the arguments (shown written out below)")
    if definition is Definition.CHANGED:
        cues.append("the tool's definition changed after this was asked: an approval will not run it")
    elif definition is Definition.GONE:
        cues.append("its connector no longer offers it: an approval will not run it")
    return tuple(cues)
