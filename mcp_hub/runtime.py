"""The composition root: settings and connectors in, a running hub out. Read top to bottom, it is the architecture.

Every component is built here, whole, from what it needs; nothing else builds one. The layers, lowest first:
the stores (`mcp_hub.db`), the federation (catalog, downstream pool, forwarder, audit), identity and
authorization (`mcp_hub.authz`, only with `[auth] enabled`), approvals, and the front doors (the MCP server over
HTTP and stdio, the OAuth endpoints, the web pages). `Hub.running()` starts, in order: the database (refusing an
out-of-date schema), the signing keys, the audit writer, the approvals recovery, webhooks, the change notifier
and the downstream pool. Connectors come up in the background; the hub serves from the first moment, with each
connector's tools appearing as it becomes ready.

`admin_tools()` is the smaller composition the `mcp-hub` admin commands use against the same database.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import os
import socket
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any, cast

import anyio
import h11
import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import mcp_hub
from mcp_hub.admin.agents import AgentAdmin
from mcp_hub.admin.audit_log import AuditLog
from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.admin.connectors import ConnectorAdmin
from mcp_hub.admin.identity import IdentityAdmin
from mcp_hub.admin.limits import LimitAdmin
from mcp_hub.admin.review import CatalogReview
from mcp_hub.admin.services import AdminServices
from mcp_hub.admin.signing_keys import KeyAdmin
from mcp_hub.admin.users import UserAdmin
from mcp_hub.approvals.feed import ActionFeed
from mcp_hub.approvals.history import CallHistory
from mcp_hub.approvals.lease import ReplicaLease
from mcp_hub.approvals.policy import ApprovalPolicy
from mcp_hub.approvals.presentation import approval_link
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.approvals.webhooks import WebhookNotifier
from mcp_hub.audit.log_lines import observe_calls
from mcp_hub.audit.retention import AuditRetention
from mcp_hub.audit.sinks import AuditSinks
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.authz.authorization import AuthorizationRequests
from mcp_hub.authz.bearer import BearerAuthenticator
from mcp_hub.authz.client_auth import ClientAuthenticator
from mcp_hub.authz.client_metadata import ClientMetadataResolver
from mcp_hub.authz.decisions import AccessDecider, Principal
from mcp_hub.authz.dpop import DpopProofs, replays_for
from mcp_hub.authz.egress import STRICT_EGRESS, EgressPolicy
from mcp_hub.authz.grant_authorization_code import AuthorizationCodeGrant
from mcp_hub.authz.grant_client_credentials import ClientCredentialsGrant
from mcp_hub.authz.grant_refresh_token import RefreshTokenGrant, RefreshTokens
from mcp_hub.authz.granting import ScopeGranter
from mcp_hub.authz.introspection import Introspection
from mcp_hub.authz.keys import KeyRing
from mcp_hub.authz.metadata import MetadataEndpoints
from mcp_hub.authz.private_key_jwt import PrivateKeyJwtVerifier
from mcp_hub.authz.registration import ClientRegistration
from mcp_hub.authz.revocation import Revocation
from mcp_hub.authz.token_endpoint import TokenEndpoint
from mcp_hub.authz.tokens import MAX_ACCESS_TOKEN_SECONDS, TokenService
from mcp_hub.authz.urls import OAuthUrls
from mcp_hub.bodies import BodyDeadline
from mcp_hub.catalog.catalog import Catalog, CatalogChange
from mcp_hub.catalog.lock import read_lock
from mcp_hub.catalog.review import Limits
from mcp_hub.catalog.sync import CatalogSync, PinPolicy
from mcp_hub.catalog.views import CatalogReader, ConnectorView
from mcp_hub.catalog.virtual import VirtualView, change_touches
from mcp_hub.config.connectors import ConnectorSpec, scan_connectors
from mcp_hub.config.settings import HubSettings
from mcp_hub.config.virtual import MetaToolsMode, VirtualServerSpec, load_virtual_servers
from mcp_hub.console import ConsoleParts, console_routes
from mcp_hub.credentials import SecretValues
from mcp_hub.db.approvals import ApprovalStore
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_chain import AuditChainStore
from mcp_hub.db.audit_query import AuditQueryStore
from mcp_hub.db.audit_seal import SealKey
from mcp_hub.db.catalog import CatalogStore, ConnectorRecord
from mcp_hub.db.dashboard import DashboardStore
from mcp_hub.db.engine import create_engine, current_database, display_url, require_current_schema
from mcp_hub.db.identities import IdentityStore
from mcp_hub.db.keys import SigningKeyStore
from mcp_hub.db.limits import LimitStore
from mcp_hub.db.oauth import OAuthStore
from mcp_hub.db.pins import PinStore
from mcp_hub.db.replicas import ReplicaStore
from mcp_hub.db.sealing import SealingStore
from mcp_hub.db.web_sessions import WebSessionStore
from mcp_hub.domain import AuditOutcome, Caller, ConnectorId, utc_now
from mcp_hub.downstream.health import HealthRecorder
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.downstream.reloading import ConnectorWatcher
from mcp_hub.errors import ConfigError
from mcp_hub.fanout import Bus, Topic, bus_for
from mcp_hub.gateway import stdio
from mcp_hub.gateway.app import Guard, health_report, health_routes, mcp_routes
from mcp_hub.gateway.event_store import InMemoryEventLog, StreamLimits
from mcp_hub.gateway.fast_path import FastPathStats
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.front_door import HubApp, direct_routes
from mcp_hub.gateway.guard import BearerAuthMiddleware
from mcp_hub.gateway.legacy_sessions import LegacySessions, Owner
from mcp_hub.gateway.lists import PageCache
from mcp_hub.gateway.notifications import ChangeNotifier
from mcp_hub.gateway.questions import Questions
from mcp_hub.gateway.readiness import Readiness
from mcp_hub.gateway.relaying import LogLevels
from mcp_hub.gateway.request_state import RequestStates
from mcp_hub.gateway.server import HubServer, build_server
from mcp_hub.gateway.subscriptions import ResourceSubscriptions
from mcp_hub.limits.cache import CallCache, store_for
from mcp_hub.limits.calls import CallLimits, Refusal, backend_for
from mcp_hub.limits.endpoints import EndpointThrottle, SignInThrottle, throttled_paths
from mcp_hub.logs import register_secret_values
from mcp_hub.telemetry.endpoint import MetricsEndpoint
from mcp_hub.telemetry.metrics import ConnectorSnapshot, HubMetrics
from mcp_hub.telemetry.tracing import Tracing
from mcp_hub.tool_results import hub_error_result
from mcp_hub.web.admin_api import admin_api_routes
from mcp_hub.web.admin_api.access import AdminAccess
from mcp_hub.web.approvals import approval_routes
from mcp_hub.web.assets import StaticAssets
from mcp_hub.web.consent import ConsentPages
from mcp_hub.web.home import home_routes
from mcp_hub.web.login import login_routes
from mcp_hub.web.pages import Pages
from mcp_hub.web.sessions import WebSessions

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Stores:
    """One store per concern, all over the hub's one database."""

    catalog: CatalogStore
    audit: AuditStore
    audit_query: AuditQueryStore
    audit_chain: AuditChainStore
    identities: IdentityStore
    keys: SigningKeyStore
    oauth: OAuthStore
    web_sessions: WebSessionStore
    approvals: ApprovalStore
    sealing: SealingStore
    limits: LimitStore
    pins: PinStore
    replicas: ReplicaStore

    @classmethod
    def over(cls, engine: AsyncEngine) -> Stores:
        return cls(
            catalog=CatalogStore(engine),
            audit=AuditStore(engine),
            audit_query=AuditQueryStore(engine),
            audit_chain=AuditChainStore(engine),
            identities=IdentityStore(engine),
            keys=SigningKeyStore(engine),
            oauth=OAuthStore(engine),
            web_sessions=WebSessionStore(engine),
            approvals=ApprovalStore(engine),
            sealing=SealingStore(engine),
            limits=LimitStore(engine),
            pins=PinStore(engine),
            replicas=ReplicaStore(engine),
        )


