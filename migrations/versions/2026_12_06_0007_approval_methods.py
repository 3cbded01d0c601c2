"""Approvals hold prompt gets and resource reads as well as tool calls.

Revision ID: 0007_approval_methods
Revises: 0006_federation
Create Date: 2026-12-06

- `approval_actions.method`: `tools/call` for every existing row (the only method held before).
- `approval_actions.public_name` and `downstream_name` become text: a held read names a resource URI, which
  may be longer than a tool name.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_approval_methods"
down_revision: str | None = "0006_federation"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approval_actions") as batch:
        batch.add_column(sa.Column("method", sa.String(64), nullable=False, server_default="tools/call"))
        batch.alter_column("public_name", type_=sa.Text(), existing_type=sa.String(64), existing_nullable=False)
        batch.alter_column("downstream_name", type_=sa.Text(), existing_type=sa.String(256), existing_nullable=False)


def downgrade() -> None:
    # Rows naming a URI longer than the old columns cannot go back: they are closed and dropped first.
    op.execute(
        "DELETE FROM approval_actions WHERE method <> 'tools/call' OR length(public_name) > 64"
        " OR length(downstream_name) > 256"
    )
    with op.batch_alter_table("approval_actions") as batch:
        batch.alter_column("downstream_name", type_=sa.String(256), existing_type=sa.Text(), existing_nullable=False)
        batch.alter_column("public_name", type_=sa.String(64), existing_type=sa.Text(), existing_nullable=False)
        batch.drop_column("method")
