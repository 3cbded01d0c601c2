"""`CatalogStore`: the connectors as configured, their last known health, and the catalog of their tools.

A connector's row outlives its file (it becomes `disabled`, its history kept); a tool's row outlives the tool
(`removed_at` is set), so the catalog records first and last sightings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Row, Table, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_hub.db._base import Store, advisory_xact_lock, columns_of, record_of, require_aware
from mcp_hub.db.models import CatalogTool, Connector
from mcp_hub.domain import ConnectorId, Health, member_of
from mcp_hub.errors import CatalogError, DatabaseError


@dataclass(frozen=True, slots=True)
class ConnectorRecord:
    """A connector as configured: what `register_connectors` stores."""

    id: ConnectorId
    transport: str
    protocol: str
    enabled: bool
    config_sha256: str


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """A stored connector row: configuration and last recorded health."""

    id: ConnectorId
    transport: str
    protocol: str
    era: str | None
    enabled: bool
    config_sha256: str
    health: Health
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

    connector_id: ConnectorId
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


_REGISTRATION_LOCK_KEY: Final = 0x6D63_7068_7562_0002
"""PostgreSQL advisory lock (transaction level) serialising the replicas' registration of the connectors."""


class CatalogStore(Store):
    """The connectors as configured (with their last health) and every tool they offer or offered."""

    async def register_connectors(self, connectors: Sequence[ConnectorRecord]) -> None:
        """Upsert the configured connectors; ones no longer configured become disabled (history is kept)."""
        ids = [record.id for record in connectors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate connector ids in {ids}")
        now = self._clock()
        configured = {record.id: record for record in connectors}
        async with self._writes.begin() as session:
            # Replicas starting together each register the same connectors: one at a time, or both insert a row.
            await advisory_xact_lock(session, _REGISTRATION_LOCK_KEY)
            existing = {row.id: row for row in (await session.scalars(select(Connector))).all()}
            for record in connectors:
                row = existing.get(record.id)
                if row is None:
                    session.add(_new_connector(record, now))
                else:
                    _update_connector(row, record, now)
            for row in existing.values():
                if row.id not in configured and (row.enabled or row.health != Health.DISABLED):
                    row.enabled = False
                    row.health = Health.DISABLED
                    row.health_detail = "no longer configured"
                    row.updated_at = now

    async def record_health(
        self, connector_id: str, health: Health, detail: str | None, era: str | None, tool_count: int | None = None
    ) -> None:
        """Store a connector's health and the era it negotiated, if any."""
        health = member_of(Health, health, "health")
        now = self._clock()
        async with self._writes.begin() as session:
            row = await session.get(Connector, connector_id)
            if row is None:
                raise DatabaseError(f"connector {connector_id!r} is not registered")
            row.health = health
            row.health_detail = detail
            row.era = era
            row.updated_at = now
            if tool_count is not None:
                row.tool_count = tool_count
            if health is Health.READY:
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
        connector = ConnectorId(connector_id)
        return (await self.sync_catalogs({connector: tools}, now))[connector]

    async def sync_catalogs(
        self, catalogs: Mapping[ConnectorId, Sequence[ToolRecord]], now: datetime
    ) -> dict[ConnectorId, CatalogDiff]:
        """`sync_catalog` for several connectors, in one transaction (a batch of connectors listed together): all
        of them, or none if one raises."""
        require_aware("now", now)
        indexed = {
            connector_id: (
                _index_unique(tools, lambda tool: tool.public_name, "public name"),
                _index_unique(tools, lambda tool: tool.downstream_name, "downstream name"),
            )
            for connector_id, tools in catalogs.items()
        }
        async with self._writes.begin() as session:
            return {
                connector_id: await _sync(session, connector_id, by_public, by_downstream, now)
                for connector_id, (by_public, by_downstream) in indexed.items()
            }

    async def catalog(self, include_removed: bool = False) -> list[CatalogToolRecord]:
        """The catalog sorted by public name: live tools, and removed ones too if asked."""
        query = select(CatalogTool).order_by(CatalogTool.public_name)
        if not include_removed:
            query = query.where(CatalogTool.removed_at.is_(None))
        async with self._reads() as session:
            return [_catalog_record(row) for row in (await session.scalars(query)).all()]


_TOOL_KEYS = (
    CatalogTool.id,
    CatalogTool.connector_id,
    CatalogTool.downstream_name,
    CatalogTool.public_name,
    CatalogTool.sha256,
    CatalogTool.removed_at,
)
_TOOLS = cast("Table", CatalogTool.__table__)
_ToolKey = Row[int, str, str, str, str, datetime | None]
"""What a sync reads of a stored tool: not its definition (decoding 10,000 JSON definitions to compare digests
was most of a re-listing's cost)."""


async def _sync(
    session: AsyncSession,
    connector_id: str,
    by_public: dict[str, ToolRecord],
    by_downstream: dict[str, ToolRecord],
    now: datetime,
) -> CatalogDiff:
    await _lock_connector(session, connector_id)
    rows = {
        row.downstream_name: row
        for row in await session.execute(select(*_TOOL_KEYS).where(CatalogTool.connector_id == connector_id))
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
            updates.append({"id": row.id, "last_seen": now, "removed_at": None} | _tool_values(connector_id, tool))
        else:
            seen_ids.append(row.id)
    gone_ids = [row.id for name, row in rows.items() if name not in by_downstream and row.removed_at is None]

    if inserts:
        await session.execute(insert(_TOOLS), inserts)  # Core (the table): no ORM bookkeeping per row
    if updates:
        await session.execute(update(CatalogTool), updates)
    if seen_ids:
        await session.execute(
            update(CatalogTool).where(CatalogTool.id.in_(seen_ids)).values(last_seen=now, removed_at=None)
        )
    if gone_ids:
        await session.execute(update(CatalogTool).where(CatalogTool.id.in_(gone_ids)).values(removed_at=now))
    await session.execute(
        update(Connector).where(Connector.id == connector_id).values(tool_count=len(by_public), updated_at=now)
    )
    return CatalogDiff(
        added=sorted(set(by_public) - set(was_live)),
        changed=sorted(name for name, tool in by_public.items() if was_live.get(name, tool.sha256) != tool.sha256),
        removed=sorted(set(was_live) - set(by_public)),
    )


def _new_connector(record: ConnectorRecord, now: datetime) -> Connector:
    health = Health.CONNECTING if record.enabled else Health.DISABLED
    return Connector(**columns_of(record, health=health, tool_count=0, registered_at=now, updated_at=now))


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
        row.health, row.health_detail = Health.DISABLED, None
    elif not row.enabled or row.health == Health.DISABLED:
        row.health, row.health_detail = Health.CONNECTING, None
    row.transport = record.transport
    row.protocol = record.protocol
    row.enabled = record.enabled
    row.config_sha256 = record.config_sha256
    row.updated_at = now


def _connector_status(row: Connector) -> ConnectorStatus:
    return record_of(ConnectorStatus, row, health=Health(row.health))


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


async def _stale_holders(session: AsyncSession, connector_id: str, by_public: dict[str, ToolRecord]) -> list[_ToolKey]:
    """Rows holding a public name that an incoming tool of another downstream name claims."""
    if not by_public:
        return []
    holders = await session.execute(select(*_TOOL_KEYS).where(CatalogTool.public_name.in_(list(by_public))))
    stale: list[_ToolKey] = []
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
    return columns_of(tool, connector_id=connector_id)


def _catalog_record(row: CatalogTool) -> CatalogToolRecord:
    return record_of(CatalogToolRecord, row)
