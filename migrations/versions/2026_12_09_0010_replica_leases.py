"""Several replicas: leases, and which replica runs an approved call (issue 12 §4).

Revision ID: 0010_replica_leases
Revises: 0009_catalog_pins
Create Date: 2026-12-09

- `hub_replicas`: one row per replica id, its lease renewed while it runs.
- `approval_actions.executing_replica`: the replica running an `executing` action (NULL for rows from before:
  start-up recovery treats them as orphaned, as it treated every execution before).

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_replica_leases"
down_revision: str | None = "0009_catalog_pins"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hub_replicas",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hub_replicas"),
    )
    with op.batch_alter_table("approval_actions") as batch:
        batch.add_column(sa.Column("executing_replica", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_actions") as batch:
        batch.drop_column("executing_replica")
    op.drop_table("hub_replicas")
