"""What the hub tells a client it can do: capabilities that tell the truth, per caller (issue 9 §6).

The hub registers handlers for every feature, so the SDK would advertise them all. `initialize` (2025-11-25,
https://modelcontextprotocol.io/specification/2025-11-25/basic/lifecycle#capability-negotiation) and
`server/discover` (2026-07-28) instead advertise `prompts`, `resources` (with `subscribe`), `completions` and
`logging` exactly when at least one connector the caller can see declares them. A connector is visible to a
caller when the caller may see at least one of its tools, prompts, resources or templates. `tools` is always
advertised (the hub's own surface), and every `listChanged` is true: the hub announces changes in both eras.
"""

from __future__ import annotations

from typing import Any, Final, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from mcp_hub.catalog.catalog import ConnectorOffer
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.domain import ConnectorId
from mcp_hub.gateway.caller import Asking, CallerResolver
from mcp_hub.gateway.readiness import Readiness

_SHAPED_METHODS: Final = frozenset({"initialize", "server/discover"})


def visible_connectors(catalog: CatalogReader, asking: Asking) -> set[ConnectorId]:
    """The connectors of which the caller may see something."""
    if asking.access is None:
        return catalog.connectors()
    found: set[ConnectorId] = set()
    for section in (catalog.tools, catalog.prompts, catalog.resources, catalog.templates):
        kind = section.kind.scope_kind
        for entry in section.entries():
            if entry.connector_id not in found and asking.allows(entry.public_name, kind):
                found.add(entry.connector_id)
    return found


def shaped_capabilities(capabilities: dict[str, Any], offers: list[ConnectorOffer]) -> dict[str, Any]:
    """`capabilities` (what the SDK derived from the handlers) cut down to what `offers` back."""
    shaped = {
        key: value
        for key, value in capabilities.items()
        if key not in ("prompts", "resources", "completions", "logging")
    }
    if any(offer.prompts for offer in offers):
        shaped["prompts"] = {"listChanged": True}
    if any(offer.resources for offer in offers):
        shaped["resources"] = {"subscribe": any(offer.subscribe for offer in offers), "listChanged": True}
    if any(offer.completions for offer in offers):
        shaped["completions"] = {}
    if any(offer.logging for offer in offers):
        shaped["logging"] = {}
    return shaped


class CapabilityShaper:
    """Server middleware: rewrites the capabilities of `initialize` and `server/discover` for the caller."""

    def __init__(self, catalog: CatalogReader, resolve: CallerResolver, readiness: Readiness) -> None:
        self._catalog = catalog
        self._resolve = resolve
        self._readiness = readiness

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method not in _SHAPED_METHODS:
            return await call_next(ctx)
        # Decided before the handshake runs: `initialize` is handled inline, and this only reads caches.
        asking = await self._resolve(ctx)
        await self._readiness.settled()  # what connectors offer is known once they have listed
        result = await call_next(ctx)
        if not isinstance(result, dict) or not isinstance(result.get("capabilities"), dict):
            return result
        offers = [self._catalog.offer(connector) for connector in sorted(visible_connectors(self._catalog, asking))]
        capabilities = cast("dict[str, Any]", result["capabilities"])
        return {**result, "capabilities": shaped_capabilities(capabilities, offers)}