@dataclass(frozen=True, slots=True)
class Authorization:
    """The authorization server's and resource server's shared parts (built only with `[auth] enabled`)."""

    urls: OAuthUrls
    keys: KeyRing
    tokens: TokenService
    decider: AccessDecider
    granter: ScopeGranter
    clients: ClientMetadataResolver
    client_authenticator: ClientAuthenticator
    dpop: DpopProofs
    bearer: BearerAuthenticator
    admin: IdentityAdmin


def build_authorization(
    settings: HubSettings,
    stores: Stores,
    *,
    egress: EgressPolicy,
    virtual_servers: Sequence[str] = (),
    bus: Bus | None = None,
) -> Authorization:
    """`virtual_servers`: their names; each is a protected resource of its own (issue 11 §6). `bus`: an admin
    change made here drops the cached decisions of every replica at once (not only within the cache's bound)."""
    auth = settings.auth
    urls = OAuthUrls.of(settings, virtual_servers)
    keys = KeyRing(
        stores.keys,
        publish_ahead=timedelta(seconds=auth.key_publish_ahead_seconds),
        longest_token_life=timedelta(seconds=MAX_ACCESS_TOKEN_SECONDS + auth.clock_skew_seconds),
    )
    tokens = TokenService(
        keys,
        issuer=urls.issuer,
        resource=urls.resource,
        lifetime_seconds=auth.access_token_ttl_seconds,
        skew_seconds=auth.clock_skew_seconds,
        other_audiences=(*urls.virtual_resources, urls.admin_resource),
    )
    decider = AccessDecider(
        stores.identities,
        stores.oauth,
        ttl_seconds=auth.decision_cache_seconds,
        on_revocation=None if bus is None else partial(bus.announce, Topic.GRANTS, {}),
    )
    granter = ScopeGranter(stores.identities)
    clients = ClientMetadataResolver(stores.identities, enabled=auth.client_id_metadata_documents, egress=egress)
    assertions = PrivateKeyJwtVerifier(
        find_client=clients.resolve, used_assertions=stores.oauth, urls=urls, skew_seconds=auth.clock_skew_seconds
    )
    # DPoP proofs' jtis: shared by every replica through Redis with `[limits] redis_url`, as the limits are.
    dpop = DpopProofs(auth, replays_for(auth, settings.limits.redis_url, settings.limits.redis_key_prefix))
    return Authorization(
        urls=urls,
        keys=keys,
        tokens=tokens,
        decider=decider,
        granter=granter,
        clients=clients,
        client_authenticator=ClientAuthenticator(
            stores.identities, verify_assertion=assertions, find_client=clients.resolve
        ),
        dpop=dpop,
        bearer=BearerAuthenticator(tokens, decider, dpop),
        admin=IdentityAdmin(stores.identities, granter, tokens, on_change=partial(_forget_everywhere, decider, bus)),
    )


def admin_services(hub: Hub, auth: Authorization) -> AdminServices:
    """The admin operations of a running hub (issue 13 §1): every change audited through its `AuditWriter`."""
    audit = AdminAudit(hub.audit.record)

    def catalog_names() -> list[tuple[str, str]]:
        return [
            (kind, entry.public_name)
            for kind, section in (("tool", hub.catalog.tools), ("prompt", hub.catalog.prompts))
            for entry in section.entries()
        ]

    return AdminServices(
        audit=audit,
        agents=AgentAdmin(auth.admin, hub.stores.identities, catalog_names, audit),
        users=UserAdmin(auth.admin, hub.stores.identities, audit),
        connectors=ConnectorAdmin(hub.settings.connectors_dir, hub.pool, hub.watcher.reload, audit),
        review=CatalogReview(hub.stores.pins, audit, hub.audit.record),
        keys=KeyAdmin(auth.keys, hub.stores.keys, audit),
        limits=LimitAdmin(hub.stores.limits, hub.stores.identities, audit),
        audit_log=AuditLog(hub.stores.audit_query, audit),
        approval_rules=hub.settings.approvals.rules,
        virtual_servers=lambda: hub.virtual_specs,
    )


def _forget_everywhere(decider: AccessDecider, bus: Bus | None) -> None:
    decider.forget()
    if bus is not None:
        bus.announce(Topic.GRANTS, {})


def oauth_routes(
    settings: HubSettings,
    stores: Stores,
    auth: Authorization,
    sessions: WebSessions,
    pages: Pages,
    throttle: SignInThrottle | None = None,
    metrics: HubMetrics | None = None,
) -> list[BaseRoute]:
    """The authorization server's endpoints, and the sign-in and consent pages of its authorization endpoint."""
    refresh_tokens = RefreshTokens(stores.oauth, ttl_seconds=settings.auth.refresh_token_ttl_seconds)
    token_endpoint = TokenEndpoint(
        auth.client_authenticator,
        auth.urls,
        [
            ClientCredentialsGrant(auth.granter, auth.tokens, admin_resource=auth.urls.admin_resource),
            AuthorizationCodeGrant(stores.oauth, auth.granter, auth.tokens, refresh_tokens),
            RefreshTokenGrant(stores.oauth, auth.granter, auth.tokens, refresh_tokens),
        ],
        auth.dpop,
        on_issued=metrics.token_issued if metrics is not None else None,
    )
    consent = ConsentPages(
        AuthorizationRequests(
            auth.clients.resolve,
            auth.urls,
            auth.granter,
            stores.oauth,
            code_ttl_seconds=settings.auth.authorization_code_ttl_seconds,
        ),
        sessions,
        pages,
    )
    routes: list[BaseRoute] = [
        *MetadataEndpoints(auth.urls, settings.auth, auth.keys).routes(),
        *token_endpoint.routes(),
        *Revocation(auth.client_authenticator, auth.tokens, stores.oauth, auth.decider, auth.urls).routes(),
        *Introspection(auth.client_authenticator, auth.tokens, stores.oauth, stores.identities, auth.urls).routes(),
        *consent.routes(),
        *login_routes(stores.identities, sessions, pages, throttle),
    ]
    if settings.auth.dynamic_client_registration:
        routes += ClientRegistration(stores.identities).routes()
    return routes


