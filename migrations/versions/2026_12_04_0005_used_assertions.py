"""A table of its own for used client-assertion ids (RFC 7523 §3 item 7), which lived in `revoked_tokens`.

Revision ID: 0005_used_assertions
Revises: 0004_one_open_action
Create Date: 2026-12-04

`private_key_jwt` assertions are single use; their uses were recorded in `revoked_tokens` under the key
`assertion:<54 hex digits of SHA-256(client id, jti)>`. They move to `used_assertions`, keyed by the same 54
hex digits, so an assertion used just before the upgrade is still refused after it (the replay protection
has no gap). The downgrade moves them back under the prefix.

Written by hand to match `mcp_hub.db.models.UsedAssertion`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_used_assertions"
down_revision: str | None = "0004_one_open_action"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIX = "assertion:"


def _revoked_tokens() -> sa.TableClause:
    return sa.table(
        "revoked_tokens",
        sa.column("jti", sa.String(64)),
        sa.column("revoked_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )


def _used_assertions() -> sa.TableClause:
    return sa.table(
        "used_assertions",
        sa.column("key", sa.String(64)),
        sa.column("used_at", sa.DateTime(timezone=True)),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )


def upgrade() -> None:
    op.create_table(
        "used_assertions",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_used_assertions"),
    )
    op.create_index("ix_used_assertions_expires_at", "used_assertions", ["expires_at"])
    revoked, used = _revoked_tokens(), _used_assertions()
    moved = sa.select(sa.func.substr(revoked.c.jti, len(PREFIX) + 1), revoked.c.revoked_at, revoked.c.expires_at)
    assertions = revoked.c.jti.like(PREFIX + "%")
    op.execute(used.insert().from_select(["key", "used_at", "expires_at"], moved.where(assertions)))
    op.execute(revoked.delete().where(assertions))


def downgrade() -> None:
    revoked, used = _revoked_tokens(), _used_assertions()
    moved = sa.select(sa.literal(PREFIX) + used.c.key, used.c.used_at, used.c.expires_at)
    op.execute(revoked.insert().from_select(["jti", "revoked_at", "expires_at"], moved))
    op.drop_index("ix_used_assertions_expires_at", table_name="used_assertions")
    op.drop_table("used_assertions")
