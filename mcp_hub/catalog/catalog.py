"""The unified catalog: every downstream tool, prompt, resource and resource template under its public name.

Lists are answered from immutable, sorted snapshots (one per kind) that are rebuilt only when a connector's
list changes, so a `tools/list`, `prompts/list`, `resources/list` or `resources/templates/list` never asks a
downstream and never touches the database. Pages are cut by keyset (the cursor is the last public key of the
previous page), which keeps paging stable while the catalog changes underneath a client.

Public names and URIs come from `mcp_hub.catalog.names`; a resource URI is resolved back to its connector
only if the hub handed it out (a listed resource, or an expansion of a listed template:
`mcp_hub.catalog.uri_templates`), never by guessing.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final, cast

import orjson
import rfc8785
import structlog

from mcp_hub.catalog.names import public_name, public_uri, split_public_uri
from mcp_hub.catalog.review import visible_definition
from mcp_hub.catalog.uri_templates import matches_template
from mcp_hub.domain import CatalogKind, ConnectorId, ConnectorListing
from mcp_hub.errors import InvalidCursorError, ResourceNotFoundError, UnknownPromptError, UnknownToolError

logger = structlog.get_logger(__name__)

MAX_KEY_LENGTH: Final = 2048
"""A downstream name or URI longer than this is refused (and logged), not offered."""

_KEY_FIELDS: Final = {
    CatalogKind.TOOL: "name",
    CatalogKind.PROMPT: "name",
    CatalogKind.RESOURCE: "uri",
    CatalogKind.RESOURCE_TEMPLATE: "uriTemplate",
}


_NOT_JCS_AS_IS: Final = re.compile(r"[:,\[]-?[0-9]+[.eE]|[\ud800-\U0010ffff]")
"""In compact, key-sorted JSON: a float (JCS writes numbers its own way), or a character at or above U+D800 (JCS
sorts keys by UTF-16 code units, Python by code points; a lone surrogate is not UTF-8). A string that merely
looks like one only sends the definition the slow way."""


def compact_json(value: Mapping[str, Any]) -> bytes:
    """The compact JSON of a definition, or of a list page made of them: orjson, or the standard library for what
    orjson refuses (e.g. integers ≥ 2**64). A page's JSON is its definitions' JSON, so the size kept on an entry
    (`CatalogEntry.public_json_size`) is what it adds to a page (`mcp_hub.gateway.lists`)."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def definition_sha256(definition: Mapping[str, Any]) -> str:
    """SHA-256 of the RFC 8785 (JCS) canonical JSON of a definition."""
    try:
        text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and _NOT_JCS_AS_IS.search(text) is None:
        # Without floats or characters from U+D800 up, the standard library's compact sorted JSON is the JCS
        # text byte for byte (the same escapes, integers, literals and key order), at C speed: `rfc8785` is
        # pure Python, and hashing 10,000 definitions took a second of a federation.
        return hashlib.sha256(text.encode()).hexdigest()
    return _jcs_sha256(definition)