def _connector_record(spec: ConnectorSpec) -> ConnectorRecord:
    return ConnectorRecord(
        id=spec.id,
        transport=spec.transport,
        protocol=spec.protocol,
        enabled=spec.enabled,
        config_sha256=spec.fingerprint,
    )


class Hub:
    """Everything one hub process runs, built whole."""

    def __init__(
        self,
        settings: HubSettings,
        connectors: Sequence[ConnectorSpec],
        *,
        egress: EgressPolicy = STRICT_EGRESS,
        stores: Callable[[AsyncEngine], Stores] = Stores.over,
        virtual_servers: Sequence[VirtualServerSpec] | None = None,
        sighup: bool = False,
        settle_heap: bool = False,
        tracing: Tracing | None = None,
    ) -> None:
        """`egress` is how the hub fetches URLs others name (client metadata documents); `stores` makes the
        stores over the hub's engine. Both are for tests: one loosens the guard, the other orders a race.
        `virtual_servers` default to the files of `[hub] virtual_dir`. `tracing` replaces what `[tracing]` says
        (tests: spans to an in-memory exporter). `sighup`: reload the connectors on SIGHUP
        (`mcp-hub serve`, whose event loop runs in the main thread). `settle_heap`: once started, freeze what the
        start built out of the garbage collector's sight (a process that is this hub's alone, `mcp-hub serve` and
        `stdio`; not a test process that runs many hubs, whose garbage would be frozen with them)."""
        self.settings = settings
        self._sighup = sighup
        self._settle_heap = settle_heap
        self.connectors = list(connectors)
        # --- issue 11 §6: virtual servers (curated profiles at <mcp>/v/<name>) ---
        self.virtual_specs = (
            list(virtual_servers) if virtual_servers is not None else load_virtual_servers(settings.virtual_dir)
        )
        self.virtual_notifiers = {
            spec.name: ChangeNotifier(interested=partial(change_touches, spec)) for spec in self.virtual_specs
        }
        self.engine = create_engine(settings.database.url)
        self.stores = stores(self.engine)
        # Several replicas (issue 12 §4): what one changes, the others hear at once (Redis pub/sub with
        # `[limits] redis_url`; alone otherwise). Each still converges by its own re-checks if a message is lost.
        self.replica = settings.replica_id
        self.bus = bus_for(settings.limits.redis_url, prefix=settings.limits.redis_key_prefix)

        # Federation: what downstreams offer in, one catalog out, requests forwarded and audited. Each connector's
        # profile (/mcp/s/<id>) hears of its own connector's changes.
        self.notifier = ChangeNotifier()
        self.profile_notifiers = {spec.id: ChangeNotifier(connector=spec.id) for spec in self.connectors}
        self.catalog = Catalog(
            listeners=[
                self._announce_catalog_change,
                self.notifier.on_catalog_change,
                *(notifier.on_catalog_change for notifier in self.profile_notifiers.values()),
                *(notifier.on_catalog_change for notifier in self.virtual_notifiers.values()),
            ]
        )
        # The connectors' expanded secrets never leave the hub in a downstream's words, nor reach a log line.
        self.secrets = SecretValues(value for spec in self.connectors for value in spec.secret_values())
        register_secret_values(value for spec in self.connectors for value in spec.secret_values())
        self.audit, self.audit_sinks = audit_writer_for(self.stores, settings)
        # What operators watch (docs/observability.md): metrics counted off the audit events, traces when asked.
        self.metrics = metrics_for(settings)
        self.tracing = tracing if tracing is not None else tracing_for(settings)
        self.metrics_address: tuple[str, int] | None = None
        """Where the admin listener serves `/metrics` (`[metrics] listen_host`), once it listens."""
        if self.metrics is not None:
            self.audit.observe(self.metrics.observe_audit)
            self.metrics.watch_audit_queue(lambda: self.audit.queue_depth)
            self.metrics.watch_connectors(self._connector_snapshots)
            self.metrics.watch_pending_approvals(self.stores.approvals.count_pending)
        if self.metrics is not None:
            self.metrics.watch_audit_sinks(lambda: self.audit_sinks.dropped)
        self.audit_seal_key = audit_seal_key(settings)
        self.audit_retention = AuditRetention.configured(
            self.stores.audit_chain, settings.audit, seal_key=self.audit_seal_key
        )
        self.log_levels = LogLevels(self.catalog, self.secrets)
        self.fast_path = FastPathStats()  # what the 2026-07-28 fast path served (`[hub] fast_path`)
        self.subscriptions = ResourceSubscriptions(self.catalog, self.notifier, self.profile_notifiers)
        # Pinning and review (issue 11 §1-§4): only approved definitions reach the catalog.
        self.catalog_sync = CatalogSync(
            self.catalog,
            self.stores.catalog,
            self.stores.pins,
            policy=pin_policy(settings, self.connectors),
            audit=self.audit.record,
        )
        self.pool = DownstreamPool(
            self.connectors,
            settings.timeouts,
            on_listing=self.catalog_sync.connector_listed,
            on_health=HealthRecorder(self.stores.catalog).record,
            on_configured=self._connectors_configured,
            on_removed=self.catalog_sync.connector_removed,
            logs=self.log_levels,
            resources=self.subscriptions,
        )
        # Live connectors (issue 11 §5): the connectors directory is followed while the hub runs.
        self.watcher = ConnectorWatcher(
            settings.connectors_dir, self.pool, poll_seconds=settings.hub.connectors_poll_seconds
        )
        self.forwarder = Forwarder(self.catalog, self.pool, self.audit, secrets=self.secrets, tracing=self.tracing)
        self.readiness = Readiness(self.pool, bound_seconds=settings.timeouts.connect_seconds)
        # One bound for every server's list pages (the hub, each profile, each virtual server): keys tell them apart.
        self.page_cache = PageCache()
        self.request_states = RequestStates(self.stores.sealing, ttl_seconds=settings.questions.answer_seconds)
        self.questions = Questions(settings.questions, self.request_states, self.log_levels)

        # Identity: who may call what (absent when auth is off, on loopback only).
        self.auth = (
            build_authorization(
                settings,
                self.stores,
                egress=egress,
                virtual_servers=[spec.name for spec in self.virtual_specs],
                bus=self.bus,
            )
            if settings.auth.enabled
            else None
        )

        # Traffic control: rate limits, quotas and loop breaking per agent (in Redis when several replicas share).
        self.limits = CallLimits(
            settings.limits,
            backend_for(settings.limits),
            lambda name: _connector_of(self.catalog, name),
            own_limits=self.stores.limits.agent_limits,
            own_limits_ttl_seconds=settings.auth.decision_cache_seconds,
        )

        # Results of the tools the admin marks cacheable, and identical calls in flight made once (in Redis too).
        self.cache = CallCache(
            settings.cache,
            store_for(settings.cache, settings.limits.redis_url),
            on_served=self.metrics.cache_served if self.metrics is not None else None,
        )

        # Approvals: sensitive calls wait for a human.
        self.feed = ActionFeed()
        self.webhooks = WebhookNotifier(settings.approvals.rules, partial(approval_link, settings.public_base_url))
        self.approval_policy = ApprovalPolicy(settings.approvals.rules, self.connectors)
        # The callers' earlier calls of the tools the rules' `after` names (in the limits' Redis when set: T18).
        self.call_history = CallHistory.for_rules(settings.approvals.rules, settings.limits)
        self.approvals = ApprovalService(
            settings.approvals,
            self.stores.approvals,
            self.stores.identities,
            self.approval_policy,
            self.catalog,
            self.audit,
            self.forwarder.run_approved,
            public_base_url=settings.public_base_url,
            listeners=[self.webhooks.on_change, self.feed.publish],
            bus=self.bus,
            replica=self.replica,
            tracing=self.tracing,
            on_decided=self.metrics.approval_decided if self.metrics is not None else None,
            history=self.call_history,
        )
        self.bus.subscribe(Topic.APPROVALS, self.feed.changed_elsewhere)
        self.lease = ReplicaLease(
            self.replica, self.stores.replicas, self.approvals, lease_seconds=settings.hub.replica_lease_seconds
        )
        self.bus.subscribe(Topic.CATALOG, self._catalog_changed_elsewhere)
        if self.auth is not None:
            self.bus.subscribe(Topic.GRANTS, partial(_grants_changed_elsewhere, self.auth.decider))

        # Front doors: the MCP server (HTTP here; stdio in `serve_stdio`), its 2025-11-25 streams resumable from
        # the events they carried (in this process: replicas need session affinity, as for the sessions).
        self.server = self.server_for(None, meta_tools=settings.catalog.meta_tools)
        self.profiles = {connector: ConnectorView(self.catalog, connector) for connector in self.profile_notifiers}
        self.profile_servers = {
            connector: self.server_for(None, reader=view, notifier=self.profile_notifiers[connector])
            for connector, view in self.profiles.items()
        }
        self.virtual_views = {spec.name: VirtualView(self.catalog, spec) for spec in self.virtual_specs}
        self.virtual_servers = {
            name: self.server_for(
                None, reader=view, notifier=self.virtual_notifiers[name], meta_tools=view.spec.meta_tools
            )
            for name, view in self.virtual_views.items()
        }
        self.stream_events = InMemoryEventLog(StreamLimits.of(settings.streams))
        self.legacy_sessions = LegacySessions(per_principal=settings.hub.max_legacy_sessions_per_principal)

    def _connector_snapshots(self) -> list[ConnectorSnapshot]:
        snapshots: list[ConnectorSnapshot] = []
        for connector_id, connection in self.pool.connections.items():
            calls = connection.calls_report()
            breaker = calls["breaker"]
            snapshots.append(
                ConnectorSnapshot(
                    connector=connector_id,
                    health=str(connection.health.state),
                    breaker=str(breaker["state"]),
                    running=int(calls["running"]),
                    queued=int(calls["queued"]),
                    breaker_opened=int(breaker["opened"]),
                )
            )
        return snapshots

    def _become(self, replica: str) -> None:
        self.replica = self.approvals.replica = self.lease.replica = replica

    def _announce_catalog_change(self, change: CatalogChange) -> None:
        """Catalog listener: the other replicas re-list a connector whose listing changed here (each replica has
        its own downstream connections; a downstream may tell only some of them, or none, of a change)."""
        if not change.is_empty:
            self.bus.announce(Topic.CATALOG, {"connector": change.connector_id})

    async def _catalog_changed_elsewhere(self, message: Mapping[str, Any]) -> None:
        connection = self.pool.connections.get(ConnectorId(str(message.get("connector"))))
        if connection is not None:
            connection.refresh()

    async def _connectors_configured(self, specs: Sequence[ConnectorSpec]) -> None:
        """Live connectors: before the pool starts a new or changed connector, it is registered (its health can be
        recorded), its secrets are scrubbed like the others', its `sensitive_tools` apply, and so does its `trust`."""
        self.connectors = list(specs)
        await self.stores.catalog.register_connectors([_connector_record(spec) for spec in specs])
        values = [value for spec in specs for value in spec.secret_values()]
        self.secrets.add(*values)
        register_secret_values(values)
        self.approval_policy.reconfigure(specs)
        self.catalog_sync.set_policy(pin_policy(self.settings, specs))

    def server_for(
        self,
        stdio_principal: Principal | None,
        middleware: Sequence[Any] = (),
        *,
        reader: CatalogReader | None = None,
        notifier: ChangeNotifier | None = None,
        meta_tools: MetaToolsMode = "off",
    ) -> HubServer:
        """An MCP server over this hub; with auth, `stdio_principal` is whom the stdio front door serves.

        HTTP uses `self.server` (no stdio principal: the bearer middleware names the caller per request), and one
        server per connector's profile (`reader`: that connector under its own names, with its own `notifier`).
        """
        return build_server(
            reader if reader is not None else self.catalog,
            self.forwarder,
            notifier if notifier is not None else self.notifier,
            page_size=self.settings.catalog.page_size,
            page_max_bytes=self.settings.catalog.page_max_bytes,
            list_ttl_ms=self.settings.catalog.list_ttl_ms,
            decider=self.auth.decider if self.auth is not None else None,
            stdio_principal=stdio_principal,
            log_levels=self.log_levels,
            subscriptions=self.subscriptions,
            questions=self.questions,
            request_states=self.request_states,
            readiness=self.readiness,
            audience=self.settings.mcp_resource_url,
            approvals=self.approvals,
            limits=self.limits if self.auth is not None else None,
            cache=self.cache,
            middleware=middleware,
            meta_tools=meta_tools,
            search_results=self.settings.catalog.search_results,
            page_cache=self.page_cache,
            tracing=self.tracing,
        )

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Hub]:
        with anyio.CancelScope() as shutdown_guard:
            async with AsyncExitStack() as stack:
                stack.callback(self.tracing.shutdown)
                stack.push_async_callback(self.engine.dispose)
                stack.push_async_callback(self.limits.backend.aclose)
                stack.push_async_callback(self.cache.store.aclose)
                if self.call_history is not None:
                    stack.push_async_callback(self.call_history.aclose)
                await require_current_schema(self.engine)
                await require_seal_key(self.stores.audit_chain, self.audit_seal_key, self.settings)
                await self.stores.catalog.register_connectors([_connector_record(spec) for spec in self.connectors])
                if self.auth is not None:
                    stack.push_async_callback(self.auth.dpop.aclose)
                    await stack.enter_async_context(self.auth.keys.running())
                await stack.enter_async_context(self.audit_sinks.running())  # outlives the writer's last batch
                await stack.enter_async_context(self.audit.running())
                await stack.enter_async_context(self._pruning())
                await stack.enter_async_context(self.bus.running())
                await stack.enter_async_context(self.lease.running())
                await stack.enter_async_context(self.webhooks.running())
                await stack.enter_async_context(self.notifier.running())
                for profile_notifier in (*self.profile_notifiers.values(), *self.virtual_notifiers.values()):
                    await stack.enter_async_context(profile_notifier.running())
                await stack.enter_async_context(self.questions.running())
                await stack.enter_async_context(self.pool.running())
                await stack.enter_async_context(self.watcher.running(sighup=self._sighup))
                await stack.enter_async_context(self.readiness.running())
                await stack.enter_async_context(self._reviewing())
                await stack.enter_async_context(self._settling_heap())
                if self.auth is not None:
                    # A disabled agent or user keeps no legacy session: swept as often as decisions expire.
                    await stack.enter_async_context(
                        self.legacy_sessions.running(
                            partial(_owner_enabled, self.auth.decider),
                            every_seconds=max(self.settings.auth.decision_cache_seconds, _MIN_SWEEP_SECONDS),
                        )
                    )
                logger.info("hub started", connectors=len(self.connectors), database=display_url(self.engine.url))
                try:
                    yield self
                finally:
                    # Shutdown is bounded: whatever is still pending after this deadline (a downstream
                    # that will not exit, audit rows for a database that is down) is cancelled and logged.
                    shutdown_guard.deadline = anyio.current_time() + self.settings.timeouts.shutdown_seconds

    @asynccontextmanager
    async def _settling_heap(self) -> AsyncGenerator[None]:
        """Once the start is over, what it built (modules, models, the catalog: some 200,000 objects) is moved out
        of the garbage collector's sight (`gc.freeze`). Otherwise every full collection walks all of it again:
        80-160 ms pauses in the middle of calls, and a tenth of the hub's CPU under load (measured, issue 12).
        Objects made later are collected as before."""

        async def settle() -> None:
            await self.readiness.settled()
            gc.collect()
            gc.freeze()
            logger.debug("heap settled", frozen_objects=gc.get_freeze_count())

        async with anyio.create_task_group() as tasks:
            if self._settle_heap:
                tasks.start_soon(settle)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    @asynccontextmanager
    async def _pruning(self) -> AsyncGenerator[None]:
        """`[audit] retention_days`: old audit rows pruned behind checkpoints (docs/audit.md)."""
        async with anyio.create_task_group() as tasks:
            if self.audit_retention is not None:
                tasks.start_soon(self.audit_retention.run)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    @asynccontextmanager
    async def _reviewing(self) -> AsyncGenerator[None]:
        """Issue 11 §1-§2: decisions made elsewhere are applied; every connector is re-listed periodically."""
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self.catalog_sync.watch_decisions, self.settings.catalog.review_poll_seconds)
            if self.settings.catalog.relist_seconds > 0:
                tasks.start_soon(_relist_every, self.pool, self.settings.catalog.relist_seconds)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    async def audit_throttled(self, what: str, address: str, why: str) -> None:
        """Record a request an endpoint or sign-in throttle refused (issue 10 §8: every refusal is audited)."""
        await self.audit.record(
            AuditEvent(
                at=utc_now(),
                client=f"address:{address}",
                session=None,
                public_name=what,
                connector_id=None,
                downstream_name=None,
                outcome=AuditOutcome.RATE_LIMITED,
                latency_ms=0.0,
                detail=why[:500],
                method="http",
            )
        )

    def health_report(self) -> dict[str, Any]:
        """The body of `/healthz`."""
        report = health_report(self.pool, self.catalog, self.readiness)
        report["limits"] = self.limits.backend.health()
        report["cache"] = self.cache.store.health()
        report["replica"] = {"id": self.replica, "bus": self.bus.health()}
        # Live connectors: the last reload, and each bad file (its connector, if running, keeps its old definition).
        files = self.watcher.last.as_json()
        report["connector_files"] = files
        for name, error in files["errors"].items():
            connector = report["connectors"].get(name.removesuffix(".toml"))
            if connector is not None:
                connector["file_error"] = error
        return report

    async def serve_stdio(self, *, agent: str | None, token: str | None) -> None:
        """Serve one client over stdin/stdout until it disconnects, as `agent` or `token`'s caller.

        Raises `AuthError` (before anything is served or any downstream started) when auth is enabled and the
        caller cannot be named.
        """
        principal: Principal | None = None
        middleware: list[Any] = []
        if not self.settings.replica_id_named:
            # Several `mcp-hub stdio` processes run on one machine at once: each is a replica of its own, so that
            # one starting never fails another's running approved call (its leftovers go when its lease expires).
            self._become(f"{socket.gethostname()}:stdio:{os.getpid()}")
        if self.auth is None:
            if agent is not None or token is not None:
                logger.warning("auth is disabled in this configuration: the stdio caller's identity is not used")
        else:
            stdio.require_one_identity(agent=agent, token=token)
            try:
                await require_current_schema(self.engine)
                await self.auth.keys.load()
                principal = await stdio.identify(self.auth.bearer, self.auth.decider, agent=agent, token=token)
            finally:
                # `running()` opens the engine again; a refused start must not leave connections behind.
                await self.engine.dispose()
            if token is not None:
                middleware.append(stdio.TokenStillValid(self.auth.bearer, token, tracing=self.tracing))
        server = self.server_for(principal, middleware)
        async with self.running():
            if principal is not None:
                logger.info("stdio caller identified", caller=principal.label)
            await stdio.serve(server)


