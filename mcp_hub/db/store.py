"""`HubStore`: every read and write the hub makes to its database, as plain frozen dataclasses.

Nothing here leaks ORM objects: callers get `ConnectorStatus`, `CatalogToolRecord` and `AuditEvent`
values that stay valid after the session that loaded them is gone. Every method is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mcp_hub.db.engine import read_only
from mcp_hub.db.models import AuditCall, CatalogTool, Connector
from mcp_hub.errors import CatalogError, DatabaseError

HEALTH_STATES: Final = frozenset({"connecting", "ready", "degraded", "down", "disabled"})
AUDIT_OUTCOMES: Final = frozenset(
    {
        "ok",
        "tool_error",
        "unknown_tool",
        "unavailable",
        "timeout",
        "downstream_error",
        "cancelled",
        "internal_error",
        "forbidden",
        "approval_requested",
        "approval_approved",
        "approval_denied",
        "approval_expired",
        "approval_withdrawn",
        "approval_executed",
        "approval_returned",
        "approval_refused",
    }
)


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value.isoformat()}")


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A connector as configured: what `register_connectors` stores."""

    id: str
    transport: str
    protocol: str
    enabled: bool
    config_sha256: str


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """A stored connector row: configuration and last recorded health."""

    id: str
    transport: str
    protocol: str
    era: str | None
    enabled: bool
    config_sha256: str
    health: str
    health_detail: str | None
    tool_count: int
    registered_at: datetime
    updated_at: datetime
    last_ready_at: datetime | None


@dataclass(frozen=True, slots=True)
class ToolRecord:
    """One tool as a connector offers it now; `sha256` is of the canonical JSON of `definition`."""

    public_name: str
    downstream_name: str
    definition: dict[str, Any] = field(hash=False)
    sha256: str


@dataclass(frozen=True, slots=True)
class CatalogToolRecord:
    """A stored catalog row; `removed_at` is set once the connector stopped offering the tool."""

    connector_id: str
    public_name: str
    downstream_name: str
    definition: dict[str, Any] = field(hash=False)
    sha256: str
    first_seen: datetime
    last_seen: datetime
    removed_at: datetime | None