def _jcs_sha256(definition: Mapping[str, Any]) -> str:
    try:
        canonical = rfc8785.dumps(dict(definition))
    except rfc8785.CanonicalizationError:
        # Values JCS cannot represent (integers beyond 2**53, NaN) still need a stable digest.
        canonical = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One downstream tool, prompt, resource or resource template as the hub offers it.

    `public_name` is the public name (tools, prompts) or public URI (resources, templates); `downstream_name`
    the downstream's own name or URI. `definition` is the downstream's, with hidden characters in descriptions
    and titles escaped (`mcp_hub.catalog.review.visible_definition`); `sha256` is of the definition as sent.
    `public_json_size` is the length of `public_definition`'s compact JSON (`compact_json`), measured once when the
    entry is made: what a list page of the catalog is bounded in bytes by, without serialising anything.
    """

    kind: CatalogKind
    public_name: str
    connector_id: ConnectorId
    downstream_name: str
    definition: Mapping[str, Any]
    sha256: str
    public_definition: Mapping[str, Any] = field(compare=False)
    public_json_size: int = field(compare=False)


@dataclass(frozen=True, slots=True)
class CatalogChange:
    """What one refresh of one connector changed in one kind, by public name."""

    connector_id: ConnectorId
    kind: CatalogKind = CatalogKind.TOOL
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


CatalogListener = Callable[[CatalogChange], None]


@dataclass(frozen=True, slots=True)
class ConnectorOffer:
    """What a connector declared it can do beyond its lists (its `ServerCapabilities`)."""

    prompts: bool = False
    resources: bool = False
    subscribe: bool = False
    completions: bool = False
    logging: bool = False

    @classmethod
    def of(cls, capabilities: Mapping[str, Any]) -> ConnectorOffer:
        resources = capabilities.get("resources")
        return cls(
            prompts=isinstance(capabilities.get("prompts"), Mapping),
            resources=isinstance(resources, Mapping),
            subscribe=isinstance(resources, Mapping) and cast("Mapping[str, Any]", resources).get("subscribe") is True,
            completions=isinstance(capabilities.get("completions"), Mapping),
            logging=isinstance(capabilities.get("logging"), Mapping),
        )


@dataclass(frozen=True, slots=True)
class ResourceTarget:
    """Where a public resource URI leads: the connector, its own URI for it, and what the hub listed."""

    connector_id: ConnectorId
    downstream_uri: str
    public_uri: str
    listed: CatalogEntry | None
    """The listed resource with exactly this URI, if any (else the URI expands one of `template`)."""
    template: CatalogEntry | None


def encode_cursor(last_public_name: str) -> str:
    return base64.urlsafe_b64encode(last_public_name.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursorError(f"Invalid cursor: {cursor[:80]!r}") from None


def page_of(
    entries: Sequence[CatalogEntry],
    keys: Sequence[str],
    key_of: Callable[[CatalogEntry], str],
    cursor: str | None,
    size: int,
    visible: Callable[[str], bool] | None,
    *,
    definition_of: Callable[[CatalogEntry], Mapping[str, Any]] = lambda entry: entry.public_definition,
    size_of: Callable[[CatalogEntry], int] = attrgetter("public_json_size"),
    max_bytes: int | None = None,
) -> tuple[list[Mapping[str, Any]], str | None]:
    """One page of `entries` (sorted by `keys`, each `key_of(entry)`), after the entry keyed `cursor`: at most
    `size` entries `visible` accepts and, with `max_bytes`, at most what fits in it (`within`); `size_of` is the
    length of `definition_of(entry)`'s compact JSON."""
    start = 0 if cursor is None else bisect.bisect_right(keys, decode_cursor(cursor))
    chunk: Sequence[CatalogEntry]
    if visible is None:
        chunk = entries[start : start + size]
        more = start + size < len(entries)
    else:
        picked: list[CatalogEntry] = []
        position = start
        for position in range(start, len(entries)):
            entry = entries[position]
            if visible(entry.public_name):
                picked.append(entry)
                if len(picked) == size:
                    break
        chunk = picked
        # A full page may be followed by an empty one: cheaper than scanning ahead, and valid pagination.
        more = len(chunk) == size and position + 1 < len(entries)
    if max_bytes is not None and chunk:
        chunk, more = within(chunk, more, key_of, size_of, max_bytes)
    next_cursor = encode_cursor(key_of(chunk[-1])) if more and chunk else None
    return [definition_of(entry) for entry in chunk], next_cursor


def within(
    chunk: Sequence[CatalogEntry],
    more: bool,
    key_of: Callable[[CatalogEntry], str],
    size_of: Callable[[CatalogEntry], int],
    max_bytes: int,
) -> tuple[Sequence[CatalogEntry], bool]:
    """The longest head of a page (`chunk`, followed by more entries if `more`) whose entries' JSON, joined by
    commas, and next cursor come to at most `max_bytes`, and whether more entries follow it. Its first entry
    always: one larger than the bound is served alone, or a client could never get past it."""
    used = sum(map(size_of, chunk)) + len(chunk) - 1
    if used + (_cursor_length(key_of(chunk[-1])) if more else 0) <= max_bytes:
        return chunk, more  # the usual page: the count, not the bytes, ended it
    used, count = -1, 0
    for entry in chunk:
        grown = used + 1 + size_of(entry)
        if count and grown > max_bytes:
            break
        used, count = grown, count + 1
    # The cursor is part of the page: it may take the room of the last entries (keys up to MAX_KEY_LENGTH).
    while count > 1 and used + _cursor_length(key_of(chunk[count - 1])) > max_bytes:
        count -= 1
        used -= 1 + size_of(chunk[count])
    return chunk[:count], more or count < len(chunk)