def metrics_for(settings: HubSettings) -> HubMetrics | None:
    """The hub's metrics with `[metrics] enabled`, else None (nothing counted)."""
    if not settings.metrics.enabled:
        return None
    return HubMetrics(
        max_agent_labels=settings.metrics.max_agent_labels,
        max_tool_labels=settings.metrics.max_tool_labels,
        version=mcp_hub.__version__,
    )


def tracing_for(settings: HubSettings) -> Tracing:
    """OTLP export with `[tracing] enabled`, else `Tracing.off()` (no spans at all)."""
    tracing = settings.tracing
    if not tracing.enabled:
        return Tracing.off()
    return Tracing.otlp(
        tracing.otlp_endpoint,
        service_name=tracing.service_name,
        version=mcp_hub.__version__,
        sampling_ratio=tracing.sampling_ratio,
    )


def metrics_app_routes(hub: Hub) -> list[BaseRoute]:
    """`/metrics` (`[metrics] path`) behind its bearer token, on the hub's listener or on the admin listener."""
    if hub.metrics is None:
        return []
    settings = hub.settings
    return list(MetricsEndpoint(hub.metrics, settings.metrics_token, path=settings.metrics.path).routes())


class _AdminServer(uvicorn.Server):
    """uvicorn for the admin listener: the hub's own server owns the process's signals."""

    @contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