@dataclass(frozen=True, slots=True)
class CatalogDiff:
    """What a `sync_catalog` changed, as public names a client sees (each list sorted)."""

    added: list[str]
    changed: list[str]
    removed: list[str]

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.changed or self.removed)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One tool call through the hub; `outcome` is one of `AUDIT_OUTCOMES`, `at` is timezone-aware."""

    at: datetime
    client: str
    session: str | None
    public_name: str
    connector_id: str | None
    downstream_name: str | None
    outcome: str
    latency_ms: float
    detail: str | None

    def __post_init__(self) -> None:
        _require_aware("AuditEvent.at", self.at)
        if self.outcome not in AUDIT_OUTCOMES:
            raise ValueError(f"unknown audit outcome {self.outcome!r}: expected one of {sorted(AUDIT_OUTCOMES)}")


class HubStore:
    """The hub's persistent state: connectors, the tool catalog, and the audit trail."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = async_sessionmaker(read_only(engine), expire_on_commit=False)
        self._clock = clock

    async def register_connectors(self, connectors: Sequence[ConnectorRecord]) -> None:
        """Upsert the configured connectors; ones no longer configured become disabled (history is kept)."""
        ids = [record.id for record in connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate connector ids in {ids}")
        now = self._clock()
        configured = {record.id: record for record in connectors}
        async with self._sessions.begin() as session:
            existing = {row.id: row for row in (await session.scalars(select(Connector))).all()}
            for record in connectors:
                row = existing.get(record.id)
                if row is None:
                    session.add(_new_connector(record, now))
                else:
                    _update_connector(row, record, now)
            for row in existing.values():
                if row.id not in configured and (row.enabled or row.health != "disabled"):
                    row.enabled = False
                    row.health = "disabled"
                    row.health_detail = "no longer configured"
                    row.updated_at = now

    async def record_health(
        self, connector_id: str, health: str, detail: str | None, era: str | None, tool_count: int | None = None
    ) -> None:
        """Store a connector's health (one of `HEALTH_STATES`) and the era it negotiated, if any."""
        if health not in HEALTH_STATES:
            raise ValueError(f"unknown health {health!r}: expected one of {sorted(HEALTH_STATES)}")
        now = self._clock()
        async with self._sessions.begin() as session:
            row = await session.get(Connector, connector_id)
            if row is None:
                raise DatabaseError(f"connector {connector_id!r} is not registered")
            row.health = health
            row.health_detail = detail
            row.era = era
            row.updated_at = now
            if tool_count is not None:
                row.tool_count = tool_count
            if health == "ready":
                row.last_ready_at = now

    async def list_connectors(self) -> list[ConnectorStatus]:
        """Every stored connector, configured or not, sorted by id."""
        async with self._reads() as session:
            rows = (await session.scalars(select(Connector).order_by(Connector.id))).all()
            return [_connector_status(row) for row in rows]

    async def sync_catalog(self, connector_id: str, tools: Sequence[ToolRecord], now: datetime) -> CatalogDiff:
        """Make `tools` the live catalog of `connector_id`, in one transaction, and say what changed.

        Tools are matched on their downstream name. Tools that disappear keep their row with
        `removed_at` set; a tool that comes back is live again (reported as added). A public name held
        by a removed tool, or by a tool of this connector being replaced, is taken over; a public name a
        live tool of another connector holds raises `CatalogError`.
        """
        _require_aware("now", now)
        by_public = _index_unique(tools, lambda tool: tool.public_name, "public name")
        by_downstream = _index_unique(tools, lambda tool: tool.downstream_name, "downstream name")
        async with self._sessions.begin() as session:
            await _lock_connector(session, connector_id)
            rows = {
                row.downstream_name: row
                for row in (
                    await session.scalars(select(CatalogTool).where(CatalogTool.connector_id == connector_id))
                ).all()
            }
            was_live = {row.public_name: row.sha256 for row in rows.values() if row.removed_at is None}

            stale = await _stale_holders(session, connector_id, by_public)
            if stale:
                await session.execute(delete(CatalogTool).where(CatalogTool.id.in_([row.id for row in stale])))
                for row in stale:
                    if row.connector_id == connector_id:
                        rows.pop(row.downstream_name, None)

            inserts: list[dict[str, Any]] = []
            updates: list[dict[str, Any]] = []
            seen_ids: list[int] = []
            for name, tool in by_downstream.items():
                row = rows.get(name)
                if row is None:
                    inserts.append(_tool_values(connector_id, tool) | {"first_seen": now, "last_seen": now})
                elif row.sha256 != tool.sha256 or row.public_name != tool.public_name:
                    updates.append(
                        {"id": row.id, "last_seen": now, "removed_at": None} | _tool_values(connector_id, tool)
                    )
                else:
                    seen_ids.append(row.id)
            gone_ids = [row.id for name, row in rows.items() if name not in by_downstream and row.removed_at is None]

            if inserts:
                await session.execute(insert(CatalogTool), inserts)
            if updates:
                await session.execute(update(CatalogTool), updates)
            if seen_ids:
                await session.execute(
                    update(CatalogTool).where(CatalogTool.id.in_(seen_ids)).values(last_seen=now, removed_at=None)
                )
            if gone_ids:
                await session.execute(update(CatalogTool).where(CatalogTool.id.in_(gone_ids)).values(removed_at=now))
            await session.execute(
                update(Connector).where(Connector.id == connector_id).values(tool_count=len(tools), updated_at=now)
            )

        return CatalogDiff(
            added=sorted(set(by_public) - set(was_live)),
            changed=sorted(name for name, tool in by_public.items() if was_live.get(name, tool.sha256) != tool.sha256),
            removed=sorted(set(was_live) - set(by_public)),
        )

    async def catalog(self, include_removed: bool = False) -> list[CatalogToolRecord]:
        """The catalog sorted by public name: live tools, and removed ones too if asked."""
        query = select(CatalogTool).order_by(CatalogTool.public_name)
        if not include_removed:
            query = query.where(CatalogTool.removed_at.is_(None))
        async with self._reads() as session:
            return [_catalog_record(row) for row in (await session.scalars(query)).all()]

    async def insert_audit(self, events: Sequence[AuditEvent]) -> None:
        """Append `events` to the audit trail: one executemany in one transaction."""
        if not events:
            return
        rows = [_audit_values(event) for event in events]
        async with self._sessions.begin() as session:
            await session.execute(insert(AuditCall), rows)

    async def recent_audit(self, limit: int = 100) -> list[AuditEvent]:
        """The latest `limit` audit events, newest first."""
        query = select(AuditCall).order_by(AuditCall.at.desc(), AuditCall.id.desc()).limit(limit)
        async with self._reads() as session:
            return [_audit_event(row) for row in (await session.scalars(query)).all()]


def _new_connector(record: ConnectorRecord, now: datetime) -> Connector:
    return Connector(
        id=record.id,
        transport=record.transport,
        protocol=record.protocol,
        era=None,
        enabled=record.enabled,
        config_sha256=record.config_sha256,
        health="connecting" if record.enabled else "disabled",
        health_detail=None,
        tool_count=0,
        registered_at=now,
        updated_at=now,
        last_ready_at=None,
    )


def _update_connector(row: Connector, record: ConnectorRecord, now: datetime) -> None:
    changed = (row.transport, row.protocol, row.enabled, row.config_sha256) != (
        record.transport,
        record.protocol,
        record.enabled,
        record.config_sha256,
    )
    if not changed:
        return
    if not record.enabled:
        row.health, row.health_detail = "disabled", None
    elif not row.enabled or row.health == "disabled":
        row.health, row.health_detail = "connecting", None
    row.transport = record.transport
    row.protocol = record.protocol
    row.enabled = record.enabled
    row.config_sha256 = record.config_sha256
    row.updated_at = now


def _connector_status(row: Connector) -> ConnectorStatus:
    return ConnectorStatus(
        id=row.id,
        transport=row.transport,
        protocol=row.protocol,
        era=row.era,
        enabled=row.enabled,
        config_sha256=row.config_sha256,
        health=row.health,
        health_detail=row.health_detail,
        tool_count=row.tool_count,
        registered_at=row.registered_at,
        updated_at=row.updated_at,
        last_ready_at=row.last_ready_at,
    )


def _index_unique(tools: Sequence[ToolRecord], key: Callable[[ToolRecord], str], what: str) -> dict[str, ToolRecord]:
    index: dict[str, ToolRecord] = {}
    for tool in tools:
        name = key(tool)
        if name in index:
            raise ValueError(f"two tools share the {what} {name!r}")
        index[name] = tool
    return index


async def _lock_connector(session: AsyncSession, connector_id: str) -> None:
    # Serialises concurrent syncs of one connector on PostgreSQL; SQLite's BEGIN IMMEDIATE already has.
    found = await session.scalar(select(Connector.id).where(Connector.id == connector_id).with_for_update())
    if found is None:
        raise DatabaseError(f"connector {connector_id!r} is not registered")


async def _stale_holders(
    session: AsyncSession, connector_id: str, by_public: dict[str, ToolRecord]
) -> list[CatalogTool]:
    """Rows holding a public name that an incoming tool of another downstream name claims."""
    if not by_public:
        return []
    holders = (await session.scalars(select(CatalogTool).where(CatalogTool.public_name.in_(list(by_public))))).all()
    stale: list[CatalogTool] = []
    for row in holders:
        claimant = by_public[row.public_name]
        if row.connector_id == connector_id and row.downstream_name == claimant.downstream_name:
            continue
        if row.connector_id != connector_id and row.removed_at is None:
            raise CatalogError(
                f"public tool name {row.public_name!r} of connector {connector_id!r} is already served by "
                f"connector {row.connector_id!r}"
            )
        stale.append(row)
    return stale


def _tool_values(connector_id: str, tool: ToolRecord) -> dict[str, Any]:
    return {
        "connector_id": connector_id,
        "public_name": tool.public_name,
        "downstream_name": tool.downstream_name,
        "definition": tool.definition,
        "sha256": tool.sha256,
    }


def _catalog_record(row: CatalogTool) -> CatalogToolRecord:
    return CatalogToolRecord(
        connector_id=row.connector_id,
        public_name=row.public_name,
        downstream_name=row.downstream_name,
        definition=row.definition,
        sha256=row.sha256,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        removed_at=row.removed_at,
    )


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; an audit row must never be refused, so it is replaced.
    return value.replace("\x00", "\ufffd")


def _optional_text(value: str | None) -> str | None:
    return None if value is None else _text(value)


def _audit_values(event: AuditEvent) -> dict[str, Any]:
    return {
        "at": event.at,
        "client": _text(event.client),
        "session": _optional_text(event.session),
        "public_name": _text(event.public_name),
        "connector_id": _optional_text(event.connector_id),
        "downstream_name": _optional_text(event.downstream_name),
        "outcome": event.outcome,
        "latency_ms": event.latency_ms,
        "detail": _optional_text(event.detail),
    }


def _audit_event(row: AuditCall) -> AuditEvent:
    return AuditEvent(
        at=row.at,
        client=row.client,
        session=row.session,
        public_name=row.public_name,
        connector_id=row.connector_id,
        downstream_name=row.downstream_name,
        outcome=row.outcome,
        latency_ms=row.latency_ms,
        detail=row.detail,
    )
