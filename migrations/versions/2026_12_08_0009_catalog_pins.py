"""Downstream definitions pinned by SHA-256 and reviewed (issue 11 §1-§4).

Revision ID: 0009_catalog_pins
Revises: 0008_agent_limits
Create Date: 2026-12-08

- `catalog_pins`: one row per (connector, kind, name, SHA-256) a connector offered, with its status (`pending`,
  `approved`, `rejected`, `superseded`, `refused`), flags and decision; at most one `approved` per name.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_catalog_pins"
down_revision: str | None = "0008_agent_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_pins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(2048), nullable=False),
        sa.Column("public_name", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_catalog_pins"),
        sa.UniqueConstraint(
            "connector_id", "kind", "name", "sha256", name="uq_catalog_pins_connector_id_kind_name_sha256"
        ),
    )
    op.create_index("ix_catalog_pins_status", "catalog_pins", ["status"])
    op.create_index(
        "uq_catalog_pins_one_approved",
        "catalog_pins",
        ["connector_id", "kind", "name"],
        unique=True,
        sqlite_where=sa.text("status = 'approved'"),
        postgresql_where=sa.text("(status)::text = 'approved'::text"),
    )


def downgrade() -> None:
    op.drop_index("uq_catalog_pins_one_approved", table_name="catalog_pins")
    op.drop_index("ix_catalog_pins_status", table_name="catalog_pins")
    op.drop_table("catalog_pins")
