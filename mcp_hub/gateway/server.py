"""The hub's MCP server: every feature a downstream offers, in both eras the hub serves.

The server side of https://modelcontextprotocol.io/specification/2026-07-28/server and
https://modelcontextprotocol.io/specification/2025-11-25/server: tools (`mcp_hub.gateway.tools`), prompts
(`.prompts`), resources (`.resources`), completions (`.completion`), held calls as tasks (`.tasks`), change
notifications (`.notifications`), capabilities per caller (`.capabilities`), errors (`.errors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import mcp_types as types
from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.context import ServerMiddleware, ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.streamable_http import EventStore
from mcp.server.transport_security import TransportSecuritySettings

import mcp_hub
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.catalog.views import CatalogReader
from mcp_hub.catalog.virtual import SearchIndex
from mcp_hub.config.virtual import MetaToolsMode
from mcp_hub.gateway.caller import CallerResolver
from mcp_hub.gateway.capabilities import CapabilityShaper
from mcp_hub.gateway.completion import CompletionRequests
from mcp_hub.gateway.errors import MapHubErrors
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.holds import Holds
from mcp_hub.gateway.legacy_sessions import HubSessionManager, LegacySessions
from mcp_hub.gateway.lists import Lead, Lists, ListShape, PageCache
from mcp_hub.gateway.log_context import RequestLogContext
from mcp_hub.gateway.meta_tools import MetaTools
from mcp_hub.gateway.notifications import ChangeNotifier
from mcp_hub.gateway.prompts import PromptRequests
from mcp_hub.gateway.questions import Questions
from mcp_hub.gateway.readiness import Readiness
from mcp_hub.gateway.relaying import LogLevels
from mcp_hub.gateway.request_state import RequestStates
from mcp_hub.gateway.resources import ResourceRequests
from mcp_hub.gateway.subscriptions import ResourceSubscriptions, SubscriptionRequests
from mcp_hub.gateway.tasks import ApprovalTasks
from mcp_hub.gateway.tools import ToolRequests
from mcp_hub.limits.cache import CallCache
from mcp_hub.limits.calls import CallLimits
from mcp_hub.telemetry.tracing import Tracing

INSTRUCTIONS = (
    "mcp-hub federates several MCP servers. Tool and prompt names are '<connector>__<name>': the part before "
    "the double underscore names the downstream server. Resource URIs are 'mcp-hub://<connector>/<its URI>'."
)


class HubServer(Server[Any]):
    """A low-level SDK server that advertises `listChanged` to 2025-11-25 clients too, and whose 2025-11-25
    sessions are shared fairly (`serve_sessions`)."""

    lists: Lists | None = None
    """How its list methods page (a front end other than the SDK's serves the same pages from it)."""
    tools_lead: Lead | None = None
    """What its `tools/list` shows before the tools (the meta-tools), to pass to `lists`."""

    def serve_sessions(
        self,
        sessions: LegacySessions,
        *,
        event_store: EventStore,
        security_settings: TransportSecuritySettings,
        retry_interval: int,
        max_request_body_size: int,
        max_sessions: int,
    ) -> HubSessionManager:
        """The session manager of this server's HTTP endpoint (what `streamable_http_app` would make, with
        per-principal shares); `session_manager` returns it from now on."""
        manager = HubSessionManager(
            self,
            sessions,
            event_store=event_store,
            security_settings=security_settings,
            retry_interval=retry_interval,
            max_request_body_size=max_request_body_size,
            max_sessions=max_sessions,
        )
        self._session_manager = manager
        return manager

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(tools_changed=True, prompts_changed=True, resources_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server(
    catalog: CatalogReader,
    forwarder: Forwarder,
    notifier: ChangeNotifier,
    *,
    page_size: int,
    page_max_bytes: int,
    list_ttl_ms: int,
    decider: AccessDecider | None = None,
    stdio_principal: Principal | None = None,
    log_levels: LogLevels,
    subscriptions: ResourceSubscriptions,
    questions: Questions,
    request_states: RequestStates,
    readiness: Readiness,
    audience: str,
    approvals: ApprovalService | None = None,
    limits: CallLimits | None = None,
    cache: CallCache | None = None,
    middleware: Sequence[ServerMiddleware[Any]] = (),
    meta_tools: MetaToolsMode = "off",
    search_results: int = 20,
    page_cache: PageCache | None = None,
    tracing: Tracing | None = None,
) -> HubServer:
    """The hub's MCP server, wired to its catalog, forwarder and change notifier.

    With a `decider` (auth enabled) every list and request is decided for the caller: the principal the
    bearer middleware put in the request scope, or `stdio_principal` for the stdio front door. A request
    with neither is refused (fail closed). `page_cache`: the process's list pages (shared by every server; a
    server of its own otherwise).
    """
    resolve = CallerResolver(decider, stdio_principal)
    lists = Lists(
        ListShape(page_size=page_size, ttl_ms=list_ttl_ms, page_max_bytes=page_max_bytes), readiness, page_cache
    )
    tasks = ApprovalTasks(approvals, resolve.decision) if approvals is not None else None
    server = HubServer(
        "mcp-hub",
        version=mcp_hub.__version__,
        instructions=INSTRUCTIONS,
        # Mcp-Param-* header checks: a dictionary lookup instead of the SDK's default walk of tools/list per call.
        get_tool_input_schema=catalog.input_schema,
    )
    tool_requests = ToolRequests(
        catalog,
        forwarder,
        resolve,
        lists,
        questions,
        approvals=approvals,
        tasks=tasks,
        limits=limits,
        cache=cache,
        tracing=tracing,
    )
    tool_requests.register(server)
    server.lists = lists
    if meta_tools != "off":
        # Issue 11 §7: `search_tools` and `call_tool` around the same `ToolRequests` (one call path).
        meta = MetaTools(
            tool_requests,
            SearchIndex.over(catalog.tools),
            resolve,
            lists,
            catalog.tools,
            mode=meta_tools,
            max_results=search_results,
            schema_of=catalog.input_schema,
        )
        meta.register(server)
        server.tools_lead = meta.lead
    holds = Holds(approvals)
    PromptRequests(catalog, forwarder, resolve, lists, questions, holds).register(server)
    ResourceRequests(catalog, forwarder, resolve, lists, questions, holds).register(server)
    CompletionRequests(catalog, forwarder, resolve).register(server)
    subscribing = SubscriptionRequests(catalog, subscriptions, notifier, resolve)
    server.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribing.subscribe)
    server.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, subscribing.unsubscribe)
    server.add_request_handler("subscriptions/listen", types.SubscriptionsListenRequestParams, subscribing.listen)

    async def set_log_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> dict[str, Any]:
        log_levels.set_level(ctx, params.level, await resolve(ctx))
        return {}

    # Registered directly: the constructor's `on_set_logging_level` warns that logging is deprecated in 2026-07-28,
    # but 2025-11-25 clients use it (the SDK keeps it off the 2026-07-28 wire).
    server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_log_level)
    if tasks is not None:
        tasks.register(server)
    # The SDK's OpenTelemetryMiddleware costs CPU on every request even with no tracer provider, and would trace to
    # the process-wide provider: the hub traces with its own (`mcp_hub.telemetry.tracing`), or not at all.
    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
    if tracing is not None and tracing.enabled:
        server.middleware.insert(0, tracing.middleware)
    server.middleware.extend(
        [
            RequestLogContext(),
            notifier,
            request_states.boundary(audience, resolve.principal_key),
            MapHubErrors(),
            CapabilityShaper(catalog, resolve, readiness),
            *middleware,
        ]
    )
    return server
