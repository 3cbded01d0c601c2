"""Keeping the catalog in step with the downstream servers: what a connector lists becomes its part of the
in-memory catalog (which tells its listeners), and its tools are recorded in the database (first and last
sightings; `mcp-hub catalog` reads them).

The database write is off the hot path and never blocks serving: if it fails, the in-memory catalog is still
right and the failure is logged.
"""

from __future__ import annotations

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.db.catalog import CatalogStore, ToolRecord
from mcp_hub.domain import Clock, ConnectorId, ConnectorListing, utc_now
from mcp_hub.errors import HubError

logger = structlog.get_logger(__name__)


class CatalogSync:
    """The pool's `on_listing`: a connector listed everything it offers."""

    def __init__(self, catalog: Catalog, store: CatalogStore, *, clock: Clock = utc_now) -> None:
        self._catalog = catalog
        self._store = store
        self._clock = clock

    async def connector_listed(self, connector_id: ConnectorId, listing: ConnectorListing) -> None:
        for change in self._catalog.replace_connector(connector_id, listing):
            if not change.is_empty:
                logger.info(
                    "catalog changed",
                    connector=connector_id,
                    kind=change.kind,
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
            for tool in self._catalog.tools.of_connector(connector_id)
        ]
        try:
            await self._store.sync_catalog(connector_id, records, self._clock())
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist the catalog", connector=connector_id)

    async def connector_removed(self, connector_id: ConnectorId) -> None:
        """The pool's `on_removed`: the connector's entries leave the catalog (clients are told), and its tools'
        rows are marked removed."""
        changes = self._catalog.remove_connector(connector_id)
        kinds = [change.kind for change in changes if not change.is_empty]
        logger.info("connector removed from the catalog", connector=connector_id, kinds=kinds)
        try:
            await self._store.sync_catalog(connector_id, [], self._clock())
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist the catalog", connector=connector_id)
