"""At most one uncollected approval action per (agent, on-behalf-of user, digest).

Revision ID: 0004_one_open_action
Revises: 0003_approvals
Create Date: 2026-11-23

Two partial unique indexes over the open actions (`reported_at IS NULL`): one for actions taken on behalf
of a user, one for actions without a user (NULLs are distinct in a unique index, and an index over an
expression such as `coalesce(user_id, '')` cannot be reflected on SQLite, which the schema check needs).
Together they let two simultaneous identical first calls create only one action (`ApprovalStore.create`).

A database written by 0003 may already hold such duplicates. Only the newest of each set was reachable by
calling again (`open_action` picks it), so the older ones are closed (`reported_at` set) before the indexes
are built; that changes nothing a caller could observe, and the downgrade leaves them closed.

Written by hand to match `mcp_hub.db.models.ApprovalAction`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0004_one_open_action"
down_revision: str | None = "0003_approvals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITH_USER = "uq_approval_actions_open_agent_user_digest"
WITHOUT_USER = "uq_approval_actions_open_agent_digest_no_user"
WITH_USER_WHERE = "reported_at IS NULL AND user_id IS NOT NULL"
WITHOUT_USER_WHERE = "reported_at IS NULL AND user_id IS NULL"


def _close_shadowed_duplicates() -> None:
    actions = sa.table(
        "approval_actions",
        sa.column("id", sa.String()),
        sa.column("agent_id", sa.String()),
        sa.column("user_id", sa.String()),
        sa.column("digest", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("reported_at", sa.DateTime(timezone=True)),
    )
    newer = actions.alias("newer")
    shadowed = sa.exists().where(
        newer.c.reported_at.is_(None),
        newer.c.agent_id == actions.c.agent_id,
        sa.or_(
            newer.c.user_id == actions.c.user_id,
            sa.and_(newer.c.user_id.is_(None), actions.c.user_id.is_(None)),
        ),
        newer.c.digest == actions.c.digest,
        sa.or_(
            newer.c.created_at > actions.c.created_at,
            sa.and_(newer.c.created_at == actions.c.created_at, newer.c.id > actions.c.id),
        ),
    )
    op.execute(
        sa.update(actions)
        .where(actions.c.reported_at.is_(None), shadowed)
        .values(reported_at=sa.literal(datetime.now(UTC), sa.DateTime(timezone=True)))
    )


def upgrade() -> None:
    _close_shadowed_duplicates()
    op.create_index(
        WITH_USER,
        "approval_actions",
        ["agent_id", "user_id", "digest"],
        unique=True,
        sqlite_where=sa.text(WITH_USER_WHERE),
        postgresql_where=sa.text(WITH_USER_WHERE),
    )
    op.create_index(
        WITHOUT_USER,
        "approval_actions",
        ["agent_id", "digest"],
        unique=True,
        sqlite_where=sa.text(WITHOUT_USER_WHERE),
        postgresql_where=sa.text(WITHOUT_USER_WHERE),
    )


def downgrade() -> None:
    op.drop_index(WITHOUT_USER, table_name="approval_actions")
    op.drop_index(WITH_USER, table_name="approval_actions")
