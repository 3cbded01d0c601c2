"""A virtual server's view of the catalog (issue 11 §6), and the ranked search over what a caller may see (§7).

`VirtualView` is the `CatalogReader` behind `/mcp/v/<name>`: the entries of the whole catalog whose public names
(tools, prompts) or public URIs (resources, templates) match the server's globs, tools and prompts under their
renames and with their description overrides. As with a connector's profile (`ConnectorView`) the entries are the
catalog's own, so grants, approval rules and the audit trail keep seeing public names.

A section's selection is computed once per catalog snapshot (a `Section` replaces its sorted list on every
change), so a list or a lookup costs what it costs on `/mcp`.

`SearchIndex` ranks a reader's tools for a query: every query term (a lowercased word of letters and digits)
scores where it appears (a word of the name, part of the name, a word of the description), weighted by its
rarity; only matching entries are then asked whether the caller may see them, best first, so one search over
10,000 tools is a walk over the posting lists of its terms, not over the catalog.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, Protocol, cast

from mcp_hub.catalog.catalog import (
    Catalog,
    CatalogChange,
    CatalogEntry,
    ConnectorOffer,
    ResourceTarget,
    Section,
    Snapshot,
    compact_json,
    page_of,
)
from mcp_hub.catalog.views import ConnectorSection, SectionedView
from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.domain import CatalogKind, ConnectorId
from mcp_hub.errors import ResourceNotFoundError


@lru_cache(maxsize=1024)
def _glob(glob: str) -> re.Pattern[str]:
    """The grant-pattern glob (`*` any run, `?` one character), as `mcp_hub.authz.scopes` matches it."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob), re.DOTALL)


def matches_any(globs: Iterable[str], name: str) -> bool:
    return any(_glob(glob).fullmatch(name) is not None for glob in globs)


def globs_of(spec: VirtualServerSpec, kind: CatalogKind) -> list[str]:
    return {
        CatalogKind.TOOL: spec.tools,
        CatalogKind.PROMPT: spec.prompts,
        CatalogKind.RESOURCE: spec.resources,
        CatalogKind.RESOURCE_TEMPLATE: spec.resources,
    }[kind]


def change_touches(spec: VirtualServerSpec, change: CatalogChange) -> bool:
    """Does a catalog change add, change or remove anything this virtual server shows? (its list_changed)"""
    globs = globs_of(spec, change.kind)
    return any(matches_any(globs, name) for name in (*change.added, *change.changed, *change.removed))


@dataclass(frozen=True, slots=True)
class _Selection:
    """One snapshot of a section as a virtual server shows it."""

    source: Sequence[CatalogEntry]
    entries: list[CatalogEntry]
    names: list[str]
    by_name: dict[str, CatalogEntry]
    definitions: dict[str, Mapping[str, Any]]
    """By public name: the definition under this server's name and description."""
    sizes: dict[str, int]
    """By public name: the length of that definition's compact JSON."""
    local_names: dict[str, str]
    """Public name → the name on this server."""


