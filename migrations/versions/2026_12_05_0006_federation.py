"""Federating more than tools: the audit trail names the MCP method; sealed `requestState` needs shared keys and
a single-use record.

Revision ID: 0006_federation
Revises: 0005_used_assertions
Create Date: 2026-12-05

- `audit_calls.method`: `tools/call` for every existing row (the only method audited before).
- `hub_secrets`: symmetric keys every replica shares (the `requestState` sealing key).
- `used_request_states`: ids of sealed `requestState` values already used, until they expire.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_federation"
down_revision: str | None = "0005_used_assertions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_calls") as batch:
        batch.add_column(sa.Column("method", sa.String(64), nullable=False, server_default="tools/call"))
    op.create_table(
        "hub_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_hub_secrets"),
    )
    op.create_table(
        "used_request_states",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_used_request_states"),
    )
    op.create_index("ix_used_request_states_expires_at", "used_request_states", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_used_request_states_expires_at", table_name="used_request_states")
    op.drop_table("used_request_states")
    op.drop_table("hub_secrets")
    with op.batch_alter_table("audit_calls") as batch:
        batch.drop_column("method")
