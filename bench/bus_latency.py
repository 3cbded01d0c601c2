"""How long a message takes from one process's publish to another's handler: Redis pub/sub (the hub's bus,
`mcp_hub.fanout.RedisBus`) against PostgreSQL LISTEN/NOTIFY (asyncpg), on the same machine (issue 12 §4).

    .venv/bin/python bench/bus_latency.py [--redis redis://127.0.0.1:6379/15]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--messages 300]

Prints p50/p99/max in milliseconds for each; one message at a time (the decision path publishes one).
The two ends run in one process but on separate connections, as two replicas would.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast

import anyio
import asyncpg  # pyright: ignore[reportMissingTypeStubs]

from mcp_hub.fanout import RedisBus, Topic


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(len(ordered) * 0.99))]
    median = statistics.median(ordered)
    return f"{name:<24} p50 {median * 1000:6.3f} ms  p99 {p99 * 1000:6.3f} ms  max {ordered[-1] * 1000:6.3f} ms"


async def redis_round_trips(url: str, messages: int) -> list[float]:
    prefix = f"bench:bus:{uuid.uuid4().hex}:"
    sender, receiver = RedisBus(url, prefix=prefix), RedisBus(url, prefix=prefix)
    arrived: list[float] = []
    event = anyio.Event()

    async def heard(message: Mapping[str, Any]) -> None:
        arrived.append(time.perf_counter() - float(message["sent"]))
        event.set()

    receiver.subscribe(Topic.APPROVALS, heard)
    async with receiver.running(), sender.running():
        for _ in range(messages):
            event = anyio.Event()
            await sender.publish(Topic.APPROVALS, {"sent": time.perf_counter()})
            await event.wait()
    return arrived


async def postgres_round_trips(url: str, messages: int) -> list[float]:
    channel = f"bench_{uuid.uuid4().hex[:12]}"
    connect = cast("Callable[[str], Awaitable[Any]]", asyncpg.connect)  # pyright: ignore[reportUnknownMemberType]
    listener, notifier = await connect(url), await connect(url)
    arrived: list[float] = []
    event = anyio.Event()

    def heard(_connection: object, _pid: int, _channel: str, payload: str) -> None:
        arrived.append(time.perf_counter() - float(json.loads(payload)["sent"]))
        event.set()

    await listener.add_listener(channel, heard)
    try:
        for _ in range(messages):
            event = anyio.Event()
            payload = json.dumps({"sent": time.perf_counter()})
            await notifier.execute("SELECT pg_notify($1, $2)", channel, payload)
            await event.wait()
    finally:
        await listener.close()
        await notifier.close()
    return arrived


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    print(summary("redis pub/sub", await redis_round_trips(args.redis, args.messages)))
    print(summary("postgres LISTEN/NOTIFY", await postgres_round_trips(args.postgres, args.messages)))


if __name__ == "__main__":
    anyio.run(main)