def _cursor_length(key: str) -> int:
    return (len(key.encode()) * 4 + 2) // 3  # unpadded base64 (`encode_cursor`)


def key_field(kind: CatalogKind) -> str:
    """The field of a definition that names it: `name`, `uri` or `uriTemplate`."""
    return _KEY_FIELDS[kind]


def public_key(kind: CatalogKind, connector_id: ConnectorId, downstream_name: str) -> str:
    """The public name (tools, prompts) or public URI (resources, templates) of a downstream entry."""
    if kind in (CatalogKind.TOOL, CatalogKind.PROMPT):
        return public_name(connector_id, downstream_name)
    return public_uri(connector_id, downstream_name)


class Snapshot:
    """One version of a section: replaced by every change, compared by identity (what keys cached pages)."""

    __slots__ = ()


class Section:
    """One kind of entry of every connector: lookups by public name, sorted pages, per-connector replacement."""

    def __init__(self, kind: CatalogKind) -> None:
        self.kind = kind
        self._snapshot = Snapshot()
        self._key_field = _KEY_FIELDS[kind]
        self._by_connector: dict[ConnectorId, dict[str, CatalogEntry]] = {}
        self._by_public: dict[str, CatalogEntry] = {}
        self._sorted_names: list[str] = []
        self._sorted: list[CatalogEntry] = []
        self._by_downstream: dict[tuple[ConnectorId, str], CatalogEntry] = {}

    @property
    def snapshot(self) -> Snapshot:
        """The current version: a new one after every change."""
        return self._snapshot

    @property
    def view_key(self) -> Hashable:
        """What tells this reader's pages apart from another reader's (the section itself: the hub's lists)."""
        return self

    def get(self, name: str) -> CatalogEntry | None:
        """The entry with this public name (or public URI)."""
        return self._by_public.get(name)

    def __contains__(self, public: object) -> bool:
        return public in self._by_public

    def __len__(self) -> int:
        return len(self._by_public)

    def entries(self) -> Sequence[CatalogEntry]:
        """Every entry, sorted by public name."""
        return self._sorted

    def of_connector(self, connector_id: str) -> Sequence[CatalogEntry]:
        return sorted(self._by_connector.get(ConnectorId(connector_id), {}).values(), key=lambda e: e.public_name)

    def connectors(self) -> set[ConnectorId]:
        return set(self._by_connector)

    def of_connector_unsorted(self, connector_id: ConnectorId) -> Iterable[CatalogEntry]:
        return self._by_connector.get(connector_id, {}).values()

    def page(
        self,
        cursor: str | None,
        size: int,
        visible: Callable[[str], bool] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        """One page of public definitions and the cursor of the next page, if any.

        With `visible` (asked by public name), only the entries it accepts are listed (and count towards `size`);
        with `max_bytes`, the page also ends before the entry whose JSON would not fit (`within`).
        """
        return page_of(
            self._sorted,
            self._sorted_names,
            lambda entry: entry.public_name,
            cursor,
            size,
            visible,
            max_bytes=max_bytes,
        )

    def by_downstream_name(self, connector_id: ConnectorId, downstream_name: str) -> CatalogEntry | None:
        return self._by_downstream.get((connector_id, downstream_name))

    def replace(
        self,
        connector_id: ConnectorId,
        definitions: Sequence[Mapping[str, Any]],
        digest: Callable[[Mapping[str, Any]], str] = definition_sha256,
    ) -> CatalogChange:
        """Make `definitions` (as the downstream listed them) the connector's whole list of this kind; `digest` is
        `definition_sha256` or a memo of it."""
        old = self._by_connector.get(connector_id, {})
        new: dict[str, CatalogEntry] = {}
        rejected: list[str] = []
        for definition in sorted(definitions, key=lambda item: str(item.get(self._key_field, ""))):
            entry = self._make(connector_id, definition, digest, old)
            if entry is None:
                rejected.append(str(definition.get(self._key_field, ""))[:200])
                continue
            owner = self._by_public.get(entry.public_name)
            if entry.public_name in new or (owner is not None and owner.connector_id != connector_id):
                logger.warning(
                    "catalog entry refused: its public name is taken",
                    connector=connector_id,
                    kind=self.kind,
                    name=entry.downstream_name,
                    public_name=entry.public_name,
                )
                rejected.append(entry.downstream_name)
                continue
            new[entry.public_name] = entry
        change = CatalogChange(
            connector_id=connector_id,
            kind=self.kind,
            added=tuple(sorted(new.keys() - old.keys())),
            changed=tuple(sorted(name for name in new.keys() & old.keys() if new[name].sha256 != old[name].sha256)),
            removed=tuple(sorted(old.keys() - new.keys())),
            rejected=tuple(rejected),
        )
        if change.is_empty:
            return change
        for name, entry in old.items():
            del self._by_public[name]
            self._by_downstream.pop((connector_id, entry.downstream_name), None)
        self._by_public.update(new)
        self._by_downstream.update({(connector_id, entry.downstream_name): entry for entry in new.values()})
        if new:
            self._by_connector[connector_id] = new
        else:
            self._by_connector.pop(connector_id, None)
        self._resort(change, new)
        self._snapshot = Snapshot()
        return change

    def _resort(self, change: CatalogChange, new: Mapping[str, CatalogEntry]) -> None:
        """The sorted lists after `change`: new lists (a snapshot's list is never edited), edited where the change
        is small against the section. Re-sorting everything on every connector's arrival made federating N
        connectors quadratic."""
        if 4 * (len(change.added) + len(change.removed)) > len(self._sorted_names):
            self._sorted = sorted(self._by_public.values(), key=lambda entry: entry.public_name)
            self._sorted_names = [entry.public_name for entry in self._sorted]
            return
        names, entries = list(self._sorted_names), list(self._sorted)
        for name in change.removed:
            position = bisect.bisect_left(names, name)
            del names[position], entries[position]
        for name in change.changed:
            entries[bisect.bisect_left(names, name)] = new[name]
        for name in change.added:
            position = bisect.bisect_left(names, name)
            names.insert(position, name)
            entries.insert(position, new[name])
        self._sorted_names, self._sorted = names, entries

    def _make(
        self,
        connector_id: ConnectorId,
        definition: Mapping[str, Any],
        digest: Callable[[Mapping[str, Any]], str],
        old: Mapping[str, CatalogEntry],
    ) -> CatalogEntry | None:
        downstream_name = definition.get(self._key_field)
        if not isinstance(downstream_name, str) or not downstream_name or len(downstream_name) > MAX_KEY_LENGTH:
            logger.warning("catalog entry refused: no usable key", connector=connector_id, kind=self.kind)
            return None
        public = public_key(self.kind, connector_id, downstream_name)
        sha256 = digest(definition)
        kept = old.get(public)
        if kept is not None and kept.sha256 == sha256 and kept.downstream_name == downstream_name:
            return kept  # the same definition again (a re-list, a re-applied decision): nothing to escape again
        # The digest pins the definition exactly as the downstream sent it; agents are shown its descriptions
        # with hidden and bidirectional characters escaped (issue 11 §3, threat T31).
        visible = visible_definition(definition)
        public_definition = {**visible, self._key_field: public}
        return CatalogEntry(
            kind=self.kind,
            public_name=public,
            connector_id=connector_id,
            downstream_name=downstream_name,
            definition=visible,
            sha256=sha256,
            public_definition=public_definition,
            public_json_size=len(compact_json(public_definition)),
        )


class Catalog:
    """The hub's model of everything its connectors offer."""

    def __init__(self, listeners: Sequence[CatalogListener] = ()) -> None:
        """`listeners` are called, synchronously, after every change (one call per changed kind)."""
        self.tools = Section(CatalogKind.TOOL)
        self.prompts = Section(CatalogKind.PROMPT)
        self.resources = Section(CatalogKind.RESOURCE)
        self.templates = Section(CatalogKind.RESOURCE_TEMPLATE)
        self._sections = {
            section.kind: section for section in (self.tools, self.prompts, self.resources, self.templates)
        }
        self._offers: dict[ConnectorId, ConnectorOffer] = {}
        self._listeners = tuple(listeners)

    def section(self, kind: CatalogKind) -> Section:
        return self._sections[kind]

    # --- tools (the hot path) -------------------------------------------------------------------------------

    def resolve(self, public_name: str) -> CatalogEntry:
        """The tool behind a public name; `UnknownToolError` if there is none."""
        tool = self.tools.get(public_name)
        if tool is None:
            raise UnknownToolError(public_name)
        return tool

    def tool_exists(self, name: str) -> bool:
        return name in self.tools

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """The tool's `inputSchema`, or None for an unknown tool (a lookup that never raises)."""
        tool = self.tools.get(name)
        if tool is None:
            return None
        schema = tool.public_definition.get("inputSchema")
        return cast("Mapping[str, Any]", schema) if isinstance(schema, Mapping) else None

    # --- prompts and resources ------------------------------------------------------------------------------

    def resolve_prompt(self, name: str) -> CatalogEntry:
        prompt = self.prompts.get(name)
        if prompt is None:
            raise UnknownPromptError(name)
        return prompt

    def resolve_resource(self, uri: str) -> ResourceTarget:
        """Where a public resource URI leads; `ResourceNotFoundError` unless the hub handed it out."""
        listed = self.resources.get(uri)
        if listed is not None:
            return ResourceTarget(listed.connector_id, listed.downstream_name, uri, listed, None)
        split = split_public_uri(uri)
        if split is None:
            raise ResourceNotFoundError(uri)
        connector_id, downstream_uri = split
        for template in self.templates.of_connector(connector_id):
            if matches_template(template.downstream_name, downstream_uri):
                return ResourceTarget(connector_id, downstream_uri, uri, None, template)
        raise ResourceNotFoundError(uri)

    # --- connectors -----------------------------------------------------------------------------------------

    def visible_to(self, connector_id: str, allows: Callable[[str, str], bool]) -> bool:
        """May a caller whose decision is `allows(public_name, scope_kind)` see anything of this connector?"""
        connector = ConnectorId(connector_id)
        for section in self._sections.values():
            kind = section.kind.scope_kind
            if any(allows(entry.public_name, kind) for entry in section.of_connector_unsorted(connector)):
                return True
        return False

    def localize(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """Results are forwarded with public URIs already: what `/mcp` clients know."""
        del method
        return result

    def offer(self, connector_id: str) -> ConnectorOffer:
        return self._offers.get(ConnectorId(connector_id), ConnectorOffer())

    def connectors(self) -> set[ConnectorId]:
        """Every connector that has listed (something or nothing) since it was last forgotten."""
        return set(self._offers)

    def replace_connector(
        self,
        connector_id: str,
        listing: ConnectorListing,
        digest: Callable[[Mapping[str, Any]], str] = definition_sha256,
    ) -> tuple[CatalogChange, ...]:
        """Make `listing` everything the connector offers; listeners hear of every kind that changed. `digest` is
        `definition_sha256` or a memo of it."""
        connector = ConnectorId(connector_id)
        self._offers[connector] = ConnectorOffer.of(listing.capabilities)
        changes = tuple(
            section.replace(connector, listing.of(kind), digest) for kind, section in self._sections.items()
        )
        for change in changes:
            if not change.is_empty:
                for listener in self._listeners:
                    listener(change)
        return changes

    def remove_connector(self, connector_id: str) -> tuple[CatalogChange, ...]:
        """Forget everything the connector offered (its file was removed or disabled); listeners hear of it."""
        changes = self.replace_connector(connector_id, ConnectorListing())
        self._offers.pop(ConnectorId(connector_id), None)
        return changes
