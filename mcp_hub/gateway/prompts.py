"""`prompts/list` and `prompts/get` through the hub (https://modelcontextprotocol.io/specification/2026-07-28/server/prompts).

Prompts are named like tools (`<connector>__<prompt>`), listed from the catalog, decided by `prompt:` grants,
and a get is forwarded to the owning connector under its own name, audited like a tool call; an approval rule
naming the prompt holds the get (`holds.py`).
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
from mcp_hub.errors import UnknownPromptError
from mcp_hub.gateway.caller import CallerResolver
from mcp_hub.gateway.context import HubContext
from mcp_hub.gateway.forwarding import Forwarder, Target
from mcp_hub.gateway.holds import Holds
from mcp_hub.gateway.list_requests import list_result
from mcp_hub.gateway.lists import Lists
from mcp_hub.gateway.questions import Questions


class PromptRequests:
    """The prompt methods of the hub's MCP server."""

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
        server.add_request_handler("prompts/list", types.PaginatedRequestParams, self.list)
        server.add_request_handler("prompts/get", types.GetPromptRequestParams, self.get)

    async def list(self, ctx: HubContext, params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await list_result(self._lists, self._catalog.prompts, "prompts", asking, params.cursor)

    async def get(self, ctx: HubContext, params: types.GetPromptRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        prompt = self._catalog.prompts.get(params.name)
        if prompt is None:
            await self._forwarder.audit_not_found("prompts/get", params.name, asking.caller)
            raise UnknownPromptError(params.name)
        await self._forwarder.require_grant(asking, prompt.public_name, "prompt", "prompts/get")
        held = await self._holds.answer(ctx, asking, HeldSubject.of_entry(prompt), params.arguments or {})
        if held is not None:
            return self._catalog.localize("prompts/get", held)
        forwarded: dict[str, Any] = {"name": prompt.downstream_name}
        if params.arguments is not None:
            forwarded["arguments"] = params.arguments

        async def send(relay: Relay, extra: Mapping[str, Any], on_progress: ProgressFnT | None) -> dict[str, Any]:
            return await self._forwarder.forward(
                "prompts/get",
                Target.of(prompt),
                {**forwarded, **extra},
                asking.caller,
                on_progress=on_progress,
                relay=relay,
            )

        era = self._forwarder.era_of(prompt.connector_id)
        result = await self._questions.forward(ctx, self._resolve.principal_key(ctx), prompt.connector_id, era, send)
        return self._catalog.localize("prompts/get", result)
