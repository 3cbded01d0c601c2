"""What held an approval action, recorded when it was held (issue 13 §3).

Revision ID: 0013_hold_reasons
Revises: 0012_audit_chain
Create Date: 2026-12-12

- `approval_actions.hold_reasons`: each rule that held the call with the parts of it that matched, as JSON
  (`mcp_hub.approvals.reasons`), so the approver's pages explain a held call by the rules that held it, not by the
  rules as an admin edited them since. NULL for the actions stored before: they are explained by the rules as they
  read now, labelled so.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_hold_reasons"
down_revision: str | None = "0012_audit_chain"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("approval_actions") as batch:
        batch.add_column(sa.Column("hold_reasons", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval_actions") as batch:
        batch.drop_column("hold_reasons")
