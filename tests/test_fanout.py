"""The bus between replicas (`mcp_hub.fanout`, issue 12 §4) over a real Redis.

Our choices: a message reaches the other processes, never the one that sent it (each component already acted on
its own change); announcements from synchronous code arrive in order and are flushed when the bus stops; Redis
being unreachable never stops a hub (its re-checks carry it), and `/healthz` says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.subscriptions import ToolsListChanged

from mcp_hub.fanout import LocalBus, RedisBus, Topic, bus_for
from tests.conftest import fault_connector, running_hub, write_config
from tests.test_limits import REDIS_URL, require_redis

pytestmark = pytest.mark.anyio


class Heard:
    def __init__(self, expected: int) -> None:
        self.messages: list[Mapping[str, Any]] = []
        self._expected = expected
        self.all_heard = anyio.Event()

    async def __call__(self, message: Mapping[str, Any]) -> None:
        self.messages.append(message)
        if len(self.messages) >= self._expected:
            self.all_heard.set()


@pytest.mark.redis
async def test_a_message_reaches_the_other_replicas_and_not_its_sender() -> None:
    await require_redis()
    prefix = f"test:bus:{uuid.uuid4().hex}:"
    sender, receiver = RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)
    own, other = Heard(1), Heard(3)
    sender.subscribe(Topic.APPROVALS, own)
    receiver.subscribe(Topic.APPROVALS, other)
    receiver.subscribe(Topic.GRANTS, other)
    async with sender.running(), receiver.running():
        await sender.publish(Topic.APPROVALS, {"id": "apv_1", "status": "approved"})
        sender.announce(Topic.GRANTS, {})
        sender.announce(Topic.APPROVALS, {"id": "apv_2", "status": "done"})
        with anyio.fail_after(5):
            await other.all_heard.wait()
    assert other.messages == [{"id": "apv_1", "status": "approved"}, {}, {"id": "apv_2", "status": "done"}]
    assert own.messages == []
    assert sender.shared
    assert receiver.health() == {"backend": "redis", "ok": True, "listening": True}


@pytest.mark.redis
async def test_announcements_are_flushed_when_a_publishing_process_stops() -> None:
    """The `mcp-hub` command announces a grant change and exits at once: the replicas still hear it."""
    await require_redis()
    prefix = f"test:bus:{uuid.uuid4().hex}:"
    replica, command = RedisBus(REDIS_URL, prefix=prefix), RedisBus(REDIS_URL, prefix=prefix)
    heard = Heard(1)
    replica.subscribe(Topic.GRANTS, heard)
    async with replica.running():
        async with command.running():
            command.announce(Topic.GRANTS, {})
        with anyio.fail_after(5):
            await heard.all_heard.wait()


async def test_an_unreachable_redis_does_not_stop_the_hub_and_shows_in_health() -> None:
    bus = RedisBus("redis://127.0.0.1:1/0", prefix="test:bus:down:")
    bus.subscribe(Topic.CATALOG, Heard(1))
    with anyio.fail_after(10):
        async with bus.running():
            await bus.publish(Topic.CATALOG, {"connector": "gate"})
            health = bus.health()
    assert (health["ok"], health["listening"]) == (False, False)
    assert "redis unreachable" in health["last_error"]


async def test_without_redis_a_hub_is_alone() -> None:
    bus = bus_for("", prefix="mcp-hub:limits:")
    assert isinstance(bus, LocalBus)
    assert not bus.shared
    async with bus.running():
        await bus.publish(Topic.APPROVALS, {"id": "apv_1"})


@pytest.mark.redis
async def test_a_catalog_change_is_announced_and_another_replicas_announcement_makes_the_hub_relist(
    tmp_path: Path,
) -> None:
    """Issue 12 §4, our design: each replica has its own downstream connections, and a downstream may tell only
    some of them of a change (or none: a silent redefinition). A hub announces each change of its catalog on the
    `catalog` topic, and on another's announcement re-lists that connector, so its own listen streams hear of it
    (without the bus: at the next `[catalog] relist_seconds`, 300 s)."""
    await require_redis()
    prefix = f"test:bus:{uuid.uuid4().hex}:"
    config = write_config(
        tmp_path,
        {"faults": fault_connector()},
        extra=f'[limits]\nredis_url = "{REDIS_URL}"\nredis_key_prefix = "{prefix}"\n',
    )
    other_replica = RedisBus(REDIS_URL, prefix=prefix)
    announced = Heard(1)
    other_replica.subscribe(Topic.CATALOG, announced)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        async with (
            other_replica.running(),
            Client(hub.url, mode="2026-07-28") as client,
            client.listen(tools_list_changed=True) as changes,
        ):
            # The downstream changes a description without telling anyone: this hub cannot know.
            await client.call_tool("faults__redefine", {"name": "pid", "description": "changed", "announce": False})
            await other_replica.publish(Topic.CATALOG, {"connector": "faults"})  # another replica saw it
            with anyio.fail_after(10):
                event = await changes.__anext__()
                await announced.all_heard.wait()
        entry = hub.hub.catalog.tools.get("faults__pid")
    assert isinstance(event, ToolsListChanged)
    assert entry is not None
    assert entry.definition["description"] == "changed"
    assert announced.messages == [{"connector": "faults"}]