@asynccontextmanager
async def metrics_listener(hub: Hub) -> AsyncGenerator[None]:
    """With `[metrics] listen_host`: `/metrics` on a listener of its own (an admin address) while the hub runs; its
    address in `hub.metrics_address`. A port that cannot be bound stops the start with the socket's error."""
    host = hub.settings.metrics.listen_host
    if hub.metrics is None or host is None:
        yield
        return
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    listener = socket.create_server((bare, hub.settings.metrics.listen_port), family=family)
    hub.metrics_address = listener.getsockname()[:2]
    app = Starlette(routes=metrics_app_routes(hub))
    config = uvicorn.Config(app, **_listener_bounds(hub.settings), lifespan="off", log_config=None, access_log=False)
    server = _AdminServer(config)  # bounded as the hub's own listener is
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(server.serve, [listener])
        try:
            yield
        finally:
            server.should_exit = True


def pin_policy(settings: HubSettings, connectors: Sequence[ConnectorSpec]) -> PinPolicy:
    """How the pins decide: each connector's `trust`, the `[catalog]` size caps, the lock file if any."""
    lock_path = settings.catalog_lock
    return PinPolicy(
        auto=frozenset(spec.id for spec in connectors if spec.trust == "auto"),
        limits=Limits(
            max_description_bytes=settings.catalog.max_description_bytes,
            max_schema_bytes=settings.catalog.max_schema_bytes,
        ),
        lock=read_lock(lock_path) if lock_path is not None else None,
    )


