"""The unified catalog: every downstream tool under its public name, served from memory.

Lists are answered from an immutable, sorted snapshot that is rebuilt only when a connector's tool
list changes, so a `tools/list` never asks a downstream and never touches the database. Pages are
cut by keyset (the cursor is the last public name of the previous page), which keeps paging stable
while the catalog changes underneath a client.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import rfc8785
import structlog

from mcp_hub.catalog.names import public_tool_name
from mcp_hub.domain import ConnectorId
from mcp_hub.errors import InvalidCursorError, UnknownToolError

logger = structlog.get_logger(__name__)


def definition_sha256(definition: Mapping[str, Any]) -> str:
    """SHA-256 of the RFC 8785 (JCS) canonical JSON of a tool definition."""
    try:
        canonical = rfc8785.dumps(dict(definition))
    except rfc8785.CanonicalizationError:
        # Values JCS cannot represent (integers beyond 2**53, NaN) still need a stable digest.
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class CatalogTool:
    """One downstream tool as the hub offers it."""

    public_name: str
    connector_id: ConnectorId
    downstream_name: str
    definition: Mapping[str, Any]
    sha256: str
    public_definition: Mapping[str, Any] = field(compare=False)


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """What one refresh of one connector changed, by public name."""

    connector_id: ConnectorId
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


CatalogListener = Callable[[CatalogChange], None]


def encode_cursor(last_public_name: str) -> str:
    return base64.urlsafe_b64encode(last_public_name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursorError(f"Invalid cursor: {cursor[:80]!r}") from None


class Catalog:
    """The hub's model of every connector's tools."""

    def __init__(self, listeners: Sequence[CatalogListener] = ()) -> None:
        """`listeners` are called, synchronously, after every change."""
        self._by_connector: dict[ConnectorId, dict[str, CatalogTool]] = {}
        self._by_public: dict[str, CatalogTool] = {}
        self._sorted_names: list[str] = []
        self._sorted_tools: list[CatalogTool] = []
        self._listeners = tuple(listeners)

    def resolve(self, public_name: str) -> CatalogTool:
        """The tool behind a public name; `UnknownToolError` if there is none."""
        tool = self._by_public.get(public_name)
        if tool is None:
            raise UnknownToolError(public_name)
        return tool

    def tools_by_name(self) -> Mapping[str, CatalogTool]:
        return self._by_public

    def tool_exists(self, public_name: str) -> bool:
        return public_name in self._by_public

    def input_schema(self, public_name: str) -> Mapping[str, Any] | None:
        """The tool's `inputSchema`, or None for an unknown tool (a lookup that never raises)."""
        tool = self._by_public.get(public_name)
        if tool is None:
            return None
        schema = tool.public_definition.get("inputSchema")
        return cast("Mapping[str, Any]", schema) if isinstance(schema, Mapping) else None

    def tools(self) -> Sequence[CatalogTool]:
        """Every tool, sorted by public name."""
        return self._sorted_tools

    def tools_of(self, connector_id: str) -> Sequence[CatalogTool]:
        return sorted(self._by_connector.get(ConnectorId(connector_id), {}).values(), key=lambda tool: tool.public_name)

    def page(
        self, cursor: str | None, size: int, visible: Callable[[str], bool] | None = None
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        """One page of public tool definitions and the cursor of the next page, if any.

        With `visible`, only the tools it accepts are listed (and counted towards `size`).
        """
        start = 0 if cursor is None else bisect.bisect_right(self._sorted_names, decode_cursor(cursor))
        chunk: Sequence[CatalogTool]
        if visible is None:
            chunk = self._sorted_tools[start : start + size]
            more = start + size < len(self._sorted_tools)
        else:
            picked: list[CatalogTool] = []
            position = start
            for position in range(start, len(self._sorted_tools)):
                tool = self._sorted_tools[position]
                if visible(tool.public_name):
                    picked.append(tool)
                    if len(picked) == size:
                        break
            chunk = picked
            # A full page may be followed by an empty one: cheaper than scanning ahead, and valid pagination.
            more = len(chunk) == size and position + 1 < len(self._sorted_tools)
        next_cursor = encode_cursor(chunk[-1].public_name) if more and chunk else None
        return [tool.public_definition for tool in chunk], next_cursor

    def replace_connector(self, connector_id: str, definitions: Sequence[Mapping[str, Any]]) -> CatalogChange:
        """Make `definitions` (as the downstream listed them) the connector's whole tool list."""
        connector = ConnectorId(connector_id)
        old = self._by_connector.get(connector, {})
        new: dict[str, CatalogTool] = {}
        rejected: list[str] = []
        for definition in sorted(definitions, key=lambda item: str(item.get("name", ""))):
            tool = self._make_tool(connector, definition)
            owner = self._by_public.get(tool.public_name)
            if tool.public_name in new or (owner is not None and owner.connector_id != connector_id):
                logger.warning(
                    "tool refused: its public name is taken",
                    connector=connector_id,
                    tool=tool.downstream_name,
                    public_name=tool.public_name,
                )
                rejected.append(tool.downstream_name)
                continue
            new[tool.public_name] = tool
        change = CatalogChange(
            connector_id=connector,
            added=tuple(sorted(new.keys() - old.keys())),
            changed=tuple(sorted(name for name in new.keys() & old.keys() if new[name].sha256 != old[name].sha256)),
            removed=tuple(sorted(old.keys() - new.keys())),
            rejected=tuple(rejected),
        )
        if change.is_empty:
            return change
        for name in old:
            del self._by_public[name]
        self._by_public.update(new)
        if new:
            self._by_connector[connector] = new
        else:
            self._by_connector.pop(connector, None)
        self._rebuild()
        for listener in self._listeners:
            listener(change)
        return change

    def _rebuild(self) -> None:
        self._sorted_tools = sorted(self._by_public.values(), key=lambda tool: tool.public_name)
        self._sorted_names = [tool.public_name for tool in self._sorted_tools]

    @staticmethod
    def _make_tool(connector_id: ConnectorId, definition: Mapping[str, Any]) -> CatalogTool:
        downstream_name = str(definition["name"])
        public_name = public_tool_name(connector_id, downstream_name)
        public_definition = {**definition, "name": public_name}
        return CatalogTool(
            public_name=public_name,
            connector_id=connector_id,
            downstream_name=downstream_name,
            definition=definition,
            sha256=definition_sha256(definition),
            public_definition=public_definition,
        )
