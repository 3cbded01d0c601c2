"""The hub's database: models, migrations, engine setup, and one store per concern (the only code that issues SQL).

| module | store | concern |
|---|---|---|
| `catalog` | `CatalogStore` | connectors and their health, the tool catalog |
| `audit` | `AuditStore` | the audit trail: appends (hash-chained) |
| `audit_query` | `AuditQueryStore` | the audit trail's filtered pages, export and per-agent usage |
| `audit_chain` | `AuditChainStore` | the hash chain: hashing, head, checkpoints, retention prune, seals read |
| `audit_seal` | | the seals: HMACs of stored batches and checkpoints under `[audit] seal_key` |
| `identities` | `IdentityStore` | agents, users, grants |
| `keys` | `SigningKeyStore` | token signing keys |
| `oauth` | `OAuthStore` | refresh families and tokens, codes, consent requests, revocations, used assertions |
| `web_sessions` | `WebSessionStore` | browser sessions |
| `approvals` | `ApprovalStore` | pending actions and their transitions |

All stores share `_base.Store` (a writing and a read-only session factory, one clock).
"""

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

__all__ = [
    "SchemaStatus",
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
