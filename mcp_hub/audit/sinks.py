"""Audit sinks: every stored audit record forwarded off the hub, to a webhook or to syslog (issue 13 §7, T24).

They hang off `AuditWriter.on_stored`, not `observe`: a sink gets each record once it is in the database, with its
id and chain hash, in chain order. So the receiver holds an independent copy of the chain's hashes as they were
written, which is what lets `mcp-hub audit verify --head ID:HASH` detect a deleted tail or a rewritten chain (see
docs/audit.md, trust model). The cost is a delay of one batch (`[audit] flush_interval_ms`).

Neither sink ever blocks a call or the writer: `offer` only appends to a bounded queue (`queue_size` records);
when the queue is full the newest records are dropped and the drop is logged. Delivery runs in the sink's own
task, one batch at a time, in order.

- `WebhookSink` (`[audit.webhook]`): `POST url` with `{"event": "audit.records", "records": [<AuditRecord.to_json()>,
  ...]}` (at most `batch_size` records), signed like the approval webhooks: `X-Mcp-Hub-Timestamp: <unix seconds>`
  and `X-Mcp-Hub-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>`. The secret is a `${VAR}`
  reference read from the environment at delivery; unset, nothing is sent (never an unsigned delivery). A failed
  POST (error or non-2xx) is retried `max_attempts` times with exponential backoff from `backoff_seconds`, then
  the batch is dropped and logged with its id range.
- `SyslogSink` (`[audit.syslog]`): one RFC 5424 message per record, over UDP (RFC 5426: one message per
  datagram) or TCP (RFC 6587 §3.4.1 octet counting: `<length> <message>`). The message is
  `<PRI>1 <time> <host> <app_name> <pid> audit [audit@32473 id="<id>" hash="<row_hash>"] BOM<record JSON>`,
  PRI = facility * 8 + severity (4, warning, for error outcomes; else 6, informational). 32473 is the example
  enterprise number of RFC 5612 (the hub has none of its own). A message longer than `max_message_bytes` has
  its `detail` shortened.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Final, Protocol

import anyio
import anyio.abc
import httpx2
import structlog

from mcp_hub.config.settings import AuditSection, AuditSyslogSink, AuditWebhookSink
from mcp_hub.credentials import sign_delivery
from mcp_hub.db.audit_query import AuditRecord
from mcp_hub.domain import FAILURE_OUTCOMES, REFUSAL_OUTCOMES, AuditOutcome

_log = structlog.get_logger(__name__)

EVENT_RECORDS: Final = "audit.records"
TIMESTAMP_HEADER: Final = "X-Mcp-Hub-Timestamp"
SIGNATURE_HEADER: Final = "X-Mcp-Hub-Signature"
SD_ID: Final = "audit@32473"
_SEVERITY_WARNING, _SEVERITY_INFO = 4, 6
_WARNING_OUTCOMES: Final = FAILURE_OUTCOMES | REFUSAL_OUTCOMES | {AuditOutcome.ADMIN_REFUSED}
"""Rows sent at syslog severity warning: failed and refused calls, refused admin changes."""
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_DRAIN_SECONDS: Final = 2.0


class AuditSink(Protocol):
    """Something stored audit records are forwarded to."""

    def offer(self, records: Sequence[AuditRecord]) -> None:
        """Queue `records` for delivery; never blocks."""
        ...

    def running(self) -> AbstractAsyncContextManager[None]:
        """Deliver in the background while the hub runs."""
        ...


class _QueuedSink:
    """A bounded queue of records and the task that delivers them in batches, in order."""

    name = "sink"

    def __init__(self, *, queue_size: int, batch_size: int) -> None:
        self._queue: deque[AuditRecord] = deque()
        self._queue_size = queue_size
        self._batch_size = batch_size
        self._wake = anyio.Event()
        self.dropped = 0
        """Records dropped because the queue was full or delivery failed (for tests and metrics)."""
        self.delivered = 0
        self._dropping = False
        self._idle = anyio.Event()
        self._idle.set()

    def offer(self, records: Sequence[AuditRecord]) -> None:
        room = max(self._queue_size - len(self._queue), 0)
        if room < len(records):
            self.dropped += len(records) - room
            if not self._dropping:  # one line per episode, not one per batch
                _log.error("audit sink queue full: dropping records until it drains", sink=self.name)
            self._dropping = True
            records = records[:room]
        elif self._dropping:
            self._dropping = False
            _log.warning("audit sink queue has room again", sink=self.name, dropped_so_far=self.dropped)
        self._queue.extend(records)
        if self._queue:
            self._idle = anyio.Event() if self._idle.is_set() else self._idle
        self._wake.set()

    async def wait_idle(self) -> None:
        """Return once every offered record was delivered or dropped."""
        await self._idle.wait()

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        async with AsyncExitStack() as stack:
            await self._open(stack)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._deliver_forever)
                try:
                    yield
                finally:
                    # What the writer's last batches queued gets a short chance to leave before the hub stops.
                    with anyio.move_on_after(_DRAIN_SECONDS, shield=True):
                        await self.wait_idle()
                    tasks.cancel_scope.cancel()

    async def _open(self, stack: AsyncExitStack) -> None:
        """Acquire what delivery needs for as long as the sink runs."""

    async def _deliver_forever(self) -> None:
        while True:
            while not self._queue:
                await self._wake.wait()
                self._wake = anyio.Event()
            batch = [self._queue.popleft() for _ in range(min(self._batch_size, len(self._queue)))]
            if await self._deliver(batch):
                self.delivered += len(batch)
            else:
                self.dropped += len(batch)
                _log.error("audit sink gave up on records", sink=self.name, first_id=batch[0].id, last_id=batch[-1].id)
            if not self._queue:
                self._idle.set()

    async def _deliver(self, batch: list[AuditRecord]) -> bool:
        """Deliver `batch`, retrying as the sink sees fit; False once given up."""
        raise NotImplementedError


class WebhookSink(_QueuedSink):
    """POSTs batches of stored records as signed JSON (see the module docstring)."""

    name = "webhook"

    def __init__(
        self,
        settings: AuditWebhookSink,
        *,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(queue_size=settings.queue_size, batch_size=settings.batch_size)
        self._settings = settings
        self._environ = environ
        self._clock = clock
        self._client: httpx2.AsyncClient | None = None

    async def _open(self, stack: AsyncExitStack) -> None:
        client = httpx2.AsyncClient(timeout=self._settings.timeout_seconds, follow_redirects=False)
        self._client = await stack.enter_async_context(client)

    async def _deliver(self, batch: list[AuditRecord]) -> bool:
        if self._client is None:
            raise RuntimeError("WebhookSink is not running")
        secret = self._environ.get(self._settings.secret.removeprefix("${").removesuffix("}"), "")
        if not secret:
            _log.error("audit webhook not sent: its secret's environment variable is unset or empty")
            return False
        body = json.dumps(
            {"event": EVENT_RECORDS, "records": [record.to_json() for record in batch]}, separators=(",", ":")
        ).encode()
        delay = self._settings.backoff_seconds
        for attempt in range(1, self._settings.max_attempts + 1):
            timestamp = str(int(self._clock()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "mcp-hub-audit",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign_delivery(secret, timestamp, body),
            }
            try:
                response = await self._client.post(self._settings.url, content=body, headers=headers)
            except httpx2.HTTPError as exc:
                _log.warning("audit webhook delivery failed", attempt=attempt, error=type(exc).__name__)
            else:
                if response.is_success:
                    return True
                _log.warning("audit webhook delivery refused", attempt=attempt, status=response.status_code)
            if attempt < self._settings.max_attempts:
                await anyio.sleep(delay)
                delay *= 2
        return False


_HOSTNAME_UNSAFE = re.compile(r"[^!-~]")


def syslog_message(
    record: AuditRecord, *, facility: int, app_name: str, hostname: str, procid: str, max_bytes: int
) -> bytes:
    """`record` as one RFC 5424 message (no transport framing)."""
    severity = _SEVERITY_WARNING if record.outcome in _WARNING_OUTCOMES else _SEVERITY_INFO
    timestamp = record.at.isoformat(timespec="microseconds").replace("+00:00", "Z")
    host = _HOSTNAME_UNSAFE.sub("", hostname)[:255] or "-"
    # SD-PARAM values escape '"', '\' and ']' (RFC 5424 §6.3.3); ids and hex hashes never contain them.
    structured = f'[{SD_ID} id="{record.id}" hash="{record.row_hash}"]'
    header = f"<{facility * 8 + severity}>1 {timestamp} {host} {app_name} {procid} audit {structured} ".encode()
    document = record.to_json()
    payload = _json(document)
    budget = max_bytes - len(header) - len(_UTF8_BOM)
    if len(payload) > budget and document["detail"]:
        document["detail_truncated"] = True
        detail: bytes = document["detail"].encode()
        while len(payload) > budget and detail:
            # JSON escapes make the encoded detail longer than its bytes: cut by the excess until it fits.
            detail = detail[: max(0, len(detail) - (len(payload) - budget))]
            document["detail"] = detail.decode(errors="ignore")
            payload = _json(document)
    return header + _UTF8_BOM + payload


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class SyslogSink(_QueuedSink):
    """Sends each stored record as an RFC 5424 message over UDP or TCP (see the module docstring)."""

    name = "syslog"
    _TCP_ATTEMPTS: Final = 3

    def __init__(self, settings: AuditSyslogSink, *, hostname: str | None = None) -> None:
        super().__init__(queue_size=settings.queue_size, batch_size=100)
        self._settings = settings
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._procid = str(os.getpid())
        self._udp: anyio.abc.ConnectedUDPSocket | None = None
        self._tcp: anyio.abc.SocketStream | None = None

    async def _open(self, stack: AsyncExitStack) -> None:
        stack.push_async_callback(self._close)

    async def _close(self) -> None:
        for stream in (self._udp, self._tcp):
            if stream is not None:
                await stream.aclose()
        self._udp = self._tcp = None

    def _message(self, record: AuditRecord) -> bytes:
        return syslog_message(
            record,
            facility=self._settings.facility,
            app_name=self._settings.app_name,
            hostname=self._hostname,
            procid=self._procid,
            max_bytes=self._settings.max_message_bytes,
        )

    async def _deliver(self, batch: list[AuditRecord]) -> bool:
        messages = [self._message(record) for record in batch]
        if self._settings.transport == "udp":
            return await self._send_udp(messages)
        frames = b"".join(str(len(message)).encode() + b" " + message for message in messages)
        for attempt in range(1, self._TCP_ATTEMPTS + 1):
            try:
                if self._tcp is None:
                    self._tcp = await anyio.connect_tcp(self._settings.host, self._settings.port)
                await self._tcp.send(frames)
            except OSError as exc:
                _log.warning("audit syslog (tcp) send failed", attempt=attempt, error=type(exc).__name__)
                await self._close()
                if attempt < self._TCP_ATTEMPTS:
                    await anyio.sleep(0.2 * 2**attempt)
            else:
                return True
        return False

    async def _send_udp(self, messages: list[bytes]) -> bool:
        try:
            if self._udp is None:
                self._udp = await anyio.create_connected_udp_socket(self._settings.host, self._settings.port)
            for message in messages:
                await self._udp.send(message)
        except OSError as exc:
            _log.warning("audit syslog (udp) send failed", error=type(exc).__name__)
            await self._close()
            return False
        return True


class AuditSinks:
    """The sinks `[audit]` configures (possibly none), offered every stored batch."""

    def __init__(self, sinks: Sequence[_QueuedSink]) -> None:
        self.sinks = tuple(sinks)

    @classmethod
    def configured(cls, settings: AuditSection) -> AuditSinks:
        sinks: list[_QueuedSink] = []
        if settings.webhook is not None:
            sinks.append(WebhookSink(settings.webhook))
        if settings.syslog is not None:
            sinks.append(SyslogSink(settings.syslog))
        return cls(sinks)

    @property
    def dropped(self) -> dict[str, int]:
        """Records each sink dropped (full queue, or given up), by sink name: for metrics."""
        return {sink.name: sink.dropped for sink in self.sinks}

    def offer(self, records: Sequence[AuditRecord]) -> None:
        """An `AuditWriter.on_stored` listener: queue `records` to every sink."""
        for sink in self.sinks:
            sink.offer(records)

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        async with AsyncExitStack() as stack:
            for sink in self.sinks:
                await stack.enter_async_context(sink.running())
            yield
