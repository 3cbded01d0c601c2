"""Health of a downstream connector, as `/healthz` and `mcp-hub connectors list` show it, and its record in the
database (so `connectors list` can show the last state when the hub is not running)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.db.catalog import CatalogStore
from mcp_hub.domain import ConnectorId, Health
from mcp_hub.errors import HubError

logger = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class HealthState:
    state: Health
    since: datetime
    detail: str | None = None
    era: str | None = None
    tool_count: int = 0
    attempts: int = 0


class HealthRecorder:
    """The pool's `on_health`: every change of a connector's state is logged and stored (failures only logged)."""

    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    async def record(self, connector_id: ConnectorId, state: HealthState) -> None:
        logger.debug("connector health", connector=connector_id, state=state.state.value, detail=state.detail)
        try:
            await self._store.record_health(connector_id, state.state, state.detail, state.era, state.tool_count)
        except (SQLAlchemyError, HubError):
            logger.exception("could not persist connector health", connector=connector_id)