async def _relist_every(pool: DownstreamPool, seconds: float) -> None:
    while True:
        await anyio.sleep(seconds)
        for connection in pool.connections.values():
            connection.refresh()


def _connector_of(catalog: Catalog, public_name: str) -> str | None:
    tool = catalog.tools.get(public_name)
    return tool.connector_id if tool is not None else None


_MIN_SWEEP_SECONDS = 1.0


async def _grants_changed_elsewhere(decider: AccessDecider, message: Mapping[str, Any]) -> None:
    del message
    decider.forget()


async def _owner_enabled(decider: AccessDecider, owner: Owner) -> bool:
    return await decider.is_enabled(Principal(agent_id=owner.agent_id, agent_name="", user_id=owner.user_id))


def profile_path(settings: HubSettings, connector: str) -> str:
    """Where a connector's profile is served: its catalog alone, under its own names (issue 9 §10)."""
    return f"{settings.hub.mcp_path}/s/{connector}"


def virtual_path(settings: HubSettings, name: str) -> str:
    """Where a virtual server is served (issue 11 §6), beside the connectors' profiles at `<mcp>/s/`."""
    return f"{settings.hub.mcp_path}/v/{name}"


def _public_name_in(view: ConnectorView, name: str) -> str | None:
    tool = view.tools.get(name)
    return tool.public_name if tool is not None else None


def build_app(hub: Hub, *, on_started: Callable[[], None] | None = None) -> Starlette:
    """The hub's ASGI app: `/mcp` (both eras), `/healthz`, and with auth the OAuth endpoints and the web pages.

    Its lifespan runs the hub (database, keys, audit, pool) and the MCP session manager.
    """
    settings, auth = hub.settings, hub.auth
    guard: Guard | None = None
    guard_of_virtual: Callable[[str], Guard] | None = None
    routes: list[BaseRoute] = []
    if auth is not None:

        async def audit_refusal(tool: str, caller_label: str) -> None:
            await hub.forwarder.audit_refusal(tool, Caller(client=caller_label))

        async def audit_limited(tool: str, caller_label: str, refusal: Refusal) -> None:
            await hub.forwarder.audit_limited(tool, Caller(client=caller_label), refusal.outcome, refusal.message)

        def bearer_guard(
            app: ASGIApp,
            public_tool_name: Callable[[str], str | None],
            auth: Authorization = auth,
            *,
            virtual: str | None = None,
        ) -> ASGIApp:
            # Hub-wide tokens work everywhere; a virtual server's token only on that virtual server (issue 11 §6).
            path = settings.hub.mcp_path if virtual is None else virtual_path(settings, virtual)
            audiences = {auth.urls.resource, auth.urls.url(path)}
            return BearerAuthMiddleware(
                app,
                authenticator=auth.bearer,
                decider=auth.decider,
                issuer=auth.urls.issuer,
                resource_metadata_url=auth.urls.resource_metadata_url_of(path),
                audiences=frozenset(audiences),
                public_tool_name=public_tool_name,
                max_body_bytes=settings.hub.max_request_body_bytes,
                on_refused=audit_refusal,
                limits=hub.limits,
                on_limited=audit_limited,
                sessions=hub.legacy_sessions,
                timed=hub.tracing.enabled,
                dpop_required=settings.auth.dpop == "required",
            )

        guard = bearer_guard

        def virtual_guard(name: str) -> Guard:
            return partial(bearer_guard, virtual=name)

        guard_of_virtual = virtual_guard
        sessions = WebSessions(
            hub.stores.web_sessions,
            hub.stores.identities,
            public_base_url=settings.public_base_url,
            ttl_seconds=settings.auth.web_session_ttl_seconds,
        )
        # The pages: Jinja2 templates, and the stylesheet and script they link, served from /static/.
        assets = StaticAssets()
        pages = Pages(assets)
        throttle = SignInThrottle(hub.limits.backend, settings.limits.endpoints, on_refused=hub.audit_throttled)
        routes += oauth_routes(settings, hub.stores, auth, sessions, pages, throttle, hub.metrics)
        routes += approval_routes(
            hub.approvals,
            hub.stores.identities,
            hub.stores.audit,
            sessions,
            hub.feed,
            pages,
            max_streams_per_session=settings.approvals.max_event_streams_per_session,
        )
        # The admin operations, one service per resource: for the admin API and the console alike.
        services = admin_services(hub, auth)
        routes += console_routes(
            ConsoleParts(
                pages=pages,
                sessions=sessions,
                admin=services,
                identities=hub.stores.identities,
                catalog=hub.catalog,
                catalog_store=hub.stores.catalog,
                pins=hub.stores.pins,
                dashboard=DashboardStore(hub.engine),
                audit=hub.stores.audit_query,
                pool=hub.pool,
                approvals=hub.approvals,
                virtual_views=hub.virtual_views,
                virtual_url=settings.virtual_resource_url,
            )
        )
        routes += home_routes(sessions)
        routes += assets.routes()
        # The admin JSON API (issue 13 §1): an admin's session or an admin token; every change audited.
        routes += admin_api_routes(services, AdminAccess(sessions, auth.bearer, auth.decider, auth.urls))
    # One count for every endpoint (the hub, its profiles, its virtual servers): `hub.fast_path`.
    fast_path = hub.fast_path if settings.hub.fast_path else None
    mcp = mcp_routes(
        hub.server,
        settings,
        hub.catalog,
        path=settings.hub.mcp_path,
        public_tool_name=lambda name: name if hub.catalog.tool_exists(name) else None,
        stream_events=hub.stream_events,
        sessions=hub.legacy_sessions,
        guard=guard,
        fast_path=fast_path,
    )
    for connector, server in hub.profile_servers.items():
        mcp += mcp_routes(
            server,
            settings,
            hub.catalog,
            path=profile_path(settings, connector),
            public_tool_name=partial(_public_name_in, hub.profiles[connector]),
            stream_events=hub.stream_events,
            sessions=hub.legacy_sessions,
            guard=guard,
            fast_path=fast_path,
        )
    for name, view in hub.virtual_views.items():
        mcp += mcp_routes(
            hub.virtual_servers[name],
            settings,
            hub.catalog,
            path=virtual_path(settings, name),
            public_tool_name=view.public_tool_name,
            stream_events=hub.stream_events,
            sessions=hub.legacy_sessions,
            guard=None if guard_of_virtual is None else guard_of_virtual(name),
            fast_path=fast_path,
        )
    routes = [*mcp, *routes, *health_routes(hub.health_report, hub.readiness)]
    if hub.metrics is not None and settings.metrics.listen_host is None:
        routes += metrics_app_routes(hub)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncGenerator[None]:
        async with AsyncExitStack() as stack:
            await stack.enter_async_context(hub.running())
            for server in (hub.server, *hub.profile_servers.values(), *hub.virtual_servers.values()):
                await stack.enter_async_context(server.session_manager.run())
            await stack.enter_async_context(metrics_listener(hub))
            if on_started is not None:
                on_started()
            yield

    # Bodies are bounded in time as well as in size (slow-body clients; the headers' deadline is `server_config`).
    middleware: list[Middleware] = [Middleware(BodyDeadline, seconds=settings.hub.body_timeout_seconds)]
    if settings.replica_id_named:
        # Which replica answered (operators and the multi-replica test); only for an id named on purpose.
        middleware.insert(0, Middleware(ReplicaHeader, replica=hub.replica))
    if auth is not None:
        # Per source address (and per client at the token endpoint), before any OAuth endpoint does work.
        middleware.append(
            Middleware(
                EndpointThrottle,
                backend=hub.limits.backend,
                settings=settings.limits.endpoints,
                oauth_prefix="/oauth",
                on_refused=hub.audit_throttled,
            )
        )
    # The MCP endpoints skip the stack above through one frame that does what it does to them (`HubApp`): a
    # middleware added here does not see their requests (see `mcp_hub.gateway.front_door`).
    return HubApp(
        routes=routes,
        lifespan=lifespan,
        middleware=middleware,
        direct=direct_routes(mcp, excluded=throttled_paths("/oauth") if auth is not None else ()),
        body_timeout_seconds=settings.hub.body_timeout_seconds,
        replica=hub.replica if settings.replica_id_named else None,
    )


