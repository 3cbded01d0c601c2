"""The composition root: settings and connectors in, a running hub out.

`Hub.running()` starts, in order: the database (refusing an out-of-date schema), the audit writer,
the change notifier and the downstream pool. Connectors come up in the background; the hub serves
from the first moment, with each connector's tools appearing as it becomes ready.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import anyio
import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.approvals.policy import ApprovalPolicy
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.approvals.webhooks import WebhookNotifier
from mcp_hub.audit import AuditWriter
from mcp_hub.authz.decisions import Principal
from mcp_hub.authz.service import AuthService
from mcp_hub.authz.wiring import build_auth_service
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import HubSettings
from mcp_hub.db import ConnectorRecord, HubStore, ToolRecord
from mcp_hub.db.approval_store import ApprovalStore
from mcp_hub.db.auth_store import AuthStore
from mcp_hub.db.engine import create_engine, display_url, require_current_schema
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import HubError
from mcp_hub.gateway.forwarding import Caller, Forwarder
from mcp_hub.gateway.notifications import ChangeNotifier
from mcp_hub.gateway.server import HubServer, build_server

logger = structlog.get_logger(__name__)


def _connector_record(spec: ConnectorSpec) -> ConnectorRecord:
    return ConnectorRecord(
        id=spec.id,
        transport=spec.transport,
        protocol=spec.protocol,
        enabled=spec.enabled,
        config_sha256=spec.fingerprint,
    )


class Hub:
    """Everything one hub process runs, wired together."""

    def __init__(self, settings: HubSettings, connectors: Sequence[ConnectorSpec], *, errlog: TextIO = sys.stderr):
        self.settings = settings
        self.connectors = list(connectors)
        self.engine = create_engine(settings.database.url)
        self.store = HubStore(self.engine)
        self.catalog = Catalog()
        self.notifier = ChangeNotifier()
        self.catalog.subscribe(self.notifier.on_catalog_change)
        self.audit = AuditWriter(
            self.store,
            batch_size=settings.audit.batch_size,
            flush_interval_ms=settings.audit.flush_interval_ms,
            queue_size=settings.audit.queue_size,
        )
        self.pool = DownstreamPool(
            self.connectors, settings.timeouts, on_tools=self._on_tools, on_health=self._on_health, errlog=errlog
        )
        self.forwarder = Forwarder(self.catalog, self.pool, self.audit)
        self.auth: AuthService | None = build_auth_service(settings, self.engine) if settings.auth.enabled else None
        self.approvals = ApprovalService(
            settings.approvals,
            ApprovalStore(self.engine),
            AuthStore(self.engine),
            ApprovalPolicy(settings.approvals.rules, self.connectors),
            self.catalog,
            self.audit,
            public_base_url=settings.public_base_url,
        )
        self.approvals.forward = self._forward_approved
        self.webhooks = WebhookNotifier(settings.approvals.rules, self.approvals.link)
        self.approvals.on_change(self.webhooks.on_change)
        self.server: HubServer = self.server_for(None)

    def server_for(self, stdio_principal: Principal | None) -> HubServer:
        """An MCP server over this hub; with auth, `stdio_principal` is whom the stdio front door serves.

        HTTP uses `self.server` (no stdio principal: the bearer middleware names the caller per request).
        """
        return build_server(
            self.catalog,
            self.forwarder,
            self.notifier,
            page_size=self.settings.catalog.page_size,
            list_ttl_ms=self.settings.catalog.list_ttl_ms,
            decider=self.auth.decider if self.auth is not None else None,
            stdio_principal=stdio_principal,
            approvals=self.approvals,
        )

    async def _forward_approved(
        self, public_name: str, arguments: Mapping[str, Any] | None, caller: str, session: str | None
    ) -> dict[str, Any]:
        return await self.forwarder.call_tool(public_name, arguments, Caller(client=caller, session=session))

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Hub]:
        with anyio.CancelScope() as shutdown_guard:
            async with AsyncExitStack() as stack:
                stack.push_async_callback(self.engine.dispose)
                await require_current_schema(self.engine)
                await self.store.register_connectors([_connector_record(spec) for spec in self.connectors])
                if self.auth is not None:
                    await stack.enter_async_context(self.auth.running())
                await stack.enter_async_context(self.audit.running())
                await self.approvals.recover()
                await stack.enter_async_context(self.webhooks.running())
                await stack.enter_async_context(self.notifier.running())
                await stack.enter_async_context(self.pool.running())
                logger.info("hub started", connectors=len(self.connectors), database=display_url(self.engine.url))
                try:
                    yield self
                finally:
                    # Shutdown is bounded: whatever is still pending after this deadline (a downstream
                    # that will not exit, audit rows for a database that is down) is cancelled and logged.
                    shutdown_guard.deadline = anyio.current_time() + self.settings.timeouts.shutdown_seconds

    def health_report(self) -> dict[str, Any]:
        """The body of `/healthz`."""
        connectors = {
            connector_id: {
                "state": state.state.value,
                "since": state.since.isoformat(),
                "era": state.era,
                "tools": state.tool_count,
                "detail": state.detail,
                "attempts": state.attempts,
            }
            for connector_id, state in self.pool.health().items()
        }
        enabled = [c for c in connectors.values() if c["state"] != "disabled"]
        all_ready = all(c["state"] == "ready" for c in enabled)
        return {
            "status": "ok" if all_ready else "degraded",
            "tools": len(self.catalog.tools()),
            "connectors": connectors,
        }

    async def _on_tools(self, connector_id: str, definitions: list[dict[str, Any]]) -> None:
        change = self.catalog.replace_connector(connector_id, definitions)
        if change.added or change.changed or change.removed:
            logger.info(
                "catalog changed",
                connector=connector_id,
                added=len(change.added),
                changed=len(change.changed),
                removed=len(change.removed),
            )
        records = [
            ToolRecord(
                public_name=tool.public_name,
                downstream_name=tool.downstream_name,
                definition=dict(tool.definition),
                sha256=tool.sha256,
            )
            for tool in self.catalog.tools_of(connector_id)
        ]
        try:
            await self.store.sync_catalog(connector_id, records, datetime.now(UTC))
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist the catalog", connector=connector_id)

    async def _on_health(self, connector_id: str, state: HealthState) -> None:
        logger.debug("connector health", connector=connector_id, state=state.state.value, detail=state.detail)
        try:
            await self.store.record_health(connector_id, state.state.value, state.detail, state.era, state.tool_count)
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist connector health", connector=connector_id)
