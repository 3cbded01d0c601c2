"""The downstream's share of a call's latency in the audit trail (issue 13: metrics and usage).

Revision ID: 0011_audit_downstream_time
Revises: 0010_replica_leases
Create Date: 2026-12-10

- `audit_calls.downstream_ms`: the part of `latency_ms` spent waiting on the downstream server, so that the
  hub-added time and per-agent downstream time can be told apart. NULL for rows written before.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_audit_downstream_time"
down_revision: str | None = "0010_replica_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_calls") as batch:
        batch.add_column(sa.Column("downstream_ms", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_calls") as batch:
        batch.drop_column("downstream_ms")