class ReplicaHeader:
    """Pure ASGI middleware: every HTTP response names the replica that made it (`Mcp-Hub-Replica`)."""

    def __init__(self, app: ASGIApp, *, replica: str) -> None:
        self._app = app
        self._header = (b"mcp-hub-replica", replica.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self._header]}
            await send(message)

        await self._app(scope, receive, named)


class _HeaderDeadline:
    """A deadline on each request's line and headers, for a uvicorn HTTP protocol (uvicorn has none: a client
    sending its headers a byte at a time, or never, keeps the connection, and a file descriptor, forever)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float, expired: Callable[[], None]) -> None:
        self._loop = loop
        self._seconds = seconds
        self._expired = expired
        self._timer: asyncio.TimerHandle | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = self._loop.call_later(self._seconds, self._fire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        self._expired()


class _CorkedTransport:
    """A connection's transport whose writes of one event-loop step leave in one system call: uvicorn writes a
    response's headers and its body apart, two sends (and two segments for the client to wake up for) where one
    does. Flushed at the end of the step (`call_soon`) and before the transport closes; every other attribute is
    the transport's own."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: Iterable[bytes | bytearray | memoryview]) -> None:
        for data in lines:
            self.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._pending)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def _header_deadline_protocol(seconds: float, max_head_bytes: int) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol (the `fast` extra: about 0.1 ms less per request), else its h11 protocol,
    each with `_HeaderDeadline`; the httptools one with a bound on each request's head (llhttp has none; h11's
    is uvicorn's `h11_max_incomplete_event_size`)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        return _h11_with_deadline(seconds)

    class HttpToolsWithHeaderDeadline(HttpToolsProtocol):
        _deadline: _HeaderDeadline
        _awaiting_head: bool
        """Between requests or within a request's line and headers (not within its body)."""
        _head_bytes: int
        """Bytes received while a head was awaited: at least the head's size, less at most one read's worth
        (the read in which the request before it ended)."""
        _head_too_large: bool

        def connection_made(self, transport: asyncio.Transport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
            super().connection_made(cast("asyncio.Transport", _CorkedTransport(transport, self.loop)))
            self._deadline = _HeaderDeadline(self.loop, seconds, self._headers_too_slow)
            self._deadline.arm()
            self._awaiting_head = True
            self._head_bytes = 0
            self._head_too_large = False

        def data_received(self, data: bytes) -> None:
            if self._head_too_large:
                return  # answered: what else the client sends is read and dropped until it closes (or the deadline)
            if self._awaiting_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if (
                self._awaiting_head
                and self._head_bytes > max_head_bytes
                and not self._head_too_large  # the parser stopped at the end of a head too large: answered
                and not self.transport.is_closing()
            ):
                self._head_too_large = True  # still no end of the head: it cannot fit any more
                self.send_400_response("request header fields too large")

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._deadline.arm()  # a request is arriving: its headers must be complete in time
            if not self._awaiting_head:  # it began in the read that ended the request before it
                self._awaiting_head = True
                self._head_bytes = 0

        def on_headers_complete(self) -> None:
            self._deadline.disarm()
            if self._head_bytes > max_head_bytes and self._head_size() > max_head_bytes:
                self._head_too_large = True
                # Any exception stops llhttp; uvicorn then answers through `send_400_response`, which says 431.
                raise ValueError("request head too large")
            self._awaiting_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._awaiting_head = True
            self._head_bytes = 0

        def send_400_response(self, msg: str) -> None:
            if not self._head_too_large:
                super().send_400_response(msg)
                return
            content = b"request header fields too large"
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: " + str(len(content)).encode() + b"\r\nconnection: close\r\n\r\n" + content
            )
            # A staged close (RFC 9112 §9.6): closing with the client's bytes unread would reset the connection,
            # and a reset can destroy the answer before the client reads it. Half-closed, the rest is dropped
            # until the client closes, at most until the header deadline.
            self.transport.write_eof()
            self._deadline.disarm()
            self._deadline.arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._deadline.disarm()
            super().connection_lost(exc)

        def _head_size(self) -> int:
            return len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)

        def _headers_too_slow(self) -> None:
            if not self.transport.is_closing():
                self.transport.close()

    return HttpToolsWithHeaderDeadline


