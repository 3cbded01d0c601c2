"""`tools/list` and `tools/call` through the hub (https://modelcontextprotocol.io/specification/2026-07-28/server/tools).

`tools/list` is answered from the catalog; `tools/call` is decided (grants), admitted (limits), held for a human
when an approval rule matches (`mcp_hub.approvals`), then answered from the cache or coalesced with an identical
call in flight when a cache rule names the tool (`mcp_hub.limits.cache`), else forwarded
(`mcp_hub.gateway.forwarding`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from starlette.requests import Request

from mcp_hub.approvals.policy import Requirement
from mcp_hub.approvals.service import ApprovalService, HeldCall
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.catalog.catalog import CatalogEntry
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.relay import Relay
from mcp_hub.errors import TooManyPendingError, UnknownToolError
from mcp_hub.gateway.caller import Asking, CallerResolver
from mcp_hub.gateway.context import HubContext
from mcp_hub.gateway.errors import limited_result, tool_result_for
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.guard import LIMITS_CHARGED_KEY
from mcp_hub.gateway.list_requests import list_result
from mcp_hub.gateway.lists import Lists
from mcp_hub.gateway.questions import Questions
from mcp_hub.gateway.tasks import ApprovalTasks
from mcp_hub.limits.cache import CallCache, Served, cache_key
from mcp_hub.limits.calls import CallLimits, arguments_digest
from mcp_hub.telemetry.tracing import Tracing
from mcp_hub.tool_results import hub_error_result


class ToolRequests:
    """The tool methods of the hub's MCP server."""

    def __init__(
        self,
        catalog: CatalogReader,
        forwarder: Forwarder,
        resolve: CallerResolver,
        lists: Lists,
        questions: Questions,
        *,
        approvals: ApprovalService | None,
        tasks: ApprovalTasks | None,
        limits: CallLimits | None = None,
        cache: CallCache | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._tracing = tracing if tracing is not None else Tracing.off()
        self._limits = limits
        self._cache = cache
        self._questions = questions
        self._catalog = catalog
        self._forwarder = forwarder
        self._resolve = resolve
        self._lists = lists
        self._approvals = approvals
        self._tasks = tasks

    def register(self, server: Server[Any]) -> None:
        # Registered as raw handlers: they return wire dicts, which the SDK validates once on the way out.
        server.add_request_handler("tools/list", types.PaginatedRequestParams, self.list)
        server.add_request_handler("tools/call", types.CallToolRequestParams, self.call)

    async def list(self, ctx: HubContext, params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await list_result(self._lists, self._catalog.tools, "tools", asking, params.cursor)

    async def call(self, ctx: HubContext, params: types.CallToolRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        tool = self._catalog.tools.get(params.name)
        if tool is None:
            await self._forwarder.audit_not_found("tools/call", params.name, asking.caller)
            raise UnknownToolError(params.name)
        with self._tracing.span("hub.policy"):
            await self._forwarder.require_grant(asking, tool.public_name, "tool", "tools/call")
            if self._limits is not None and asking.principal is not None and not _charged_by_the_guard(ctx):
                principal = asking.principal
                refusal = await self._limits.check(
                    principal.agent_id, principal.agent_name, tool.public_name, params.arguments
                )
                if refusal is not None:
                    await self._forwarder.audit_limited(
                        tool.public_name, asking.caller, refusal.outcome, refusal.message
                    )
                    return limited_result(refusal)
            requirement = await self._requirement(asking, tool, params)
        return self._catalog.localize(
            "tools/call", await self._held_or_forwarded(ctx, asking, tool, params, requirement)
        )

    async def _requirement(
        self, asking: Asking, tool: CatalogEntry, params: types.CallToolRequestParams
    ) -> Requirement | None:
        """The approval the call needs (None: none, or no approvals here)."""
        if self._approvals is None or self._tasks is None:
            return None
        return await self._approvals.requirement(asking.principal, HeldSubject.of_entry(tool), params.arguments or {})

    def _cacheable_for(self, tool: CatalogEntry) -> float | None:
        """The TTL of the cache rule naming the tool; None for a tool no rule names or any approval rule could
        hold (issue 10 §4: never cached, whatever a cache rule says)."""
        if self._cache is None:
            return None
        ttl = self._cache.ttl_for(tool.connector_id, tool.public_name)
        if ttl is None or (self._approvals is not None and self._approvals.may_hold(HeldSubject.of_entry(tool))):
            return None
        return ttl

    async def _held_or_forwarded(
        self,
        ctx: HubContext,
        asking: Asking,
        tool: CatalogEntry,
        params: types.CallToolRequestParams,
        requirement: Requirement | None,
    ) -> dict[str, Any]:
        async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        wants_progress = progress_token_from_params(ctx.params) is not None
        if requirement is not None and self._tasks is not None:
            if asking.principal is None or asking.access is None:
                # Fail closed: an approval is bound to an agent, and without auth there is none.
                await self._forwarder.audit_refusal(tool.public_name, asking.caller)
                return hub_error_result(
                    f"{params.name} needs a human's approval, which needs an authenticated agent: turn [auth] on"
                )
            call = HeldCall(
                principal=asking.principal,
                access=asking.access,
                subject=HeldSubject.of_entry(tool),
                arguments=dict(params.arguments or {}),
                requirement=requirement,
                session=asking.caller.session,
                report_progress=relay_progress if wants_progress else None,
            )
            try:
                return await self._tasks.answer_held_call(ctx, call)
            except TooManyPendingError as exc:
                return tool_result_for(exc)

        async def send(relay: Relay, extra: Mapping[str, Any], on_progress: ProgressFnT | None) -> dict[str, Any]:
            watched = _WatchedRelay(relay)

            async def run() -> dict[str, Any]:
                return await self._forwarder.call_tool(
                    tool.public_name,
                    params.arguments,
                    asking.caller,
                    on_progress=on_progress,
                    relay=watched,
                    extra=extra,
                )

            ttl = self._cacheable_for(tool)
            if self._cache is None or ttl is None or extra:
                # `extra`: answers to the downstream's questions, which belong to this caller's call only.
                return await run()
            principal = asking.principal
            context = f"{principal.agent_id}/{principal.user_id or ''}" if principal is not None else "-"
            key = cache_key(tool.public_name, tool.sha256, arguments_digest(params.arguments), context)
            answer = await self._cache.call(key, ttl, run, personal=lambda: watched.asked)
            if answer.served is not Served.RAN:
                await self._forwarder.audit_served(tool.public_name, asking.caller, answer.result, answer.served)
            return answer.result

        if asking.principal is not None and self._approvals is not None and self._approvals.watches(tool.public_name):
            # Admitted to run: an approval rule's `after` looks for this call later (threat T18).
            await self._approvals.admitted(asking.principal, tool.public_name)
        era = self._forwarder.era_of(tool.connector_id)
        return await self._questions.forward(ctx, self._resolve.principal_key(ctx), tool.connector_id, era, send)


class _WatchedRelay:
    """A relay that remembers whether the downstream asked the caller anything (such a result is theirs alone)."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self.asked = False

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        return self._relay.client_capabilities

    @property
    def log_level(self) -> str | None:
        return self._relay.log_level

    async def log(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        await self._relay.log(connector_id, params)

    async def ask(self, connector_id: ConnectorId, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        self.asked = True
        return await self._relay.ask(connector_id, method, params)


def _charged_by_the_guard(ctx: HubContext) -> bool:
    """Did the bearer guard already admit this call against the limits (a 2026-07-28 HTTP request)?"""
    request = ctx.request
    return isinstance(request, Request) and bool(request.scope.get(LIMITS_CHARGED_KEY))
