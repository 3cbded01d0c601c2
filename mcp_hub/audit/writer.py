"""`AuditWriter`: a bounded queue of audit events, drained into the database in batches.

Recording never drops an event: when the queue is full `record()` waits (backpressure on the calls
being audited), and a batch whose insert fails is kept and retried with capped exponential backoff
until it is stored. Batches are written in the order their events were recorded.

A batch is written as soon as it holds `batch_size` events, or `flush_interval_ms` after its first
event arrived, or at once when someone awaits `flush()` or `running()` is being left. With a seal key
(`[audit] seal_key`) each batch is sealed in its own transaction (`mcp_hub.db.audit_seal`): work for this task,
never for the calls being audited.

Observers (`observe()`) see every event as it is recorded, before it is queued: the per-call log line,
the metrics and the audit sinks hang off this one place, so that nothing audited escapes them and nothing
else is counted. An observer must be quick and must not block; one that raises is logged and skipped.

Stored-listeners (`on_stored()`) see each batch once it is stored, as `AuditRecord`s with their ids and chain
hashes, in chain order: the audit sinks (`mcp_hub.audit.sinks`) hang off this, so what they forward is exactly
what the database holds. They run in the writer's task: they must only queue, never wait.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
import structlog
from sqlalchemy.exc import SQLAlchemyError

from mcp_hub.config.settings import AuditSection
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_query import AuditRecord
from mcp_hub.db.audit_seal import SealKey
from mcp_hub.errors import DatabaseError

_log = structlog.get_logger(__name__)

AuditObserver = Callable[[AuditEvent], None]
"""Called with every recorded event, in the recording task; must not block."""
StoredListener = Callable[[Sequence[AuditRecord]], None]
"""Called with every stored batch, in the writer's task; must not block."""

_RETRYABLE = (SQLAlchemyError, DatabaseError, OSError)
"""What a failed insert may raise: the database is down, locked or refusing; the batch is retried."""


