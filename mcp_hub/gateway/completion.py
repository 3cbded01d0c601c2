"""`completion/complete` through the hub (https://modelcontextprotocol.io/specification/2026-07-28/server/utilities/completion).

A completion names a prompt (`ref/prompt`, by public name) or a resource template (`ref/resource`, by public
URI template); the request goes to the connector that owns it, with the reference in the connector's own
names, if the caller may use that prompt or template. Unknown references are `-32602`.
"""

from __future__ import annotations

from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server

from mcp_hub.catalog.views import CatalogReader
from mcp_hub.errors import ResourceNotFoundError
from mcp_hub.gateway.caller import CallerResolver
from mcp_hub.gateway.forwarding import Forwarder, Target


class CompletionRequests:
    """The completion method of the hub's MCP server."""

    def __init__(self, catalog: CatalogReader, forwarder: Forwarder, resolve: CallerResolver) -> None:
        self._catalog = catalog
        self._forwarder = forwarder
        self._resolve = resolve

    def register(self, server: Server[Any]) -> None:
        server.add_request_handler("completion/complete", types.CompleteRequestParams, self.complete)

    async def complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        wire = params.model_dump(by_alias=True, mode="json", exclude_none=True)
        wire.pop("_meta", None)
        reference = params.ref
        if isinstance(reference, types.PromptReference):
            entry = self._catalog.resolve_prompt(reference.name)
            await self._forwarder.require_grant(asking, entry.public_name, "prompt", "completion/complete")
            wire["ref"] = {**wire["ref"], "name": entry.downstream_name}
        else:
            entry = self._catalog.templates.get(reference.uri) or self._catalog.resources.get(reference.uri)
            if entry is None:
                raise ResourceNotFoundError(reference.uri)
            await self._forwarder.require_grant(asking, entry.public_name, "resource", "completion/complete")
            wire["ref"] = {**wire["ref"], "uri": entry.downstream_name}
        return await self._forwarder.forward("completion/complete", Target.of(entry), wire, asking.caller)
