"""The tamper-evident audit trail (issue 13 §7, threat T24): a hash chain, checkpoints, append-only triggers.

Revision ID: 0012_audit_chain
Revises: 0011_audit_downstream_time
Create Date: 2026-12-11

- `audit_calls.prev_hash`, `audit_calls.row_hash`: each row's SHA-256 over its columns and the previous row's hash
  (encoding version 1, `mcp_hub.db.audit_chain`); the rows already there are chained here, in id order.
- `audit_checkpoints`: what the retention prune deleted (the anchor row's id, time and hash), chained likewise.
- `ix_audit_calls_client_at`: the audit queries filter by agent (`client`).
- Triggers: every UPDATE of `audit_calls` is refused, and every DELETE of a row that no checkpoint covers
  (`id > max(anchor_id)`); `audit_checkpoints` refuses UPDATE and DELETE; on PostgreSQL TRUNCATE of either is
  refused too. The retention prune writes its checkpoint first, then deletes up to its anchor.

Written by hand to match `mcp_hub.db.models`; does not import the models. The version-1 row encoding is
copied here on purpose: this migration must hash old rows the way version 1 did, whatever later code does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import rfc8785
import sqlalchemy as sa
from alembic import op

revision: str = "0012_audit_chain"
down_revision: str | None = "0011_audit_downstream_time"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS = "0" * 64
_HASHED = (
    "id",
    "at",
    "client",
    "session",
    "public_name",
    "connector_id",
    "downstream_name",
    "outcome",
    "latency_ms",
    "detail",
    "method",
    "downstream_ms",
    "prev_hash",
)
_TEXT = ("client", "session", "public_name", "connector_id", "downstream_name", "outcome", "detail", "method")
_CHUNK = 1000

_POSTGRES_FUNCTION = """
CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
    "CREATE TRIGGER audit_calls_append_only BEFORE UPDATE OR DELETE ON audit_calls"
    " FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_calls_no_truncate BEFORE TRUNCATE ON audit_calls"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints"
    " FOR EACH ROW EXECUTE FUNCTION audit_append_only()",
    "CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints"
    " FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only()",
)
_SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_calls_no_update BEFORE UPDATE ON audit_calls"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_calls refused'); END",
    "CREATE TRIGGER audit_calls_no_delete BEFORE DELETE ON audit_calls"
    " WHEN OLD.id > (SELECT COALESCE(MAX(anchor_id), 0) FROM audit_checkpoints)"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_calls refused'); END",
    "CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: UPDATE on audit_checkpoints refused'); END",
    "CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints"
    " BEGIN SELECT RAISE(ABORT, 'audit trail is append-only: DELETE on audit_checkpoints refused'); END",
)
_TRIGGER_NAMES = (
    ("audit_calls_append_only", "audit_calls"),
    ("audit_calls_no_truncate", "audit_calls"),
    ("audit_checkpoints_append_only", "audit_checkpoints"),
    ("audit_checkpoints_no_truncate", "audit_checkpoints"),
)
_SQLITE_TRIGGER_NAMES = (
    "audit_calls_no_update",
    "audit_calls_no_delete",
    "audit_checkpoints_no_update",
    "audit_checkpoints_no_delete",
)


def _row_hash_v1(values: dict[str, Any]) -> str:
    document: dict[str, Any] = {"v": 1}
    for column in _HASHED:
        value = values[column]
        if column == "at":
            at: datetime = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
            value = at.astimezone(UTC).isoformat(timespec="microseconds")
        document[column] = value
    return hashlib.sha256(rfc8785.dumps(document)).hexdigest()


def _chain_existing_rows() -> None:
    calls = sa.table(
        "audit_calls",
        sa.column("id", sa.BigInteger()),
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.Text()) for name in _TEXT),
        sa.column("latency_ms", sa.Float()),
        sa.column("downstream_ms", sa.Float()),
        sa.column("prev_hash", sa.String(64)),
        sa.column("row_hash", sa.String(64)),
    )
    connection = op.get_bind()
    previous, after = _GENESIS, 0
    while True:
        query = (
            sa.select(*(calls.c[name] for name in _HASHED if name != "prev_hash"))
            .where(calls.c.id > after)
            .order_by(calls.c.id)
            .limit(_CHUNK)
        )
        rows = connection.execute(query).mappings().all()
        if not rows:
            return
        updates: list[dict[str, Any]] = []
        for row in rows:
            values = {**row, "prev_hash": previous}
            previous = _row_hash_v1(values)
            updates.append({"key": row["id"], "prev": values["prev_hash"], "hash": previous})
        connection.execute(
            calls.update()
            .where(calls.c.id == sa.bindparam("key"))
            .values(prev_hash=sa.bindparam("prev"), row_hash=sa.bindparam("hash")),
            updates,
        )
        after = rows[-1]["id"]


def upgrade() -> None:
    with op.batch_alter_table("audit_calls") as batch:
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.String(64), nullable=True))
    _chain_existing_rows()
    with op.batch_alter_table("audit_calls") as batch:
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("row_hash", existing_type=sa.String(64), nullable=False)
    op.create_index(op.f("ix_audit_calls_client_at"), "audit_calls", ["client", "at"])
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchor_id", sa.BigInteger(), nullable=False),
        sa.Column("anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("anchor_hash", sa.String(64), nullable=False),
        sa.Column("pruned_rows", sa.Integer(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("checkpoint_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_POSTGRES_FUNCTION)
        for statement in _POSTGRES_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table in _TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute("DROP FUNCTION audit_append_only()")
    else:
        for name in _SQLITE_TRIGGER_NAMES:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("audit_checkpoints")
    op.drop_index(op.f("ix_audit_calls_client_at"), table_name="audit_calls")
    with op.batch_alter_table("audit_calls") as batch:
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