class AuditWriter:
    """Writes `AuditEvent`s to an `AuditStore` in batches, from a background task run by `running()`."""

    @classmethod
    def configured(cls, store: AuditStore, settings: AuditSection, *, seal_key: SealKey | None) -> AuditWriter:
        """A writer with the batching of `[audit]`, sealing with `seal_key` (the key `seal_key` names)."""
        return cls(
            store,
            batch_size=settings.batch_size,
            flush_interval_ms=settings.flush_interval_ms,
            queue_size=settings.queue_size,
            seal_key=seal_key,
        )

    def __init__(
        self,
        store: AuditStore,
        *,
        batch_size: int,
        flush_interval_ms: int,
        queue_size: int,
        retry_initial_seconds: float = 0.1,
        retry_max_seconds: float = 10.0,
        seal_key: SealKey | None = None,
    ) -> None:
        if batch_size <= 0 or flush_interval_ms <= 0 or queue_size <= 0:
            raise ValueError("batch_size, flush_interval_ms and queue_size must be positive")
        if retry_initial_seconds <= 0 or retry_max_seconds < retry_initial_seconds:
            raise ValueError("retry delays must be positive, the maximum at least the initial one")
        self._store = store
        self._seal_key = seal_key
        self._batch_size = batch_size
        self._flush_interval = flush_interval_ms / 1000
        self._queue_size = queue_size
        self._retry_initial = retry_initial_seconds
        self._retry_max = retry_max_seconds
        self._pending: deque[AuditEvent] = deque()
        self._recorded = 0  # events ever queued
        self._written = 0  # events stored; always a prefix of the recorded ones
        self._flush_target = 0  # the writer skips the interval until `_written` reaches this
        self._in_flight = 0
        self._running = False
        self._closing = False
        # The writer waits on `_wake`; recorders and flushers wait on `_progress`. Each is replaced by
        # a fresh Event once it fired, and every waiter re-checks the state it waits for in a loop.
        self._wake = anyio.Event()
        self._progress = anyio.Event()
        self._observers: list[AuditObserver] = []
        self._stored_listeners: list[StoredListener] = []

    def observe(self, observer: AuditObserver) -> None:
        """Call `observer` with every event recorded from now on."""
        self._observers.append(observer)

    def on_stored(self, listener: StoredListener) -> None:
        """Call `listener` with every batch stored from now on (records with ids and hashes, in chain order)."""
        self._stored_listeners.append(listener)

    @property
    def queue_depth(self) -> int:
        """Events recorded but not yet stored (queued or being written)."""
        return self._recorded - self._written

    async def record(self, event: AuditEvent) -> None:
        """Queue `event`; waits while the queue is full. Raises `RuntimeError` outside `running()`."""
        self._require_running()
        self._observe(event)
        while not self.has_room:
            await self._progress.wait()
            self._require_running()
        self._enqueue(event)

    @property
    def has_room(self) -> bool:
        """Whether `record_nowait` may be called now (the queue is not full)."""
        return len(self._pending) < self._queue_size

    def record_nowait(self, event: AuditEvent) -> None:
        """Queue `event` without waiting (the hot path: no trip through the event loop); only while `has_room`,
        else `RuntimeError`."""
        self._require_running()
        if not self.has_room:
            raise RuntimeError("the audit queue is full: await record()")
        self._observe(event)
        self._enqueue(event)

    def _observe(self, event: AuditEvent) -> None:
        for observer in self._observers:
            try:
                observer(event)
            except Exception:  # noqa: BLE001 - an observer's bug must not cost the call or its audit row
                _log.exception("audit observer failed", observer=getattr(observer, "__qualname__", repr(observer)))

    def _enqueue(self, event: AuditEvent) -> None:
        self._pending.append(event)
        self._recorded += 1
        # The writer waits for the first event, then for a full batch (or its flush interval): waking it for
        # every event in between would cost a trip through the event loop per call for nothing.
        if len(self._pending) == 1 or len(self._pending) >= self._batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Return once every event recorded before this call is stored."""
        self._require_running()
        target = self._recorded
        self._flush_target = max(self._flush_target, target)
        self._wake.set()
        while self._written < target:
            await self._progress.wait()
            self._require_running()

    def running(self) -> AbstractAsyncContextManager[AuditWriter]:
        """Run the background writer; on exit, store everything still queued, then stop."""
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncGenerator[AuditWriter, None]:
        if self._running:
            raise RuntimeError("this AuditWriter is already running")
        self._running, self._closing = True, False
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._drain)
                try:
                    yield self
                finally:
                    self._closing = True
                    self._wake.set()
        finally:
            self._running = False

    def _require_running(self) -> None:
        if not self._running:
            raise RuntimeError("AuditWriter is not running: use `async with writer.running():`")

    def _signal_progress(self) -> None:
        fired, self._progress = self._progress, anyio.Event()
        fired.set()

    async def _wait_for_wake(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    def _hurry(self) -> bool:
        return self._closing or self._flush_target > self._written

    async def _drain(self) -> None:
        try:
            while True:
                while not self._pending:
                    if self._closing:
                        return
                    await self._wait_for_wake()
                with anyio.move_on_after(self._flush_interval):
                    while len(self._pending) < self._batch_size and not self._hurry():
                        await self._wait_for_wake()
                count = min(self._batch_size, len(self._pending))
                batch = [self._pending.popleft() for _ in range(count)]
                self._in_flight = count
                self._signal_progress()  # room in the queue
                await self._write(batch)
                self._in_flight = 0
                self._written += count
                self._signal_progress()
        finally:
            # Stop accepting in the same step as the last emptiness check: nothing recorded later can
            # sit unwritten in the queue.
            self._running = False
            self._signal_progress()
            lost = len(self._pending) + self._in_flight
            if lost:
                _log.error("audit writer stopped before storing every event", lost_events=lost)

    def _announce(self, stored: Sequence[AuditRecord]) -> None:
        for listener in self._stored_listeners:
            try:
                listener(stored)
            except Exception:  # noqa: BLE001 - a sink's bug must not stop the writer
                _log.exception(
                    "audit stored-listener failed", listener=getattr(listener, "__qualname__", repr(listener))
                )

    async def _write(self, batch: list[AuditEvent]) -> None:
        delay = self._retry_initial
        attempt = 1
        while True:
            try:
                stored = await self._store.insert_audit(batch, seal_key=self._seal_key)
            except _RETRYABLE as exc:
                _log.warning(
                    "audit insert failed; retrying",
                    events=len(batch),
                    attempt=attempt,
                    retry_in_seconds=delay,
                    error=str(exc),
                    error_type=type(exc).__name__,
                )
            else:
                if attempt > 1:
                    _log.info("audit insert succeeded after retrying", events=len(batch), attempt=attempt)
                self._announce(stored)
                return
            await anyio.sleep(delay)
            delay = min(delay * 2, self._retry_max)
            attempt += 1
