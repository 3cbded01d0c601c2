"""A field-level comparison of two downstream definitions, for the review queue's diff view (issue 11 §4, T16).

Each definition is flattened to its leaves, keyed by their path (`description`, `inputSchema.properties.path.type`,
`inputSchema.required[0]`); the comparison says for every path whether it was added, removed, changed or kept.
Values are kept as JSON text, so `"5"` and `5` differ visibly; the page escapes and flags hidden characters
(`mcp_hub.web.pages` `visible`, T31).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, cast

from mcp_hub.catalog.review import has_hidden


class Change(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    SAME = "same"


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One leaf of either definition: its path, its JSON text before and after (None: absent on that side)."""

    path: str
    old: str | None
    new: str | None
    change: Change

    @property
    def hides_characters(self) -> bool:
        return any(value is not None and has_hidden(value) for value in (self.old, self.new))


def leaves(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every leaf of a JSON value with its path; an empty object or list is a leaf of its own (`{}`, `[]`)."""
    if isinstance(value, Mapping) and value:
        for key, item in cast("Mapping[str, Any]", value).items():
            yield from leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(cast("list[Any]", value)):
            yield from leaves(item, f"{path}[{index}]")
    else:
        yield path or "(value)", json.dumps(value, ensure_ascii=False, sort_keys=True)


def compare(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[FieldChange]:
    """The fields of `old` (None: never approved) and `new`, in the new definition's order, removed ones last."""
    before = dict(leaves(old)) if old is not None else {}
    after = dict(leaves(new))
    changes: list[FieldChange] = []
    for path, value in after.items():
        previous = before.get(path)
        if previous is None:
            changes.append(FieldChange(path, None, value, Change.ADDED))
        else:
            changes.append(FieldChange(path, previous, value, Change.SAME if previous == value else Change.CHANGED))
    changes += [FieldChange(path, value, None, Change.REMOVED) for path, value in before.items() if path not in after]
    return changes
