"""Audit sinks: every stored audit record forwarded, with its id and chain hash, to a webhook or syslog
(issue 13 §7; threat T24, audit tampering: an off-box copy of the chain's hashes).

Real receivers on loopback: a Starlette app on uvicorn for the webhook, a UDP socket and a TCP listener for
syslog (RFC 5424 messages; RFC 5426 over UDP, RFC 6587 octet counting over TCP).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.approvals.webhooks import verify_signature
from mcp_hub.audit.sinks import SIGNATURE_HEADER, TIMESTAMP_HEADER, SyslogSink, WebhookSink
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.config.settings import AuditSyslogSink, AuditWebhookSink
from mcp_hub.db import create_engine, upgrade
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_query import AuditRecord
from mcp_hub.domain import AuditOutcome
from tests.conftest import in_process_hub, serving, write_config
from tests.test_cli import mcp_hub, migrate

pytestmark = pytest.mark.anyio

SECRET_ENV = "MCP_HUB_TEST_AUDIT_WEBHOOK_SECRET"
SECRET = "an-audit-webhook-secret-for-tests-only"
T0 = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
RFC5424 = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 (?P<time>\S+) (?P<host>\S+) (?P<app>\S+) (?P<pid>\d+) audit "
    rb'\[audit@32473 id="(?P<id>\d+)" hash="(?P<hash>[0-9a-f]{64})"\] \xef\xbb\xbf(?P<json>\{.*\})$',
    re.DOTALL,
)


def event(n: int, outcome: AuditOutcome = AuditOutcome.OK, detail: str | None = None) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(seconds=n),
        client="agent:alpha",
        session=None,
        public_name="files__read",
        connector_id="files",
        downstream_name="read",
        outcome=outcome,
        latency_ms=2.5,
        detail=detail if detail is not None else f"call {n}",
        downstream_ms=1.0,
    )


def record(n: int, outcome: AuditOutcome = AuditOutcome.OK, detail: str | None = None) -> AuditRecord:
    values = event(n, outcome, detail)
    return AuditRecord(
        id=n,
        at=values.at,
        client=values.client,
        session=None,
        public_name=values.public_name,
        connector_id=values.connector_id,
        downstream_name=values.downstream_name,
        outcome=outcome,
        latency_ms=values.latency_ms,
        downstream_ms=values.downstream_ms,
        detail=values.detail,
        method=values.method,
        prev_hash=f"{n - 1:064x}",
        row_hash=f"{n:064x}",
    )


@dataclass
class Receiver:
    """A webhook endpoint answering 503 to the first `failures` deliveries, 200 after."""

    failures: int = 0
    url: str = ""
    deliveries: list[tuple[dict[str, str], bytes]] = field(default_factory=list[tuple[dict[str, str], bytes]])
    records: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.deliveries.append((dict(request.headers), body))
        self._arrived.set()
        self._arrived = anyio.Event()
        if len(self.deliveries) <= self.failures:
            return Response(status_code=503)
        self.records += json.loads(body)["records"]
        return Response(status_code=204)

    async def wait_for_records(self, count: int) -> None:
        with anyio.fail_after(15):
            while len(self.records) < count:
                await self._arrived.wait()


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncGenerator[Receiver]:
    async with serving(Starlette(routes=[Route("/audit", receiver.handle, methods=["POST"])])) as base_url:
        receiver.url = f"{base_url}/audit"
        yield receiver


async def test_the_webhook_receives_each_stored_record_with_its_hash_signed_after_a_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our choice: records are forwarded once stored (ids and chain hashes as in the database), in order, signed
    like the approval webhooks (T22's scheme); a refused POST is retried with backoff."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    url = f"sqlite+aiosqlite:///{tmp_path / 'hub.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        async with receiving(Receiver(failures=1)) as receiver:
            settings = AuditWebhookSink(
                url=receiver.url, secret=f"${{{SECRET_ENV}}}", batch_size=4, backoff_seconds=0.01
            )
            sink = WebhookSink(settings)
            writer = AuditWriter(AuditStore(engine), batch_size=5, flush_interval_ms=10, queue_size=100)
            writer.on_stored(sink.offer)
            async with sink.running(), writer.running():
                for n in range(10):
                    await writer.record(event(n))
                await writer.flush()
                await receiver.wait_for_records(10)
        stored = [row.to_json() async for row in _export(engine)]
    finally:
        await engine.dispose()
    assert receiver.records == stored
    assert [item["id"] for item in receiver.records] == list(range(1, 11))
    headers, body = receiver.deliveries[0]
    assert receiver.deliveries[1][1] == body  # the refused batch, sent again
    assert json.loads(body)["event"] == "audit.records"
    timestamp = headers[TIMESTAMP_HEADER.lower()]
    assert verify_signature(SECRET, timestamp, body, headers[SIGNATURE_HEADER.lower()], now=float(timestamp))
    assert (sink.delivered, sink.dropped) == (10, 0)


async def _export(engine: Any) -> AsyncGenerator[AuditRecord]:
    from mcp_hub.db.audit_query import AuditFilter, AuditQueryStore

    async for row in AuditQueryStore(engine).export(AuditFilter()):
        yield row


async def test_a_webhook_without_its_secret_sends_nothing_unsigned(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threat T22: an unset secret never degrades to unsigned deliveries; the records are counted as dropped."""
    monkeypatch.delenv(SECRET_ENV, raising=False)
    async with receiving(Receiver()) as receiver:
        sink = WebhookSink(AuditWebhookSink(url=receiver.url, secret=f"${{{SECRET_ENV}}}"))
        async with sink.running():
            sink.offer([record(1), record(2)])
            with anyio.fail_after(10):
                await sink.wait_idle()
    assert sink.dropped == 2
    assert receiver.deliveries == []


