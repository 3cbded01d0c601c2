"""`resources/list`, `resources/templates/list` and `resources/read` through the hub
(https://modelcontextprotocol.io/specification/2026-07-28/server/resources).

Resources and templates are listed under public URIs (`mcp-hub://<connector>/<downstream URI>`,
`mcp_hub.catalog.names`) and decided by `resource:` grants over those URIs. A read is forwarded only for a URI
the hub handed out (a listed resource or an expansion of a listed template, `Catalog.resolve_resource`): any
other URI is `-32602` resource not found, never guessed at. Read results come back with public URIs. An
approval rule naming the URI holds the read (`holds.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.shared.dispatcher import ProgressFnT

from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.downstream.relay import Relay
from mcp_hub.errors import ResourceNotFoundError
from mcp_hub.gateway.caller import CallerResolver
from mcp_hub.gateway.context import HubContext
from mcp_hub.gateway.forwarding import Forwarder, Target
from mcp_hub.gateway.holds import Holds
from mcp_hub.gateway.list_requests import list_result
from mcp_hub.gateway.lists import Lists
from mcp_hub.gateway.questions import Questions


class ResourceRequests:
    """The resource methods of the hub's MCP server."""

    def __init__(
        self,
        catalog: CatalogReader,
        forwarder: Forwarder,
        resolve: CallerResolver,
        lists: Lists,
        questions: Questions,
        holds: Holds,
    ) -> None:
        self._holds = holds
        self._questions = questions
        self._catalog = catalog
        self._forwarder = forwarder
        self._resolve = resolve
        self._lists = lists

    def register(self, server: Server[Any]) -> None:
        server.add_request_handler("resources/list", types.PaginatedRequestParams, self.list)
        server.add_request_handler("resources/templates/list", types.PaginatedRequestParams, self.list_templates)
        server.add_request_handler("resources/read", types.ReadResourceRequestParams, self.read)

    async def list(self, ctx: HubContext, params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await list_result(self._lists, self._catalog.resources, "resources", asking, params.cursor)

    async def list_templates(self, ctx: HubContext, params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await list_result(self._lists, self._catalog.templates, "resourceTemplates", asking, params.cursor)

    async def read(self, ctx: HubContext, params: types.ReadResourceRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        uri = str(params.uri)
        try:
            target = self._catalog.resolve_resource(uri)
        except ResourceNotFoundError:
            await self._forwarder.audit_not_found("resources/read", uri, asking.caller)
            raise
        public = target.public_uri
        await self._forwarder.require_grant(asking, public, "resource", "resources/read")

        async def send(relay: Relay, extra: Mapping[str, Any], on_progress: ProgressFnT | None) -> dict[str, Any]:
            return await self._forwarder.forward(
                "resources/read",
                Target.of_resource(target),
                {"uri": target.downstream_uri, **extra},
                asking.caller,
                on_progress=on_progress,
                relay=relay,
            )

        held = await self._holds.answer(ctx, asking, HeldSubject.of_resource(target), {})
        if held is not None:
            result = held
        else:
            era = self._forwarder.era_of(target.connector_id)
            principal_key = self._resolve.principal_key(ctx)
            result = await self._questions.forward(ctx, principal_key, target.connector_id, era, send)
            if result.get("resultType") == "input_required":
                return result
        result = self._catalog.localize("resources/read", result)
        # 2026-07-28 reads carry caching hints: the downstream's lifetime (none: do not cache), and never a shared
        # cache for what grants decide (T27). The SDK drops both for a 2025-11-25 client.
        result.setdefault("ttlMs", 0)
        if asking.access is not None or result.get("cacheScope") not in ("public", "private"):
            result["cacheScope"] = "private"
        return result
