"""`tools/list` and `tools/call` through the hub (https://modelcontextprotocol.io/specification/2026-07-28/server/tools).

`tools/list` is answered from the catalog; `tools/call` is decided (grants), held for a human when an approval
rule matches (`mcp_hub.approvals`), then forwarded (`mcp_hub.gateway.forwarding`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from starlette.requests import Request

from mcp_hub.approvals.service import ApprovalService, HeldCall
from mcp_hub.approvals.subject import HeldSubject
from mcp_hub.authz.scopes import required_scope
from mcp_hub.catalog.catalog import CatalogEntry
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.downstream.relay import Relay
from mcp_hub.errors import AccessDeniedError, TooManyPendingError, UnknownToolError
from mcp_hub.gateway.caller import Asking, CallerResolver
from mcp_hub.gateway.errors import limited_result, tool_result_for
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.guard import LIMITS_CHARGED_KEY
from mcp_hub.gateway.lists import Lists
from mcp_hub.gateway.questions import Questions
from mcp_hub.gateway.tasks import ApprovalTasks
from mcp_hub.limits.calls import CallLimits
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
    ) -> None:
        self._limits = limits
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

    async def list(self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        return await self._lists.page(self._catalog.tools, "tools", asking, params.cursor)

    async def call(self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        asking = await self._resolve(ctx)
        tool = self._catalog.tools.get(params.name)
        if tool is None:
            await self._forwarder.audit_not_found("tools/call", params.name, asking.caller)
            raise UnknownToolError(params.name)
        if not asking.allows(tool.public_name, "tool"):
            await self._forwarder.audit_refusal(tool.public_name, asking.caller)
            raise AccessDeniedError(tool.public_name, required_scope("tool", tool.public_name))
        if self._limits is not None and asking.principal is not None and not _charged_by_the_guard(ctx):
            principal = asking.principal
            refusal = await self._limits.check(
                principal.agent_id, principal.agent_name, tool.public_name, params.arguments
            )
            if refusal is not None:
                await self._forwarder.audit_limited(tool.public_name, asking.caller, refusal.outcome, refusal.message)
                return limited_result(refusal)
        return self._catalog.localize("tools/call", await self._held_or_forwarded(ctx, asking, tool, params))

    async def _held_or_forwarded(
        self,
        ctx: ServerRequestContext[Any, Any],
        asking: Asking,
        tool: CatalogEntry,
        params: types.CallToolRequestParams,
    ) -> dict[str, Any]:
        async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        wants_progress = progress_token_from_params(ctx.params) is not None
        if self._approvals is not None and self._tasks is not None:
            arguments = dict(params.arguments or {})
            subject = HeldSubject.of_entry(tool)
            requirement = self._approvals.requirement(asking.principal, subject, arguments)
            if requirement is not None:
                if asking.principal is None or asking.access is None:
                    # Fail closed: an approval is bound to an agent, and without auth there is none.
                    await self._forwarder.audit_refusal(tool.public_name, asking.caller)
                    return hub_error_result(
                        f"{params.name} needs a human's approval, which needs an authenticated agent: turn [auth] on"
                    )
                call = HeldCall(
                    principal=asking.principal,
                    access=asking.access,
                    subject=subject,
                    arguments=arguments,
                    requirement=requirement,
                    session=asking.caller.session,
                    report_progress=relay_progress if wants_progress else None,
                )
                try:
                    return await self._tasks.answer_held_call(ctx, call)
                except TooManyPendingError as exc:
                    return tool_result_for(exc)

        async def send(relay: Relay, extra: Mapping[str, Any], on_progress: ProgressFnT | None) -> dict[str, Any]:
            return await self._forwarder.call_tool(
                tool.public_name, params.arguments, asking.caller, on_progress=on_progress, relay=relay, extra=extra
            )

        era = self._forwarder.era_of(tool.connector_id)
        return await self._questions.forward(ctx, self._resolve.principal_key(ctx), tool.connector_id, era, send)


def _charged_by_the_guard(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Did the bearer guard already admit this call against the limits (a 2026-07-28 HTTP request)?"""
    request = ctx.request
    return isinstance(request, Request) and bool(request.scope.get(LIMITS_CHARGED_KEY))