async def test_a_full_sink_queue_drops_new_records_without_blocking() -> None:
    """Our choice: a sink never slows a call or the writer; what does not fit is dropped and counted."""
    sink = WebhookSink(AuditWebhookSink(url="https://siem.invalid/audit", secret="${X}", queue_size=3))
    sink.offer([record(1), record(2)])  # not running: nothing leaves the queue
    sink.offer([record(3), record(4), record(5)])
    assert sink.dropped == 2


def parse(message: bytes) -> tuple[re.Match[bytes], dict[str, Any]]:
    match = RFC5424.match(message)
    assert match is not None, message
    return match, json.loads(match["json"])


async def test_syslog_over_udp_sends_one_rfc5424_message_per_record() -> None:
    """Mandated by RFC 5424 §6 (message format) and RFC 5426 §3.1 (one message per datagram); facility 13
    (log audit) and the severity (warning for errors, else informational) are our choice."""
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as receiver:
        port = receiver.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        sink = SyslogSink(AuditSyslogSink(host="127.0.0.1", port=port), hostname="hub-1")
        async with sink.running():
            sink.offer([record(7), record(8, AuditOutcome.TIMEOUT)])
            with anyio.fail_after(10):
                first, _ = await receiver.receive()
                second, _ = await receiver.receive()
    match, body = parse(first)
    assert (match["pri"], match["time"], match["host"], match["app"]) == (
        b"110",
        b"2026-12-05T22:00:07.000000Z",
        b"hub-1",
        b"mcp-hub",
    )
    assert (match["id"], match["hash"]) == (b"7", f"{7:064x}".encode())
    assert body == record(7).to_json()
    assert parse(second)[0]["pri"] == b"108"  # 13 * 8 + 4


