"""`CatalogSync` over a real database, on SQLite and PostgreSQL: listings that arrive together are applied as one
batch (issue 12: federating 100 connectors), and a batch ends in the same catalog, pins, `catalog_tools` rows and
audit rows as one listing at a time would, with one list-changed round for the whole batch."""

from __future__ import annotations

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.catalog.sync import CatalogSync, PinPolicy
from mcp_hub.db.audit import AuditEvent
from mcp_hub.db.catalog import CatalogStore, ConnectorRecord
from mcp_hub.db.pins import PinStore
from mcp_hub.domain import AuditOutcome, ConnectorId, ConnectorListing, PinStatus
from mcp_hub.gateway.notifications import ChangeNotifier

pytestmark = pytest.mark.anyio

CONNECTORS = [ConnectorId(f"c{number}") for number in range(8)]
TOOLS = 5


def listing(connector_id: str) -> ConnectorListing:
    return ConnectorListing(
        tools=tuple(
            {"name": f"t{index}", "description": f"Tool {index} of {connector_id}.", "inputSchema": {"type": "object"}}
            for index in range(TOOLS)
        )
    )


async def test_listings_arriving_together_are_applied_as_one_batch_with_one_list_changed_round(
    migrated: AsyncEngine,
) -> None:
    """Our choice (issue 12): what arrives while a batch is applied waits for the next batch, which decides,
    records and announces all of it at once; every connector's caller returns only once its listing is served."""
    store, pins = CatalogStore(migrated), PinStore(migrated)
    await store.register_connectors(
        [ConnectorRecord(connector_id, "http", "2026-07-28", True, "a" * 64) for connector_id in CONNECTORS]
    )
    notifier = ChangeNotifier()
    catalog = Catalog(listeners=[notifier.on_catalog_change])
    audited: list[AuditEvent] = []
    first_batch_may_finish = anyio.Event()

    async def audit(event: AuditEvent) -> None:
        audited.append(event)
        if len(audited) == 1:
            await first_batch_may_finish.wait()  # the others arrive meanwhile

    sync = CatalogSync(catalog, store, pins, policy=PinPolicy(auto=frozenset(CONNECTORS)), audit=audit)
    async with notifier.running():
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(sync.connector_listed, CONNECTORS[0], listing(CONNECTORS[0]))
                await anyio.wait_all_tasks_blocked()  # its batch waits on its first audit row
                for connector_id in CONNECTORS[1:]:
                    tasks.start_soon(sync.connector_listed, connector_id, listing(connector_id))
                await anyio.wait_all_tasks_blocked()
                assert sync.applied == 0
                first_batch_may_finish.set()
            await anyio.wait_all_tasks_blocked()  # the notifier's round

    assert (sync.batches, sync.applied) == (2, len(CONNECTORS))
    assert notifier.notifications_sent == 2
    names = {f"{connector_id}__t{index}" for connector_id in CONNECTORS for index in range(TOOLS)}
    assert {entry.public_name for entry in catalog.tools.entries()} == names
    assert {tool.public_name for tool in await store.catalog()} == names
    assert {record.public_name for record in await pins.approved()} == names
    assert {event.public_name for event in audited} == names
    assert {event.outcome for event in audited} == {AuditOutcome.DEFINITION_ACCEPTED}

    # The review watcher's re-application of every connector changes nothing and rewrites nothing.
    before = {tool.public_name: tool.last_seen for tool in await store.catalog()}
    await sync.reapply()
    assert (sync.batches, sync.applied) == (3, 2 * len(CONNECTORS))
    assert {tool.public_name: tool.last_seen for tool in await store.catalog()} == before
    assert len(audited) == len(names)


async def test_a_removed_connector_is_not_brought_back_by_a_later_batch(migrated: AsyncEngine) -> None:
    """Our choice: the connector's last listing is forgotten with it, so neither a batch nor the review watcher's
    re-application serves it again."""
    store, pins = CatalogStore(migrated), PinStore(migrated)
    await store.register_connectors([ConnectorRecord(CONNECTORS[0], "http", "2026-07-28", True, "a" * 64)])
    catalog = Catalog()
    sync = CatalogSync(catalog, store, pins, policy=PinPolicy(auto=frozenset(CONNECTORS[:1])))
    await sync.connector_listed(CONNECTORS[0], listing(CONNECTORS[0]))
    assert len(catalog.tools) == TOOLS
    await sync.connector_removed(CONNECTORS[0])
    await sync.reapply()
    assert len(catalog.tools) == 0
    assert await store.catalog() == []
    assert {record.status for record in await pins.history(f"{CONNECTORS[0]}__t0")} == {PinStatus.APPROVED}