class VirtualSection:
    """One kind of entry of a virtual server: the catalog's entries its globs pick, under its names."""

    def __init__(
        self,
        section: Section,
        globs: Sequence[str],
        rename: Mapping[str, str] | None = None,
        descriptions: Mapping[str, str] | None = None,
    ) -> None:
        self._section = section
        self._globs = tuple(globs)
        self._rename = dict(rename or {})
        self._descriptions = dict(descriptions or {})
        self._selection: _Selection | None = None

    @property
    def kind(self) -> CatalogKind:
        return self._section.kind

    @property
    def snapshot(self) -> Snapshot:
        return self._section.snapshot

    @property
    def view_key(self) -> Hashable:
        return self

    def _current(self) -> _Selection:
        source = self._section.entries()
        selection = self._selection
        if selection is None or selection.source is not source:
            selection = self._select(source)
            self._selection = selection
        return selection

    def _select(self, source: Sequence[CatalogEntry]) -> _Selection:
        picked = [entry for entry in source if matches_any(self._globs, entry.public_name)] if self._globs else []
        renamed_to = set(self._rename.values())
        by_name: dict[str, CatalogEntry] = {}
        definitions: dict[str, Mapping[str, Any]] = {}
        sizes: dict[str, int] = {}
        local_names: dict[str, str] = {}
        for entry in picked:
            local = self._rename.get(entry.public_name)
            if local is None:
                if entry.public_name in renamed_to:
                    continue  # another entry was renamed to this name: the rename wins
                local = entry.public_name
            by_name[local] = entry
            local_names[entry.public_name] = local
            definition = definitions[entry.public_name] = self._definition(entry, local)
            sizes[entry.public_name] = (
                entry.public_json_size if definition is entry.public_definition else len(compact_json(definition))
            )
        names = sorted(by_name)
        return _Selection(
            source=source,
            entries=[by_name[name] for name in names],
            names=names,
            by_name=by_name,
            definitions=definitions,
            sizes=sizes,
            local_names=local_names,
        )

    def _definition(self, entry: CatalogEntry, local: str) -> Mapping[str, Any]:
        description = self._descriptions.get(entry.public_name)
        if local == entry.public_name and description is None:
            return entry.public_definition
        definition = dict(entry.public_definition)
        if entry.kind in (CatalogKind.TOOL, CatalogKind.PROMPT):
            definition["name"] = local
        if description is not None:
            definition["description"] = description
        return definition

    def get(self, name: str) -> CatalogEntry | None:
        return self._current().by_name.get(name)

    def entries(self) -> Sequence[CatalogEntry]:
        return self._current().entries

    def __len__(self) -> int:
        return len(self._current().entries)

    def local_name(self, entry: CatalogEntry) -> str:
        return self._current().local_names.get(entry.public_name, entry.public_name)

    def definition(self, entry: CatalogEntry) -> Mapping[str, Any]:
        return self._current().definitions.get(entry.public_name, entry.public_definition)

    def page(
        self,
        cursor: str | None,
        size: int,
        visible: Callable[[str], bool] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        selection = self._current()
        return page_of(
            selection.entries,
            selection.names,
            lambda entry: selection.local_names[entry.public_name],
            cursor,
            size,
            visible,
            definition_of=lambda entry: selection.definitions[entry.public_name],
            size_of=lambda entry: selection.sizes[entry.public_name],
            max_bytes=max_bytes,
        )


class VirtualView(SectionedView[VirtualSection]):
    """The catalog as a virtual server shows it: a curated subset, tools and prompts under its names."""

    def __init__(self, catalog: Catalog, spec: VirtualServerSpec) -> None:
        super().__init__(
            VirtualSection(catalog.tools, spec.tools, spec.rename, spec.descriptions),
            VirtualSection(catalog.prompts, spec.prompts, spec.rename, spec.descriptions),
            VirtualSection(catalog.resources, spec.resources),
            VirtualSection(catalog.templates, spec.resources),
        )
        self.spec = spec
        self._catalog = catalog

    @property
    def name(self) -> str:
        return self.spec.name

    def resolve_resource(self, uri: str) -> ResourceTarget:
        """A public URI this server lists, or an expansion of a template it lists (never another's)."""
        target = self._catalog.resolve_resource(uri)
        if target.listed is not None and self._resources.get(target.listed.public_name) is not None:
            return target
        if target.template is not None and self._templates.get(target.template.public_name) is not None:
            return target
        raise ResourceNotFoundError(uri)

    def tool_exists(self, name: str) -> bool:
        return self._tools.get(name) is not None

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        tool = self._tools.get(name)
        schema = tool.definition.get("inputSchema") if tool is not None else None
        return cast("Mapping[str, Any]", schema) if isinstance(schema, Mapping) else None

    def public_tool_name(self, name: str) -> str | None:
        tool = self._tools.get(name)
        return tool.public_name if tool is not None else None

    def offer(self, connector_id: str) -> ConnectorOffer:
        return self._catalog.offer(connector_id)

    def connectors(self) -> set[ConnectorId]:
        sections = (self._tools, self._prompts, self._resources, self._templates)
        return {entry.connector_id for section in sections for entry in section.entries()}

    def localize(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        del method
        return result  # resources keep their public URIs here


# --- search -----------------------------------------------------------------------------------------------------

_WORD: Final = re.compile(r"[a-z0-9]+")
_NAME_WORD: Final = 3.0
_NAME_PART: Final = 1.5
_DESCRIPTION_WORD: Final = 1.0
_SUMMARY_CHARS: Final = 200


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class NamedTools(Protocol):
    """A tool section with the names and definitions its clients see (`Section` names them publicly)."""

    def entries(self) -> Sequence[CatalogEntry]: ...


def _public_name(entry: CatalogEntry) -> str:
    return entry.public_name


def _public_definition(entry: CatalogEntry) -> Mapping[str, Any]:
    return entry.public_definition


def _downstream_name(entry: CatalogEntry) -> str:
    return entry.downstream_name


def _downstream_definition(entry: CatalogEntry) -> Mapping[str, Any]:
    return entry.definition


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the name a caller calls it by, and a compact summary (no schema)."""

    name: str
    description: str
    score: float
    arguments: tuple[str, ...]
    required: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "arguments": list(self.arguments)} | (
            {"required": list(self.required)} if self.required else {}
        )


class SearchIndex:
    """A ranked index over one reader's tools, rebuilt when the catalog's snapshot changes."""

    def __init__(
        self,
        section: NamedTools,
        *,
        name_of: Callable[[CatalogEntry], str] = _public_name,
        definition_of: Callable[[CatalogEntry], Mapping[str, Any]] = _public_definition,
    ) -> None:
        self._section = section
        self._name_of = name_of
        self._definition_of = definition_of
        self._source: Sequence[CatalogEntry] | None = None
        self._entries: list[CatalogEntry] = []
        self._postings: dict[str, dict[int, float]] = {}
        self._names: list[str] = []

    @classmethod
    def over(cls, section: NamedTools) -> SearchIndex:
        """The index of a reader's tools, under the names its clients use."""
        if isinstance(section, VirtualSection):
            return cls(section, name_of=section.local_name, definition_of=section.definition)
        if isinstance(section, ConnectorSection):
            return cls(section, name_of=_downstream_name, definition_of=_downstream_definition)
        return cls(section)

    def _current(self) -> None:
        source = self._section.entries()
        if source is self._source:
            return
        entries = list(source)
        postings: dict[str, dict[int, float]] = {}
        names: list[str] = []
        for position, entry in enumerate(entries):
            name = self._name_of(entry)
            names.append(name.lower())
            weights: dict[str, float] = {}
            for word in _words(str(self._definition_of(entry).get("description") or "")):
                weights[word] = max(weights.get(word, 0.0), _DESCRIPTION_WORD)
            for word in _words(name):
                weights[word] = _NAME_WORD
            for word, weight in weights.items():
                postings.setdefault(word, {})[position] = weight
        self._entries, self._postings, self._names, self._source = entries, postings, names, source

    def search(self, query: str, limit: int, visible: Callable[[str], bool] | None) -> list[Hit]:
        """The best `limit` tools for `query` that `visible(public_name)` lets the caller see."""
        self._current()
        terms = list(dict.fromkeys(_words(query)))
        if not terms or limit <= 0:
            return []
        total = len(self._entries) or 1
        scores: dict[int, float] = {}
        for term in terms:
            posting = self._postings.get(term)
            if posting:
                rarity = math.log(1 + total / len(posting))
                for position, weight in posting.items():
                    scores[position] = scores.get(position, 0.0) + weight * rarity
            elif len(term) >= 3:
                # Part of a name ("weather" in "get_weather_forecast" is a word, "weath" is a part).
                rarity = math.log(1 + total)
                for position, name in enumerate(self._names):
                    if term in name:
                        scores[position] = scores.get(position, 0.0) + _NAME_PART * rarity
        ranked = heapq.nsmallest(len(scores), scores.items(), key=lambda item: (-item[1], self._names[item[0]]))
        hits: list[Hit] = []
        for position, score in ranked:
            entry = self._entries[position]
            if visible is not None and not visible(entry.public_name):
                continue
            hits.append(self._hit(entry, score))
            if len(hits) == limit:
                break
        return hits

    def _hit(self, entry: CatalogEntry, score: float) -> Hit:
        definition = self._definition_of(entry)
        description = " ".join(str(definition.get("description") or "").split())
        if len(description) > _SUMMARY_CHARS:
            description = description[: _SUMMARY_CHARS - 1] + "…"
        schema = definition.get("inputSchema")
        properties: Mapping[str, Any] = {}
        required: Sequence[Any] = ()
        if isinstance(schema, Mapping):
            found = cast("Mapping[str, Any]", schema).get("properties")
            properties = cast("Mapping[str, Any]", found) if isinstance(found, Mapping) else {}
            listed = cast("Mapping[str, Any]", schema).get("required")
            required = cast("Sequence[Any]", listed) if isinstance(listed, list) else ()
        return Hit(
            name=self._name_of(entry),
            description=description,
            score=round(score, 3),
            arguments=tuple(str(key) for key in properties),
            required=tuple(str(item) for item in required),
        )
