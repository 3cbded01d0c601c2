"""What a downstream definition looks like to a reviewer: hidden characters, text aimed at the model, sizes.

Issue 11 §3, threats T16 (rug pull), T31 (misleading display). Pure functions, no I/O:

- **Hidden and bidirectional characters** (`HIDDEN`): the bidi embeddings and overrides U+202A-U+202E, the bidi
  isolates U+2066-U+2069, the Arabic letter mark U+061C, the zero-width and direction marks U+200B-U+200F, the
  invisible operators U+2060-U+2064, the byte order mark U+FEFF, and the Unicode tags block U+E0000-U+E007F
  (ASCII smuggled invisibly). `escape_hidden` writes each as visible text (`\\u202e`, `\\U000e0041`): agents and
  reviewers never see one raw, and anything containing one is flagged.
- **Instruction-like text** (`INSTRUCTION_PATTERNS`): a short, documented heuristic list of phrases that speak to
  the model rather than describe the tool ("ignore previous instructions", "you must", "do not tell the user",
  `<important>` tags...). A hit is a flag for a human, not a verdict: false positives cost a review, nothing more.
- **Sizes**: a description over `max_description_bytes`, or a schema (a tool's `inputSchema`/`outputSchema`, a
  prompt's `arguments`) over `max_schema_bytes` as JSON, is refused outright (never truncated, never offered).

A flagged definition waits for an admin even from a `trust = "auto"` connector.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

HIDDEN: Final = re.compile("[\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]")
"""Characters a human or a model cannot see, or that reorder what is shown around them."""

INSTRUCTION_PATTERNS: Final = tuple(
    (label, re.compile(pattern, re.IGNORECASE))
    for label, pattern in (
        (
            "ignore previous instructions",
            r"\b(ignore|disregard|forget)\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier|other)\s+(instructions|rules|directions)",
        ),
        ("you must", r"\byou\s+(must|have\s+to|are\s+required\s+to)\b"),
        (
            "do not tell the user",
            r"\b(do\s+not|don'?t|never)\s+(tell|inform|mention|show|reveal)\b[^.]{0,40}\b(user|human)",
        ),
        ("without telling the user", r"\bwithout\s+(telling|informing|notifying|asking)\s+the\s+(user|human)"),
        ("a tag aimed at the model", r"<\s*/?\s*(important|system|instructions?|secret)\s*>"),
        ("system prompt", r"\bsystem\s+prompt\b"),
        ("new instructions", r"\b(new|updated|real)\s+instructions\b"),
        ("before using any tool", r"\bbefore\s+(using|calling)\s+(any|this|other)\s+tools?\b"),
    )
)
"""(label, pattern): phrases that address the model. Matched against every string of a definition."""

_WORDS: Final = {
    "ignore previous instructions": ("ignore", "disregard", "forget"),
    "you must": ("you",),
    "do not tell the user": ("do", "never"),
    "without telling the user": ("without",),
    "a tag aimed at the model": ("<",),
    "system prompt": ("system",),
    "new instructions": ("instructions",),
    "before using any tool": ("before",),
}
"""Per pattern, words one of which any match holds (in ASCII text, lowercased): a pattern whose words are absent
need not run. Scanning 10,000 definitions with every pattern was most of their review's time."""

_DESCRIBED_KEYS: Final = frozenset({"description", "title"})
_SCHEMA_KEYS: Final = ("inputSchema", "outputSchema", "arguments")


@dataclass(frozen=True, slots=True)
class Limits:
    """The size caps of `[catalog]` (`max_description_bytes`, `max_schema_bytes`)."""

    max_description_bytes: int = 32 * 1024
    max_schema_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class Inspection:
    """What a reviewer is told about one definition: `flags` ask for a human, `refusal` keeps it out entirely."""

    flags: tuple[str, ...] = ()
    refusal: str | None = None


def escape_hidden(text: str) -> str:
    """`text` with every hidden or bidirectional character written as visible `\\uXXXX` (or `\\UXXXXXXXX`)."""
    return HIDDEN.sub(_escaped, text)


