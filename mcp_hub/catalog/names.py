"""Public names and URIs: how a downstream's tools, prompts and resources are named through the hub.

**Tools and prompts** are `<connector-id>__<name>`, injective, at most 64 characters. The MCP specification
allows tool names of 1-128 characters from `[A-Za-z0-9_.-]`
(https://modelcontextprotocol.io/specification/2025-11-25/server/tools#tool-names), but many clients cap
names at 64 characters. Connector ids never contain `_` (see `CONNECTOR_ID_PATTERN`), so the first `__`
of a public name always ends the connector id, and distinct (connector, name) pairs whose names are
short and well-formed map to distinct public names.

A name that would make the public name longer than 64 characters, or that holds characters outside the
allowed set, gets a deterministic short form: a sanitised prefix of the name, then `_h` and 16 hex digits of
the SHA-256 of the original name. Short forms cannot collide with each other short of a 64-bit hash
collision; a short form that equals some other entry's literal name is detected by the catalog, which
refuses the later entry rather than shadow the earlier one.

**Resource URIs and URI templates** (https://modelcontextprotocol.io/specification/2025-11-25/server/resources)
are `mcp-hub://<connector-id>/<the downstream's URI, verbatim>`, e.g. `mcp-hub://files/file:///etc/motd`. The
mapping is reversible by cutting the prefix at the first `/` after the connector id (connector ids hold no
`/`). The prefix holds no `{`, so an RFC 6570 template keeps its meaning: expanding the public template gives
the prefix followed by the expansion of the downstream's template, whatever the variables are.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from mcp_hub.config.connectors import CONNECTOR_ID_PATTERN
from mcp_hub.domain import ConnectorId

MAX_PUBLIC_NAME_LENGTH: Final = 64
SEPARATOR: Final = "__"
URI_SCHEME: Final = "mcp-hub"
_URI_PREFIX: Final = f"{URI_SCHEME}://"
_ALLOWED = re.compile(r"^[A-Za-z0-9_.-]+$")
_DISALLOWED_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_HASH_DIGITS: Final = 16


def public_name(connector_id: str, name: str) -> str:
    """The public name under which the hub offers tool or prompt `name` of connector `connector_id`."""
    prefix = connector_id + SEPARATOR
    plain = prefix + name
    if len(plain) <= MAX_PUBLIC_NAME_LENGTH and _ALLOWED.fullmatch(name):
        return plain
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_DIGITS]
    suffix = "_h" + digest
    room = MAX_PUBLIC_NAME_LENGTH - len(prefix) - len(suffix)
    stem = _DISALLOWED_CHARS.sub("_", name)[: max(room, 0)]
    return prefix + stem + suffix


def public_uri(connector_id: str, downstream_uri: str) -> str:
    """The public URI (or URI template) of a downstream resource URI (or template)."""
    return f"{_URI_PREFIX}{connector_id}/{downstream_uri}"


def split_public_uri(uri: str) -> tuple[ConnectorId, str] | None:
    """The connector and downstream URI behind a public URI; None if `uri` is not one the codec makes."""
    if not uri.startswith(_URI_PREFIX):
        return None
    connector, slash, downstream = uri[len(_URI_PREFIX) :].partition("/")
    if not slash or not downstream or not CONNECTOR_ID_PATTERN.fullmatch(connector):
        return None
    return ConnectorId(connector), downstream
