"""Human approval of sensitive tool calls: approval_actions.

Revision ID: 0003_approvals
Revises: 0002_auth
Create Date: 2026-11-23

Written by hand to match `mcp_hub.db.models.ApprovalAction`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_approvals"
down_revision: str | None = "0002_auth"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "approval_actions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("agent_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("agent_name", sa.String(64), nullable=False),
        sa.Column("public_name", sa.String(64), nullable=False),
        sa.Column("connector_id", sa.String(32), nullable=False),
        sa.Column("downstream_name", sa.String(256), nullable=False),
        sa.Column("definition_sha256", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("approvers", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(64), nullable=True),
        sa.Column("decided_at", _utc(), nullable=True),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("expires_at", _utc(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("completed_at", _utc(), nullable=True),
        sa.Column("reported_at", _utc(), nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_approval_actions_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_approval_actions_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approval_actions")),
    )
    op.create_index(op.f("ix_approval_actions_agent_id_digest"), "approval_actions", ["agent_id", "digest"])
    op.create_index(op.f("ix_approval_actions_status_created_at"), "approval_actions", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_approval_actions_status_created_at"), table_name="approval_actions")
    op.drop_index(op.f("ix_approval_actions_agent_id_digest"), table_name="approval_actions")
    op.drop_table("approval_actions")
