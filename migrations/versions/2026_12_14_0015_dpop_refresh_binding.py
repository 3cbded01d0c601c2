"""Refresh families bound to a DPoP key (RFC 9449 §5, threat T08).

Revision ID: 0015_dpop_refresh_binding
Revises: 0014_audit_seals
Create Date: 2026-12-14

- `refresh_families.dpop_jkt`: the RFC 7638 thumbprint of the key a public client proved when the family began
  (`mcp_hub.authz.grant_authorization_code`); its refresh tokens are accepted only with a proof by that key. NULL:
  not bound (a confidential client, or no proof), as every family stored before.

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_dpop_refresh_binding"
down_revision: str | None = "0014_audit_seals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_families") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(43), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("refresh_families") as batch:
        batch.drop_column("dpop_jkt")
