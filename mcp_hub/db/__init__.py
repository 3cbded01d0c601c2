"""The hub's database: models, migrations, engine setup and `HubStore`, its only reader and writer."""

from mcp_hub.db.engine import (
    SchemaStatus,
    alembic_config,
    create_engine,
    display_url,
    downgrade,
    migrations_dir,
    require_current_schema,
    schema_status,
    upgrade,
)
from mcp_hub.db.models import metadata
from mcp_hub.db.store import (
    AUDIT_OUTCOMES,
    HEALTH_STATES,
    AuditEvent,
    CatalogDiff,
    CatalogToolRecord,
    ConnectorRecord,
    ConnectorStatus,
    HubStore,
    ToolRecord,
)

__all__ = [
    "AUDIT_OUTCOMES",
    "HEALTH_STATES",
    "AuditEvent",
    "CatalogDiff",
    "CatalogToolRecord",
    "ConnectorRecord",
    "ConnectorStatus",
    "HubStore",
    "SchemaStatus",
    "ToolRecord",
    "alembic_config",
    "create_engine",
    "display_url",
    "downgrade",
    "metadata",
    "migrations_dir",
    "require_current_schema",
    "schema_status",
    "upgrade",
]
