"""Ready means ready (issue 9 §8): no list answered from a half-built catalog as if it were whole.

While the hub starts, every enabled connector makes its first attempt (connect and list, bounded by
`timeouts.connect_seconds`). Until each has listed or failed, a list request (`tools/list`, `prompts/list`,
`resources/list`, `resources/templates/list`) and the capabilities of `initialize` and `server/discover` wait;
if the bound passes first, they answer with what there is and `ttlMs: 0`, so that no client caches a partial
list (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/caching). `/healthz` (liveness)
says `starting` meanwhile; `/readyz` (readiness, for load balancers) is 503 while starting and while stopping,
200 in between.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import anyio

from mcp_hub.domain import HubPhase
from mcp_hub.downstream.pool import DownstreamPool


class Readiness:
    """The hub's phase, and the wait for the end of its start."""

    def __init__(self, pool: DownstreamPool, *, bound_seconds: float) -> None:
        self._pool = pool
        self._bound = bound_seconds
        self._deadline: float | None = None
        self._settled = anyio.Event()
        self._stopping = False
        self.waiting = 0
        """Requests waiting for the end of the start now (what an operator, or a test, can observe)."""
        self._waiting_changed = anyio.Event()

    @property
    def phase(self) -> HubPhase:
        if self._stopping:
            return HubPhase.STOPPING
        return HubPhase.READY if self._settled.is_set() else HubPhase.STARTING

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Readiness]:
        """Enter with the pool: the start is over when every connector made its first attempt."""
        self._deadline = anyio.current_time() + self._bound
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._watch)
            try:
                yield self
            finally:
                self._stopping = True
                tasks.cancel_scope.cancel()

    async def _watch(self) -> None:
        await self._pool.first_attempts_over()
        self._settled.set()

    async def settled(self) -> bool:
        """Wait (within the start's bound) for the end of the start; True if it ended, False if the bound passed."""
        if self._settled.is_set():
            return True
        if self._deadline is None:
            return False
        self._count_waiting(+1)
        try:
            with anyio.move_on_after(max(self._deadline - anyio.current_time(), 0)):
                await self._settled.wait()
        finally:
            self._count_waiting(-1)
        return self._settled.is_set()

    async def until_waiting(self, count: int) -> None:
        """Return once at least `count` requests wait for the end of the start."""
        while self.waiting < count:
            await self._waiting_changed.wait()

    def _count_waiting(self, change: int) -> None:
        self.waiting += change
        self._waiting_changed.set()
        self._waiting_changed = anyio.Event()
