"""Does a URI come from a URI template? Matching RFC 6570 templates in reverse, for `resources/read`.

The hub forwards a read only for a URI it handed out: a listed resource, or an expansion of a listed resource
template. RFC 6570 (https://www.rfc-editor.org/rfc/rfc6570) defines expansion, not matching, so a template is
compiled into a regular expression that accepts every expansion (§3.2) of its expressions, with any values:

| operator | expansion | accepted here |
|---|---|---|
| none (§3.2.2) | unreserved and pct-encoded characters, `,` between list items | that run of characters |
| `+` (§3.2.3), `#` (§3.2.4) | reserved characters too; `#` starts with `#` | that run, `#` first for `#` |
| `.` `/` `;` (§3.2.5-§3.2.7) | each value after the operator's character | repeats of the character and a run |
| `?` `&` (§3.2.8-§3.2.9) | `name=value` pairs after `?` / `&` | an optional query part |

Values may be undefined, so every expression also matches nothing. The expressions never share a character
with the separator that precedes their repeats, and adjacent simple expressions are merged into one run, so
matching never backtracks catastrophically; templates and URIs are bounded in length besides.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

import regex

MAX_TEMPLATE_LENGTH: Final = 2048
MAX_URI_LENGTH: Final = 4096
MATCH_SECONDS: Final = 0.02
"""A template and a URI that together take longer than this to match are refused (the `regex` module's timeout)."""

_PCT: Final = r"%[0-9A-Fa-f]{2}"
_UNRESERVED: Final = r"A-Za-z0-9\-._~"
_RESERVED: Final = r":/?#\[\]@!$&'()*+,;="
_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^{}]*)\}")
_SIMPLE: Final = ("", "+")


def _run(chars: str) -> str:
    return f"(?:[{chars}]|{_PCT})*"


_OPERATORS: Final[dict[str, str]] = {
    "": _run(_UNRESERVED + ","),
    "+": _run(_UNRESERVED + _RESERVED),
    "#": f"(?:#{_run(_UNRESERVED + _RESERVED)})?",
    ".": f"(?:\\.{_run(_UNRESERVED.replace('.', '') + ',')})*",
    "/": f"(?:/{_run(_UNRESERVED + ',')})*",
    ";": f"(?:;{_run(_UNRESERVED + ',=')})*",
    "?": f"(?:\\?{_run(_UNRESERVED + ',=&')})?",
    "&": f"(?:&{_run(_UNRESERVED + ',=')})*",
}


@lru_cache(maxsize=4096)
def template_pattern(template: str) -> regex.Pattern[str] | None:
    """A pattern that fully matches every expansion of `template`; None if it is not a usable template."""
    if len(template) > MAX_TEMPLATE_LENGTH:
        return None
    parts: list[str] = []
    position = 0
    previous: str | None = None
    for expression in _EXPRESSION.finditer(template):
        literal = template[position : expression.start()]
        if "{" in literal or "}" in literal:
            return None
        operator = expression.group(1)
        if not literal and previous in _SIMPLE and operator in _SIMPLE:
            # Adjacent simple expressions match one run of the wider set: `X*Y*` would backtrack quadratically.
            operator = "+" if "+" in (previous, operator) else ""
            parts[-1] = _OPERATORS[operator]
        else:
            parts.append(re.escape(literal))
            parts.append(_OPERATORS[operator])
        previous = operator
        position = expression.end()
    tail = template[position:]
    if "{" in tail or "}" in tail:
        return None
    parts.append(re.escape(tail))
    return regex.compile("".join(parts), regex.DOTALL)


def matches_template(template: str, uri: str) -> bool:
    """Could `uri` be an expansion of `template`?"""
    if len(uri) > MAX_URI_LENGTH:
        return False
    pattern = template_pattern(template)
    if pattern is None:
        return False
    try:
        return pattern.fullmatch(uri, timeout=MATCH_SECONDS) is not None
    except TimeoutError:
        return False  # fail closed: a URI too costly to match is not one the hub handed out