async def test_syslog_over_tcp_frames_messages_by_octet_counting_and_shortens_long_details() -> None:
    """Mandated by RFC 6587 §3.4.1 (octet counting); shortening an over-long `detail` is our choice."""
    received = bytearray()
    done = anyio.Event()

    async def serve(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            while not done.is_set():
                received.extend(await stream.receive())
                if received.count(b"\xef\xbb\xbf") >= 2 and _frames_complete(bytes(received)):
                    done.set()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
    async with listener, anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, serve)
        sink = SyslogSink(AuditSyslogSink(host="127.0.0.1", port=port, transport="tcp", max_message_bytes=600))
        async with sink.running():
            sink.offer([record(1), record(2, detail="x" * 5000)])
            with anyio.fail_after(10):
                await done.wait()
        tasks.cancel_scope.cancel()
    frames = _frames(bytes(received))
    assert [parse(frame)[1]["id"] for frame in frames] == [1, 2]
    long = parse(frames[1])[1]
    assert len(frames[1]) <= 600
    assert long["detail_truncated"] is True
    assert long["detail"].startswith("xxx")


def _frames(data: bytes) -> list[bytes]:
    frames: list[bytes] = []
    while data:
        length, _, rest = data.partition(b" ")
        frames.append(rest[: int(length)])
        data = rest[int(length) :]
    return frames


def _frames_complete(data: bytes) -> bool:
    while data:
        length, space, rest = data.partition(b" ")
        if not space or not length.isdigit() or len(rest) < int(length):
            return False
        data = rest[int(length) :]
    return True


async def test_the_hub_forwards_its_audit_records_to_the_configured_syslog(tmp_path: Path) -> None:
    """Our choice: `[audit.syslog]` in config.toml is all it takes; the hub's writer feeds the sink."""
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as receiver:
        port = receiver.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        config = write_config(tmp_path, {}, f'[audit.syslog]\nhost = "127.0.0.1"\nport = {port}\n')
        async with in_process_hub(config) as hub:
            await hub.hub.audit.record(event(1, AuditOutcome.UNKNOWN_TOOL))
            await hub.hub.audit.flush()
            with anyio.fail_after(10):
                message, _ = await receiver.receive()
    match, body = parse(message)
    assert (match["id"], body["outcome"], body["public_name"]) == (b"1", "unknown_tool", "files__read")


async def test_a_change_made_by_a_command_reaches_the_configured_syslog(tmp_path: Path) -> None:
    """Our choice: an `mcp-hub` command's audit rows (here an admin change, `admin/agents.create` by
    `cli:<login>`) are forwarded as a hub's are, before the command exits (T24: the off-box copy misses nothing
    written on the hub's host)."""
    async with await anyio.create_udp_socket(local_host="127.0.0.1", local_port=0) as receiver:
        port = receiver.extra(anyio.abc.SocketAttribute.local_port)  # noqa: S610 - anyio, not Django
        config = write_config(tmp_path, {}, f'[audit.syslog]\nhost = "127.0.0.1"\nport = {port}\n')
        await migrate(config)
        completed = await mcp_hub(config, "agents", "create", "sink-watched")
        assert completed.returncode == 0, completed.stderr.decode()
        with anyio.fail_after(10):
            message, _ = await receiver.receive()
    match, body = parse(message)
    assert (body["method"], body["public_name"], body["outcome"]) == ("admin/agents.create", "sink-watched", "ok")
    assert body["client"].startswith("cli:")
    assert match["hash"] == body["row_hash"].encode()


def test_a_webhook_sink_must_be_https_and_signed_with_a_secret_reference() -> None:
    """Threats T22, T23: no plain-http receiver off loopback, no literal secret in config.toml."""
    with pytest.raises(ValidationError, match="https"):
        AuditWebhookSink(url="http://siem.example/audit", secret="${AUDIT_SECRET}")
    with pytest.raises(ValidationError, match="reference"):
        AuditWebhookSink(url="https://siem.example/audit", secret="hunter2")
    assert AuditWebhookSink(url="http://127.0.0.1:9000/audit", secret="${AUDIT_SECRET}").max_attempts == 5
