"""What a held request would use: a tool call, a prompt get or a resource read (issue 4, issue 9 §7).

Approval rules name tools, prompts and resources by public name or URI; an action is bound to one subject,
its method and its definition's hash, so a changed definition is never run on an approval given for another.
A read of a URI that expands a template is bound to that URI and to the template's definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mcp_hub.catalog.catalog import Catalog, CatalogEntry, ResourceTarget
from mcp_hub.domain import CatalogKind, ConnectorId
from mcp_hub.errors import ResourceNotFoundError

TOOLS_CALL: Final = "tools/call"
PROMPTS_GET: Final = "prompts/get"
RESOURCES_READ: Final = "resources/read"

_METHOD_OF_KIND: Final = {
    CatalogKind.TOOL: TOOLS_CALL,
    CatalogKind.PROMPT: PROMPTS_GET,
    CatalogKind.RESOURCE: RESOURCES_READ,
    CatalogKind.RESOURCE_TEMPLATE: RESOURCES_READ,
}
_SCOPE_KIND_OF_METHOD: Final = {TOOLS_CALL: "tool", PROMPTS_GET: "prompt", RESOURCES_READ: "resource"}


def scope_kind_of(method: str) -> str:
    """The grant kind (`tool`, `prompt`, `resource`) that covers a held request of `method`."""
    return _SCOPE_KIND_OF_METHOD[method]


@dataclass(frozen=True, slots=True)
class HeldSubject:
    """The one tool, prompt or resource URI a held request uses, and the definition an approval is bound to."""

    method: str
    public_name: str
    """The public tool or prompt name, or the public resource URI that is read."""
    connector_id: ConnectorId
    downstream_name: str
    """The downstream's own name, or its own URI."""
    sha256: str
    description: str

    @property
    def scope_kind(self) -> str:
        return scope_kind_of(self.method)

    @classmethod
    def of_entry(cls, entry: CatalogEntry) -> HeldSubject:
        """A tool or a prompt (or a listed resource) as the catalog lists it."""
        return cls(
            method=_METHOD_OF_KIND[entry.kind],
            public_name=entry.public_name,
            connector_id=entry.connector_id,
            downstream_name=entry.downstream_name,
            sha256=entry.sha256,
            description=str(entry.public_definition.get("description", "")),
        )

    @classmethod
    def of_resource(cls, target: ResourceTarget) -> HeldSubject:
        """A resource read: the URI read, bound to the listed resource or the template it expands."""
        defined_by = target.listed or target.template
        if defined_by is None:
            raise ValueError(f"{target.public_uri} resolves to neither a resource nor a template")
        return cls(
            method=RESOURCES_READ,
            public_name=target.public_uri,
            connector_id=target.connector_id,
            downstream_name=target.downstream_uri,
            sha256=defined_by.sha256,
            description=str(defined_by.public_definition.get("description", "")),
        )


def current_subject(catalog: Catalog, method: str, public_name: str) -> HeldSubject | None:
    """What `public_name` is in the catalog now (None: no longer offered), to check an approval still fits."""
    if method == RESOURCES_READ:
        try:
            return HeldSubject.of_resource(catalog.resolve_resource(public_name))
        except ResourceNotFoundError:
            return None
    section = catalog.prompts if method == PROMPTS_GET else catalog.tools
    entry = section.get(public_name)
    return HeldSubject.of_entry(entry) if entry is not None else None