def has_hidden(text: str) -> bool:
    return HIDDEN.search(text) is not None


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def visible_definition(definition: Mapping[str, Any]) -> dict[str, Any]:
    """`definition` with hidden characters escaped in every description and title, at any depth (what agents see).

    Names, schema keys and enum values are left alone: an argument the agent sends must reach the downstream as
    the downstream defined it. Such characters there are flagged for review instead (`inspect`).
    """
    text = _json_text(definition)
    if text is not None and HIDDEN.search(text) is None:
        return dict(definition)  # nothing to escape anywhere: the walk below would copy it unchanged
    return cast("dict[str, Any]", _visible(definition, None))


def _json_text(definition: Mapping[str, Any]) -> str | None:
    """`definition` as JSON in one C-speed pass: every string and key appears in it, hidden characters raw (only
    quotes, backslashes and control characters are escaped); None if it is not JSON (the walks decide then)."""
    try:
        return json.dumps(definition, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return None


def _visible(value: Any, key: str | None) -> Any:
    if isinstance(value, str):
        return escape_hidden(value) if key in _DESCRIBED_KEYS else value
    if isinstance(value, Mapping):
        items = cast("Mapping[str, Any]", value)
        return {name: _visible(item, name) for name, item in items.items()}
    if isinstance(value, list):
        return [_visible(item, None) for item in cast("list[Any]", value)]
    return value


def inspect(definition: Mapping[str, Any], key_field: str, limits: Limits) -> Inspection:
    """Flag what a reviewer must look at; refuse what must never be offered (oversize, a hidden name)."""
    key = definition.get(key_field)
    if isinstance(key, str) and has_hidden(key):
        return Inspection(
            flags=(f"hidden characters in its {key_field}",), refusal=f"hidden characters in its {key_field}"
        )
    description = definition.get("description")
    if isinstance(description, str):
        size = len(description.encode("utf-8", "surrogatepass"))
        if size > limits.max_description_bytes:
            why = f"description of {size} bytes over the cap of {limits.max_description_bytes}"
            return Inspection(flags=(f"oversize: {why}",), refusal=why)
    for field in _SCHEMA_KEYS:
        schema = definition.get(field)
        if schema is not None:
            size = len(json.dumps(schema, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
            if size > limits.max_schema_bytes:
                why = f"{field} of {size} bytes over the cap of {limits.max_schema_bytes}"
                return Inspection(flags=(f"oversize: {why}",), refusal=why)
    text = _json_text(definition)
    if text is not None and "\\" not in text and not HIDDEN.search(text) and not _may_instruct(text):
        # Nothing was escaped, so each string is in `text` verbatim between quotes (which no pattern's word
        # boundary can tell from a string's own edges): no string can match where the whole text does not.
        return Inspection()
    flags: list[str] = []
    for path, text in _strings(definition, ""):
        hidden = sorted({escape_hidden(char) for char in HIDDEN.findall(text)})
        if hidden:
            flags.append(f"hidden characters {' '.join(hidden)} in {path}")
        flags.extend(
            f"instruction-like text ({label}) in {path}"
            for label, pattern in INSTRUCTION_PATTERNS
            if pattern.search(text)
        )
    return Inspection(flags=tuple(dict.fromkeys(flags)))


def _may_instruct(text: str) -> bool:
    """Whether any instruction pattern matches `text`. In ASCII text, IGNORECASE is ASCII case folding, so a
    pattern runs only where one of its words is; other text (where U+017F matches `s`) runs every pattern."""
    if not text.isascii():
        return any(pattern.search(text) for _, pattern in INSTRUCTION_PATTERNS)
    lowered = text.lower()
    return any(
        any(word in lowered for word in _WORDS[label]) and pattern.search(text) is not None
        for label, pattern in INSTRUCTION_PATTERNS
    )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string in `value` (keys too), with where it is (`inputSchema.properties.x.description`)."""
    if isinstance(value, str):
        yield path or "(value)", value
    elif isinstance(value, Mapping):
        for name, item in cast("Mapping[str, Any]", value).items():
            where = f"{path}.{name}" if path else name
            yield where + " (key)", name
            yield from _strings(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(cast("list[Any]", value)):
            yield from _strings(item, f"{path}[{index}]")