def _h11_with_deadline(seconds: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class H11WithHeaderDeadline(H11Protocol):
        _deadline: _HeaderDeadline

        def connection_made(self, transport: asyncio.Transport) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]
            super().connection_made(transport)
            self._deadline = _HeaderDeadline(self.loop, seconds, self._headers_too_slow)
            self._deadline.arm()

        def data_received(self, data: bytes) -> None:
            if self.conn.their_state is h11.IDLE:
                self._deadline.arm()  # a request is arriving: its headers must be complete in time
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._deadline.disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._deadline.disarm()
            super().connection_lost(exc)

        def _headers_too_slow(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return H11WithHeaderDeadline


def _listener_bounds(settings: HubSettings) -> dict[str, Any]:
    """What bounds a client of every listener the hub opens: its request head's time and size (`[hub]
    header_timeout_seconds`, `max_header_bytes`) and how long an idle keep-alive connection stays."""
    hub = settings.hub
    return {
        "http": _header_deadline_protocol(hub.header_timeout_seconds, hub.max_header_bytes),
        "h11_max_incomplete_event_size": hub.max_header_bytes,
        "timeout_keep_alive": hub.keep_alive_seconds,
    }


def server_config(app: ASGIApp, settings: HubSettings, **options: Any) -> uvicorn.Config:
    """How `mcp-hub serve` (and the tests' hub) runs `app` in uvicorn: httptools (or h11) with a deadline on
    request headers (`[hub] header_timeout_seconds`), idle keep-alive connections closed after
    `keep_alive_seconds`, no uvicorn log configuration of its own (the hub's redacting handler takes its records),
    and a bounded graceful shutdown. `options` are uvicorn's (host, port)."""
    return uvicorn.Config(
        app,
        **_listener_bounds(settings),
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=int(settings.timeouts.shutdown_seconds),
        **options,
    )


# --- the admin commands' composition ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AdminTools:
    """What `mcp-hub agents|grants|users|token|keys|approvals|limits` work with, over the hub's database. Their
    changes go through the admin services the API and console use, as `actor`, so each is an audit row."""

    settings: HubSettings
    stores: Stores
    auth: Authorization
    approvals: ApprovalService
    review: CatalogReview
    """`mcp-hub catalog approve|reject`: the admin service's decision, audited through the command's writer."""
    actor: Actor
    """Who the command's audit rows name: `cli:<login>`."""
    agents: AgentAdmin
    users: UserAdmin
    keys: KeyAdmin
    limits: LimitAdmin


def readable_connectors(settings: HubSettings) -> list[ConnectorSpec]:
    """The connector files a command can read, whose `sensitive_tools` hold calls as the hub's do (`approvals show`
    compares what held a call with the rules as they read now, `catalog --agent` says which tools need approval); a
    bad file is left out, not fatal to every command.
    The secrets they reference need not be set: the command never connects, and this is seldom the hub's
    environment."""
    try:
        return list(scan_connectors(settings.connectors_dir, require_secrets=False).specs.values())
    except ConfigError:
        return []


async def _not_from_the_cli(
    method: str, public_name: str, arguments: Mapping[str, Any] | None, caller: Caller
) -> dict[str, Any]:
    # The CLI decides actions; an approved call runs in the hub, for the agent that asked.
    del method, arguments, caller
    return hub_error_result(f"{public_name} runs in the hub, not in the mcp-hub command")


def audit_writer_for(
    stores: Stores, settings: HubSettings, *, log_lines: bool = True
) -> tuple[AuditWriter, AuditSinks]:
    """The audit writer of a hub or of an `mcp-hub` command (`[audit]` batching; a log line per audited event with
    `log_lines`), and the audit sinks it feeds what it stores, with each row's hash: run them around the writer,
    so that they outlive its last batch."""
    audit = AuditWriter.configured(stores.audit, settings.audit, seal_key=audit_seal_key(settings))
    if log_lines:
        observe_calls(audit, settings.logging)
    sinks = AuditSinks.configured(settings.audit)
    audit.on_stored(sinks.offer)
    return audit, sinks


def audit_seal_key(settings: HubSettings) -> SealKey | None:
    """The key `[audit] seal_key` names (docs/audit.md, trust model), or None when nothing is to be sealed."""
    secret = settings.audit_seal_secret
    return None if secret is None else SealKey.of(secret)


async def require_seal_key(chain: AuditChainStore, seal_key: SealKey | None, settings: HubSettings) -> None:
    """Refuse to write into a sealed audit trail without the key: the rows would fail `mcp-hub audit verify` as
    appended by someone without it, and a prune would be refused by the database (its triggers)."""
    if seal_key is None and await chain.is_sealed():
        raise ConfigError(
            str(settings.config_path),
            "audit.seal_key",
            "the audit trail in this database is sealed, but no seal key is configured: set seal_key "
            '(e.g. "${AUDIT_SEAL_KEY}") to the key the other replicas use (docs/audit.md)',
        )


@asynccontextmanager
async def admin_tools(settings: HubSettings, *, log_audited: bool = True) -> AsyncGenerator[AdminTools]:
    """The admin parts over the database of `settings` (which must be at the current schema). `log_audited`: each
    audit row the command writes is also a log line, as in the hub."""
    async with current_database(settings.database.url) as engine:
        stores = Stores.over(engine)
        virtual = [spec.name for spec in load_virtual_servers(settings.virtual_dir)]
        # The command's changes (grants, agents, decisions) reach the running replicas over their bus at once.
        bus = bus_for(settings.limits.redis_url, prefix=settings.limits.redis_key_prefix)
        auth = build_authorization(settings, stores, egress=STRICT_EGRESS, virtual_servers=virtual, bus=bus)
        await auth.keys.load()
        await require_seal_key(stores.audit_chain, audit_seal_key(settings), settings)
        audit, sinks = audit_writer_for(stores, settings, log_lines=log_audited)  # the sinks as a hub's
        async with bus.running(), sinks.running(), audit.running():
            approvals = ApprovalService(
                settings.approvals,
                stores.approvals,
                stores.identities,
                ApprovalPolicy(settings.approvals.rules, readable_connectors(settings)),
                Catalog(),
                audit,
                _not_from_the_cli,
                public_base_url=settings.public_base_url,
                bus=bus,
            )
            changes = AdminAudit(audit.record)
            yield AdminTools(
                settings=settings,
                stores=stores,
                auth=auth,
                approvals=approvals,
                review=CatalogReview(stores.pins, changes, audit.record),
                actor=Actor.command(_login()),
                # `mcp-hub grants list --effective` reads the recorded catalog itself: no live catalog here.
                agents=AgentAdmin(auth.admin, stores.identities, lambda: (), changes),
                users=UserAdmin(auth.admin, stores.identities, changes),
                keys=KeyAdmin(auth.keys, stores.keys, changes),
                limits=LimitAdmin(stores.limits, stores.identities, changes),
            )


def _login() -> str:
    """The operating system's name for whoever runs the command (its uid where the account has no name, as a
    container's user may not)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"
