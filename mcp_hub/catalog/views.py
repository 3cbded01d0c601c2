"""Ways of reading the catalog: the whole of it under public names, or one connector under its own names.

The hub's MCP server reads the catalog through `CatalogReader`. `Catalog` itself is the reader behind `/mcp`
(public names and URIs, `mcp_hub.catalog.names`). `ConnectorView` is the reader behind a connector's profile,
`/mcp/s/<connector-id>` (issue 9 §10): that connector's tools, prompts, resources and templates under the names
and URIs the downstream gave them, as if the client spoke to the downstream itself. Either way the entries are
the catalog's own, so grants, approval rules and the audit trail see the public names they always see.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

from mcp_hub.catalog.catalog import (
    Catalog,
    CatalogEntry,
    ConnectorOffer,
    ResourceTarget,
    Section,
    Snapshot,
    compact_json,
    page_of,
)
from mcp_hub.catalog.content import map_uris
from mcp_hub.catalog.names import public_uri, split_public_uri
from mcp_hub.catalog.uri_templates import matches_template
from mcp_hub.domain import CatalogKind, ConnectorId
from mcp_hub.errors import ResourceNotFoundError, UnknownPromptError, UnknownToolError


class SectionReader(Protocol):
    """One kind of entry, as a reader names it."""

    @property
    def kind(self) -> CatalogKind: ...

    @property
    def snapshot(self) -> Snapshot:
        """The version of the catalog section this reader shows (a new one after any change to it)."""
        ...

    @property
    def view_key(self) -> Hashable:
        """Equal for readers that show the same entries under the same names (what keys cached pages)."""
        ...

    def get(self, name: str) -> CatalogEntry | None: ...

    def entries(self) -> Sequence[CatalogEntry]: ...

    def page(
        self,
        cursor: str | None,
        size: int,
        visible: Callable[[str], bool] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        """At most `size` definitions after `cursor` that `visible` accepts (by public name), and with `max_bytes`
        only as many as fit in it (`mcp_hub.catalog.catalog.within`); the cursor of the next page, if any."""
        ...

    def __len__(self) -> int: ...


class CatalogReader(Protocol):
    """What the hub's MCP server reads the catalog through."""

    @property
    def tools(self) -> SectionReader: ...

    @property
    def prompts(self) -> SectionReader: ...

    @property
    def resources(self) -> SectionReader: ...

    @property
    def templates(self) -> SectionReader: ...

    def resolve_prompt(self, name: str) -> CatalogEntry: ...

    def resolve_resource(self, uri: str) -> ResourceTarget: ...

    def tool_exists(self, name: str) -> bool: ...

    def input_schema(self, name: str) -> Mapping[str, Any] | None: ...

    def offer(self, connector_id: str) -> ConnectorOffer: ...

    def connectors(self) -> set[ConnectorId]: ...

    def localize(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        """A forwarded result (public URIs in it) as this reader's clients name things."""
        ...


class ConnectorSection:
    """One kind of entry of one connector, under the downstream's own names."""

    def __init__(self, section: Section, connector_id: ConnectorId) -> None:
        self._section = section
        self._connector_id = connector_id

    @property
    def kind(self) -> CatalogKind:
        return self._section.kind

    @property
    def snapshot(self) -> Snapshot:
        return self._section.snapshot

    @property
    def view_key(self) -> Hashable:
        return (self._section, self._connector_id)

    def get(self, name: str) -> CatalogEntry | None:
        return self._section.by_downstream_name(self._connector_id, name)

    def entries(self) -> Sequence[CatalogEntry]:
        return sorted(self._section.of_connector_unsorted(self._connector_id), key=lambda entry: entry.downstream_name)

    def __len__(self) -> int:
        return len(self.entries())

    def page(
        self,
        cursor: str | None,
        size: int,
        visible: Callable[[str], bool] | None = None,
        *,
        max_bytes: int | None = None,
    ) -> tuple[list[Mapping[str, Any]], str | None]:
        entries = self.entries()
        keys = [entry.downstream_name for entry in entries]
        return page_of(
            entries,
            keys,
            lambda entry: entry.downstream_name,
            cursor,
            size,
            visible,
            definition_of=lambda entry: entry.definition,
            # A profile shows the downstream's names: its entries are measured as its pages are cut.
            size_of=lambda entry: len(compact_json(entry.definition)),
            max_bytes=max_bytes,
        )


SectionT = TypeVar("SectionT", bound=SectionReader)


class SectionedView(Generic[SectionT]):
    """A reader made of four sections (a profile, a virtual server): their accessors and the name lookups."""

    def __init__(self, tools: SectionT, prompts: SectionT, resources: SectionT, templates: SectionT) -> None:
        self._tools = tools
        self._prompts = prompts
        self._resources = resources
        self._templates = templates

    @property
    def tools(self) -> SectionT:
        return self._tools

    @property
    def prompts(self) -> SectionT:
        return self._prompts

    @property
    def resources(self) -> SectionT:
        return self._resources

    @property
    def templates(self) -> SectionT:
        return self._templates

    def resolve(self, name: str) -> CatalogEntry:
        tool = self._tools.get(name)
        if tool is None:
            raise UnknownToolError(name)
        return tool

    def resolve_prompt(self, name: str) -> CatalogEntry:
        prompt = self._prompts.get(name)
        if prompt is None:
            raise UnknownPromptError(name)
        return prompt


class ConnectorView(SectionedView[ConnectorSection]):
    """The catalog as a connector's profile shows it: that connector only, under its own names."""

    def __init__(self, catalog: Catalog, connector_id: ConnectorId) -> None:
        super().__init__(
            ConnectorSection(catalog.tools, connector_id),
            ConnectorSection(catalog.prompts, connector_id),
            ConnectorSection(catalog.resources, connector_id),
            ConnectorSection(catalog.templates, connector_id),
        )
        self.connector_id = connector_id
        self._catalog = catalog

    def resolve_resource(self, uri: str) -> ResourceTarget:
        listed = self._resources.get(uri)
        if listed is not None:
            return ResourceTarget(self.connector_id, uri, listed.public_name, listed, None)
        for template in self._templates.entries():
            if matches_template(template.downstream_name, uri):
                return ResourceTarget(self.connector_id, uri, public_uri(self.connector_id, uri), None, template)
        raise ResourceNotFoundError(uri)

    def tool_exists(self, name: str) -> bool:
        return self._tools.get(name) is not None

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        tool = self._tools.get(name)
        schema = tool.definition.get("inputSchema") if tool is not None else None
        return cast("Mapping[str, Any]", schema) if isinstance(schema, Mapping) else None

    def offer(self, connector_id: str) -> ConnectorOffer:
        return self._catalog.offer(connector_id)

    def connectors(self) -> set[ConnectorId]:
        return {self.connector_id} & self._catalog.connectors()

    def localize(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        return map_uris(method, result, self.local_uri)

    def local_uri(self, uri: str) -> str:
        """A public URI of this connector as the downstream names it (others stay as they are)."""
        split = split_public_uri(uri)
        return split[1] if split is not None and split[0] == self.connector_id else uri
