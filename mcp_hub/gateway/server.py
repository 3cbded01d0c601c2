"""The hub's MCP server: tools/list from the catalog, tools/call through the forwarder.

Implements the server side of MCP tools for both eras the hub serves
(https://modelcontextprotocol.io/specification/2026-07-28/server/tools and
https://modelcontextprotocol.io/specification/2025-11-25/server/tools): lists are paginated, in a
deterministic order, and carry `ttlMs`/`cacheScope` on 2026-07-28
(https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/caching).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp_types as types
from mcp.server.context import ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from starlette.requests import Request

import mcp_hub
from mcp_hub.approvals.service import ApprovalService, HeldCall
from mcp_hub.authz.decisions import AccessDecider, Principal, ToolAccess
from mcp_hub.authz.scopes import required_scope
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.domain import Caller
from mcp_hub.errors import AccessDeniedError, InvalidTokenError, TooManyPendingError
from mcp_hub.gateway.errors import MapHubErrors, tool_result_for
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.guard import principal_of
from mcp_hub.gateway.notifications import ChangeNotifier
from mcp_hub.gateway.tasks import ApprovalTasks
from mcp_hub.tool_results import hub_error_result

INSTRUCTIONS = (
    "mcp-hub federates several MCP servers. Tool names are '<connector>__<tool>': the part before the "
    "double underscore names the downstream server that runs the tool."
)


class HubServer(Server[Any]):
    """A low-level SDK server that advertises `listChanged` to 2025-11-25 clients too."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def _caller_of(ctx: ServerRequestContext[Any, Any]) -> Caller:
    """Self-reported identity (clientInfo and peer address): audit context, never a security input."""
    client_info: types.Implementation | None = None
    if ctx.session.client_params is not None:
        client_info = ctx.session.client_params.client_info
    elif ctx.meta is not None:
        raw_info = ctx.meta.get(types.CLIENT_INFO_META_KEY)
        if isinstance(raw_info, dict):
            name = raw_info.get("name")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
            client_info = types.Implementation(name=str(name), version="") if name else None  # pyright: ignore[reportUnknownArgumentType]
    label = client_info.name if client_info is not None else "unknown"
    session_id: str | None = None
    request = ctx.request
    if isinstance(request, Request):
        peer = request.client.host if request.client is not None else "?"
        label = f"{label}@{peer}"
        session_id = request.headers.get("mcp-session-id")
    else:
        label = f"{label}@stdio"
    return Caller(client=label, session=session_id)


def build_server(
    catalog: Catalog,
    forwarder: Forwarder,
    notifier: ChangeNotifier,
    *,
    page_size: int,
    list_ttl_ms: int,
    decider: AccessDecider | None = None,
    stdio_principal: Principal | None = None,
    approvals: ApprovalService | None = None,
    middleware: Sequence[ServerMiddleware[Any]] = (),
) -> HubServer:
    """The hub's MCP server, wired to its catalog, forwarder and change notifier.

    With a `decider` (auth enabled) every list and call is decided for the caller: the principal the
    bearer middleware put in the request scope, or `stdio_principal` for the stdio front door. A request
    with neither is refused (fail closed).
    """

    async def access_of(ctx: ServerRequestContext[Any, Any]) -> tuple[Principal, ToolAccess] | None:
        if decider is None:
            return None
        request = ctx.request
        if isinstance(request, Request):
            found = principal_of(request.scope)
            if found is not None:
                return found
        elif stdio_principal is not None:
            return stdio_principal, await decider.access(stdio_principal)
        raise InvalidTokenError("no authenticated principal for this request")

    tasks = ApprovalTasks(approvals, access_of) if approvals is not None else None

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams) -> dict[str, Any]:
        decided = await access_of(ctx)
        tools, next_cursor = catalog.page(params.cursor, page_size, decided[1].allows if decided is not None else None)
        result: dict[str, Any] = {
            "resultType": "complete",
            "tools": tools,
            "ttlMs": list_ttl_ms,
            # T27: a list filtered for this caller must not be reused for another.
            "cacheScope": "public" if decided is None else "private",
        }
        if next_cursor is not None:
            result["nextCursor"] = next_cursor
        return result

    async def call_tool(ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams) -> dict[str, Any]:
        async def relay_progress(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)

        wants_progress = progress_token_from_params(ctx.params) is not None
        decided = await access_of(ctx)
        caller = _caller_of(ctx)
        if decided is not None:
            principal, access = decided
            caller = Caller(client=principal.label, session=caller.session)
            if not access.allows(params.name) and catalog.tool_exists(params.name):
                await forwarder.audit_refusal(params.name, caller)
                raise AccessDeniedError(params.name, required_scope("tool", params.name))
        tool = catalog.tools_by_name().get(params.name)
        if approvals is not None and tasks is not None and tool is not None:
            requirement = approvals.requirement(decided[0] if decided else None, tool, params.arguments or {})
            if requirement is not None:
                arguments = dict(params.arguments or {})
                if decided is None:
                    # Fail closed: an approval is bound to an agent, and without auth there is none.
                    await forwarder.audit_refusal(params.name, caller)
                    return hub_error_result(
                        f"{params.name} needs a human's approval, which needs an authenticated agent: turn [auth] on"
                    )
                try:
                    call = HeldCall(
                        principal=decided[0],
                        access=decided[1],
                        tool=tool,
                        arguments=arguments,
                        requirement=requirement,
                        session=caller.session,
                        report_progress=relay_progress if wants_progress else None,
                    )
                    return await tasks.answer_held_call(ctx, call)
                except TooManyPendingError as exc:
                    return tool_result_for(exc)
        return await forwarder.call_tool(
            params.name, params.arguments, caller, on_progress=relay_progress if wants_progress else None
        )

    server = HubServer(
        "mcp-hub",
        version=mcp_hub.__version__,
        instructions=INSTRUCTIONS,
        on_subscriptions_listen=notifier.listen_handler,
        # Mcp-Param-* header checks: a dictionary lookup instead of the SDK's default walk of tools/list per call.
        get_tool_input_schema=catalog.input_schema,
    )
    # Registered as raw handlers: they return wire dicts, which the SDK validates once on the way out.
    server.add_request_handler("tools/list", types.PaginatedRequestParams, list_tools)
    server.add_request_handler("tools/call", types.CallToolRequestParams, call_tool)
    if tasks is not None:
        tasks.register(server)
    server.middleware.extend([notifier, MapHubErrors(), *middleware])
    return server
