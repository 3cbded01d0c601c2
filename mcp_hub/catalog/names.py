"""Public tool names: `<connector-id>__<tool>`, injective, at most 64 characters.

The MCP specification allows tool names of 1-128 characters from `[A-Za-z0-9_.-]`
(https://modelcontextprotocol.io/specification/2025-11-25/server/tools#tool-names), but many clients cap
names at 64 characters. Connector ids never contain `_` (see `CONNECTOR_ID_PATTERN`), so the first `__`
of a public name always ends the connector id, and distinct (connector, tool) pairs whose tool names are
short and well-formed map to distinct public names.

A tool name that would make the public name longer than 64 characters, or that holds characters
outside the allowed set, gets a deterministic short form: a sanitised prefix of the name, then `_h` and
16 hex digits of the SHA-256 of the original name. Short forms cannot collide with each
other short of a 64-bit hash collision; a short form that equals some other tool's literal name is
detected by the catalog, which refuses the later tool rather than shadow the earlier one.
"""

from __future__ import annotations

import hashlib
import re

MAX_PUBLIC_NAME_LENGTH = 64
SEPARATOR = "__"
_ALLOWED = re.compile(r"^[A-Za-z0-9_.-]+$")
_DISALLOWED_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_HASH_DIGITS = 16


def public_tool_name(connector_id: str, tool_name: str) -> str:
    """The public name under which the hub offers `tool_name` of connector `connector_id`."""
    prefix = connector_id + SEPARATOR
    plain = prefix + tool_name
    if len(plain) <= MAX_PUBLIC_NAME_LENGTH and _ALLOWED.fullmatch(tool_name):
        return plain
    digest = hashlib.sha256(tool_name.encode("utf-8")).hexdigest()[:_HASH_DIGITS]
    suffix = "_h" + digest
    room = MAX_PUBLIC_NAME_LENGTH - len(prefix) - len(suffix)
    stem = _DISALLOWED_CHARS.sub("_", tool_name)[: max(room, 0)]
    return prefix + stem + suffix
