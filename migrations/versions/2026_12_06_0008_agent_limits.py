"""Agents' own rate limits and quotas, set with `mcp-hub limits set` (issue 10 §1).

Revision ID: 0008_agent_limits
Revises: 0007_approval_methods
Create Date: 2026-12-06

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_agent_limits"
down_revision: str | None = "0007_approval_methods"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agent_limits",
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_limits_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_limits")),
    )


def downgrade() -> None:
    op.drop_table("agent_limits")
