"""The hub's tables, as SQLAlchemy 2.x declarative models.

Three tables: `connectors` (one row per configured downstream server, kept after it leaves the
configuration), `catalog_tools` (every tool a connector has offered, with `removed_at` once it stops)
and `audit_calls` (one row per `tools/call`, deliberately without a foreign key so the audit trail
outlives the connector). The schema itself is owned by the Alembic migrations in `migrations/`; a test
checks that these models and the migrations agree.

Every timestamp is timezone-aware UTC (`UtcDateTime`): naive datetimes are refused when written, and
SQLite's naive values are read back as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can refer to them on every backend."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only accepts aware datetimes and always returns UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: use an aware UTC datetime")
        # SQLite stores the wall-clock digits only, so everything is normalised to UTC first: that keeps
        # the stored strings comparable and sortable.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base bound to the hub's `metadata`."""

    metadata = metadata


class Connector(Base):
    """A downstream server as configured, and its last known health."""

    __tablename__ = "connectors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    protocol: Mapped[str] = mapped_column(String(16))
    """The configured choice: `auto`, `legacy` or `2026-07-28`."""
    era: Mapped[str | None] = mapped_column(String(16))
    """The protocol era actually negotiated, e.g. `2025-11-25`; NULL until connected."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    config_sha256: Mapped[str] = mapped_column(String(64))
    health: Mapped[str] = mapped_column(String(16))
    health_detail: Mapped[str | None] = mapped_column(Text)
    tool_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CatalogTool(Base):
    """One tool a connector offers (or offered: `removed_at` is set once it disappears)."""

    __tablename__ = "catalog_tools"
    __table_args__ = (UniqueConstraint("connector_id", "downstream_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(String(32), ForeignKey("connectors.id", ondelete="CASCADE"))
    downstream_name: Mapped[str] = mapped_column(String(256))
    public_name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 hex of the canonical JSON (RFC 8785) of `definition`, computed by the caller."""
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditCall(Base):
    """One tool call through the hub, whatever its outcome.

    The string columns are unbounded on purpose: an audit row must never be refused for its length,
    since the writer keeps retrying a batch until it is stored.
    """

    __tablename__ = "audit_calls"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "connector_id", "at"),
    )

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the autoincrementing rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    client: Mapped[str] = mapped_column(Text)
    session: Mapped[str | None] = mapped_column(Text)
    public_name: Mapped[str] = mapped_column(Text)
    connector_id: Mapped[str | None] = mapped_column(Text)
    downstream_name: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    latency_ms: Mapped[float] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
