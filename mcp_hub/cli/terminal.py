"""What the admin commands print of text others wrote (a downstream's names and descriptions, an agent's arguments,
the reasons a rule held a call, a reviewer's note): every control, hidden and bidirectional character escaped, so
that nothing printed can drive the terminal (ANSI sequences through ESC or the C1 CSI, carriage returns,
backspaces) or hide or reorder what the operator reads (threat T31). The console and the approver pages escape the
same characters in HTML (`mcp_hub.catalog.review.visible_definition`, the pages' `visible` filter)."""

from __future__ import annotations

from mcp_hub.catalog.review import escape_hidden
from mcp_hub.logs import escape_controls


def shown(text: str, *, keep_layout: bool = False) -> str:
    """`text` safe to print: controls as `\\x1b`, hidden and bidi characters as `\\u202e`; `keep_layout`: newlines
    and tabs stay (an indented JSON document, whose strings JSON has escaped already)."""
    return escape_hidden(escape_controls(text, keep_layout=keep_layout))
