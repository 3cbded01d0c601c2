"""Control characters shown escaped in log lines: no line can forge another (log injection), rewrite the terminal
(ANSI escape sequences, CR, backspace) or hide text (bidi overrides), whoever wrote it (a request path, a client
name, a downstream's stderr). `\\x1b` stays visible as the four characters `\\x1b`."""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any, Final

_INVISIBLE: Final = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
"""DEL and the C1 controls (the C1 CSI starts an ANSI sequence too), line and paragraph separators, bidi marks and
overrides."""
_CONTROL: Final = re.compile(f"[\x00-\x1f{_INVISIBLE}]")
"""Every C0 control (ESC, CR, LF, NUL, ...) and the invisible ones."""
_CONTROL_BUT_LAYOUT: Final = re.compile(f"[\x00-\x08\x0b-\x1f{_INVISIBLE}]")
"""The same without newline and tab: a formatted traceback keeps its lines."""
_MULTI_LINE_KEYS: Final = frozenset({"exception", "stack"})


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str, *, keep_layout: bool = False) -> str:
    """`text` with every control character written as its escape (`\\x1b`, `\\r`-as-`\\x0d`, `\\u202e`);
    `keep_layout`: newlines and tabs stay (a traceback, an indented JSON document)."""
    pattern = _CONTROL_BUT_LAYOUT if keep_layout else _CONTROL
    return pattern.sub(_escaped, text) if pattern.search(text) else text


def escape_values(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `escape_controls` over every string value (a traceback keeps its newlines)."""
    for key, value in event.items():
        if isinstance(value, str):
            pattern = _CONTROL_BUT_LAYOUT if key in _MULTI_LINE_KEYS else _CONTROL
            if pattern.search(value):
                event[key] = pattern.sub(_escaped, value)
    return event
