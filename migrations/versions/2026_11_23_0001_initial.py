"""Initial schema: connectors, catalog_tools, audit_calls.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23

Written by hand to match `mcp_hub.db.models` (the test suite checks the two with Alembic's
`compare_metadata`). Migrations never import the models: they describe the schema as it was then.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "connectors",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("protocol", sa.String(16), nullable=False),
        sa.Column("era", sa.String(16), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("config_sha256", sa.String(64), nullable=False),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("health_detail", sa.Text(), nullable=True),
        sa.Column("tool_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("registered_at", _utc(), nullable=False),
        sa.Column("updated_at", _utc(), nullable=False),
        sa.Column("last_ready_at", _utc(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_connectors")),
    )
    op.create_table(
        "catalog_tools",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(32), nullable=False),
        sa.Column("downstream_name", sa.String(256), nullable=False),
        sa.Column("public_name", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("first_seen", _utc(), nullable=False),
        sa.Column("last_seen", _utc(), nullable=False),
        sa.Column("removed_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["connectors.id"],
            name=op.f("fk_catalog_tools_connector_id_connectors"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_tools")),
        sa.UniqueConstraint(
            "connector_id", "downstream_name", name=op.f("uq_catalog_tools_connector_id_downstream_name")
        ),
        sa.UniqueConstraint("public_name", name=op.f("uq_catalog_tools_public_name")),
    )
    op.create_table(
        "audit_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", _utc(), nullable=False),
        sa.Column("client", sa.Text(), nullable=False),
        sa.Column("session", sa.Text(), nullable=True),
        sa.Column("public_name", sa.Text(), nullable=False),
        sa.Column("connector_id", sa.Text(), nullable=True),
        sa.Column("downstream_name", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_calls")),
    )
    op.create_index(op.f("ix_audit_calls_at"), "audit_calls", ["at"])
    op.create_index(op.f("ix_audit_calls_connector_id_at"), "audit_calls", ["connector_id", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_calls_connector_id_at"), table_name="audit_calls")
    op.drop_index(op.f("ix_audit_calls_at"), table_name="audit_calls")
    op.drop_table("audit_calls")
    op.drop_table("catalog_tools")
    op.drop_table("connectors")
