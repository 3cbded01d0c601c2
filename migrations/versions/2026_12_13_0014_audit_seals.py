"""Seals of the audit trail (threat T24): HMACs under `[audit] seal_key`, a key the database never holds.

Revision ID: 0014_audit_seals
Revises: 0013_hold_reasons
Create Date: 2026-12-13

- `audit_seals`: one row per batch stored with a seal key (`mcp_hub.db.audit_seal`): the batch's id range, its
  last row's hash, when, the key's id and the HMAC; indexed by `last_id`.
- `audit_checkpoints.mac_key_id`, `mac`, `sealing_began`: a prune's own HMAC (NULL when pruned without a key).
  The row triggers of 0012 on `audit_checkpoints` refuse UPDATE and DELETE of these columns as of the others.
- Triggers on `audit_seals`: every UPDATE is refused, and every DELETE of a seal that no checkpoint *with a MAC*
  covers (`last_id > max(anchor_id)` of those): only a sealed prune removes seals, so a prune forged without the
  key leaves the seals of the rows it deleted behind, for `verify` to find. On PostgreSQL TRUNCATE is refused
  too; the trigger function `audit_append_only()` of 0012 is replaced by one that knows the new table (and put
  back by the downgrade).

Written by hand to match `mcp_hub.db.models`; does not import the models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_audit_seals"
down_revision: str | None = "0013_hold_reasons"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_POSTGRES_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_calls' THEN
        IF OLD.id <= (SELECT COALESCE(MAX(anchor_id), 0) FROM audit_checkpoints) THEN
            RETURN OLD;
        END IF;
    END IF;
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_seals' THEN
        IF OLD.last_id <= (SELECT COALESCE(MAX(anchor_id), 0) FROM audit_checkpoints WHERE mac IS NOT NULL) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_POSTGRES_FUNCTION_0012 = """
CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'audit_calls' THEN
        IF OLD.id <= (SELECT COALESCE(MAX(anchor_id), 0) FROM audit_checkpoints) THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""
_POSTGRES_TRIGGERS = (
    "CREATE TRIGGER audit_seals_append_only BEFORE UPDATE OR DELETE ON audit_seals"
    " FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)
_POSTGRES_TRIGGER_NAMES = ("audit_seals_append_only", "audit_seals_no_truncate")
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_seals_no_update BEFORE UPDATE ON audit_seals"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_seals refused'); END",
    "CREATE TRIGGER audit_seals_no_delete BEFORE DELETE ON audit_seals"
    " WHEN OLD.last_id > (SELECT COALESCE(MAX(anchor_id), 0) FROM audit_checkpoints WHERE mac IS NOT NULL)"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_seals refused'); END",
)
_SQLITE_TRIGGER_NAMES = ("audit_seals_no_update", "audit_seals_no_delete")
_CHECKPOINT_COLUMNS = ("mac_key_id", "mac", "sealing_began")


def upgrade() -> None:
    op.create_table(
        "audit_seals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_id", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_seals")),
    )
    op.create_index(op.f("ix_audit_seals_last_id"), "audit_seals", ["last_id"])
    # Plain ADD COLUMN (nullable, no default) on both backends: SQLite keeps the table, and so its 0012 triggers.
    op.add_column("audit_checkpoints", sa.Column("mac_key_id", sa.String(16), nullable=True))
    op.add_column("audit_checkpoints", sa.Column("mac", sa.String(64), nullable=True))
    op.add_column("audit_checkpoints", sa.Column("sealing_began", sa.Boolean(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        for statement in _POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in _POSTGRES_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name} ON audit_seals")
        op.execute(_POSTGRES_FUNCTION_0012)
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    # ALTER TABLE ... DROP COLUMN, not a batch copy: on SQLite a copy would drop the table's 0012 triggers.
    for column in reversed(_CHECKPOINT_COLUMNS):
        op.drop_column("audit_checkpoints", column)
    op.drop_index(op.f("ix_audit_seals_last_id"), table_name="audit_seals")
    op.drop_table("audit_seals")
