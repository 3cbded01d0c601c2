"""The composition root: settings and connectors in, a running hub out.

`Hub.running()` starts, in order: the database (refusing an out-of-date schema), the audit writer,
the change notifier and the downstream pool. Connectors come up in the background; the hub serves
from the first moment, with each connector's tools appearing as it becomes ready.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.audit import AuditWriter
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.connectors import ConnectorSpec
from mcp_hub.config.settings import HubSettings
from mcp_hub.db import ConnectorRecord, HubStore, ToolRecord
from mcp_hub.db.engine import create_engine, require_current_schema
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import HubError
from mcp_hub.gateway.forwarding import Forwarder
from mcp_hub.gateway.notifications import ChangeNotifier
from mcp_hub.gateway.server import HubServer, build_server

logger = structlog.get_logger(__name__)


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
        self.server: HubServer = build_server(
            self.catalog,
            self.forwarder,
            self.notifier,
            page_size=settings.catalog.page_size,
            list_ttl_ms=settings.catalog.list_ttl_ms,
        )

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Hub]:
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self.engine.dispose)
            await require_current_schema(self.engine)
            await self.store.register_connectors(
                [
                    ConnectorRecord(
                        id=spec.id,
                        transport=spec.transport,
                        protocol=spec.protocol,
                        enabled=spec.enabled,
                        config_sha256=spec.fingerprint,
                    )
                    for spec in self.connectors
                ]
            )
            await stack.enter_async_context(self.audit.running())
            await stack.enter_async_context(self.notifier.running())
            await stack.enter_async_context(self.pool.running())
            logger.info("hub started", connectors=len(self.connectors), database=self.engine.url.render_as_string())
            yield self

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
