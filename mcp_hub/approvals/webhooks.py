"""Webhooks that announce new pending actions (issue 4 §5; threats T21, T22).

A rule with `webhook_url` gets one POST per new pending action it holds:

    {"event": "approval.requested", "id", "agent", "tool", "arguments_digest", "created_at", "expires_at", "link"}

signed as `X-Mcp-Hub-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>` with the unix time in
`X-Mcp-Hub-Timestamp` (the scheme of Stripe and Slack: the timestamp inside the MAC lets a receiver refuse
replays, see `verify_signature`). The key is the rule's `webhook_secret` reference, expanded from the
environment at delivery time; a reference to an unset variable sends nothing (never an unsigned request
for a rule that asked for signing). The arguments themselves are not sent, only their digest, and the link
leads to the approval page behind the login: it is never pre-authenticated.

Delivery happens in the background with a timeout and a few retries: the caller never waits for it, and a
failing receiver only costs log lines. The action stays pending and decidable either way (fail closed).
"""

from __future__ import annotations

import hmac
import json
import os
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import anyio
import httpx2
import structlog
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectSendStream

from mcp_hub.config.settings import ApprovalRule
from mcp_hub.credentials import sign_delivery
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ActionStatus

logger = structlog.get_logger(__name__)

EVENT_REQUESTED: Final = "approval.requested"
TIMESTAMP_HEADER: Final = "X-Mcp-Hub-Timestamp"
SIGNATURE_HEADER: Final = "X-Mcp-Hub-Signature"
DEFAULT_TOLERANCE_SECONDS: Final = 300


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """For receivers: is this delivery ours, unmodified, and recent? (A stale timestamp is a replay, T22.)"""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now - sent_at) > tolerance:
        return False
    return hmac.compare_digest(sign_delivery(secret, timestamp, body), signature)


@dataclass(frozen=True, slots=True)
class _Delivery:
    rule: str
    url: str
    secret_reference: str | None
    action_id: str
    body: bytes


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class WebhookNotifier:
    """An `ApprovalService.on_change` listener that posts new pending actions to their rules' webhooks."""

    def __init__(
        self,
        rules: Sequence[ApprovalRule],
        link: Callable[[str], str],
        *,
        timeout_seconds: float = 5.0,
        attempts: int = 3,
        backoff_seconds: float = 0.5,
        queue_size: int = 1000,
        environ: Mapping[str, str] = os.environ,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._hooks = {rule.name: rule for rule in rules if rule.webhook_url}
        self._link = link
        self._timeout = timeout_seconds
        self._attempts = max(1, attempts)
        self._backoff = backoff_seconds
        self._queue_size = queue_size
        self._environ = environ
        self._clock = clock
        self._send: MemoryObjectSendStream[_Delivery] | None = None

    async def on_change(self, action: ActionRecord) -> None:
        """Queue a delivery per webhook of a newly pending action; never blocks, never raises."""
        if action.status is not ActionStatus.PENDING or not self._hooks:
            return
        body = self._body(action)
        for rule_name in action.rules:
            rule = self._hooks.get(rule_name)
            if rule is None or rule.webhook_url is None:
                continue
            delivery = _Delivery(rule.name, rule.webhook_url, rule.webhook_secret, action.id, body)
            if self._send is None:
                logger.error("webhook not sent: the notifier is not running", rule=rule.name, action=action.id)
                continue
            try:
                self._send.send_nowait(delivery)
            except anyio.WouldBlock:
                logger.error(  # noqa: TRY400 - a full queue is an expected condition, not a traceback
                    "webhook not sent: too many deliveries queued", rule=rule.name, action=action.id
                )

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """Deliver in the background while the hub runs; whatever is in flight at shutdown is cancelled."""
        send, receive = anyio.create_memory_object_stream[_Delivery](self._queue_size)
        async with (
            httpx2.AsyncClient(timeout=self._timeout, follow_redirects=False) as client,
            anyio.create_task_group() as tasks,
        ):
            tasks.start_soon(self._dispatch, receive, client, tasks)
            self._send = send
            try:
                yield
            finally:
                self._send = None
                send.close()
                tasks.cancel_scope.cancel()

    async def _dispatch(
        self, receive: anyio.abc.ObjectReceiveStream[_Delivery], client: httpx2.AsyncClient, tasks: TaskGroup
    ) -> None:
        async with receive:
            async for delivery in receive:
                # One slow receiver must not delay the others: each delivery runs on its own.
                tasks.start_soon(self._deliver, client, delivery)

    async def _deliver(self, client: httpx2.AsyncClient, delivery: _Delivery) -> None:
        log = logger.bind(rule=delivery.rule, action=delivery.action_id)
        headers = {"Content-Type": "application/json", "User-Agent": "mcp-hub-webhook"}
        secret: str | None = None
        if delivery.secret_reference is not None:
            secret = self._environ.get(delivery.secret_reference.removeprefix("${").removesuffix("}"), "")
            if not secret:
                log.error("webhook not sent: its secret's environment variable is unset or empty")
                return
        for attempt in range(1, self._attempts + 1):
            timestamp = str(int(self._clock()))
            headers[TIMESTAMP_HEADER] = timestamp
            if secret is not None:
                headers[SIGNATURE_HEADER] = sign_delivery(secret, timestamp, delivery.body)
            try:
                response = await client.post(delivery.url, content=delivery.body, headers=headers)
            except httpx2.HTTPError as exc:
                log.warning("webhook delivery failed", attempt=attempt, error=type(exc).__name__)
            else:
                if response.is_success:
                    log.info("webhook delivered", attempt=attempt, status=response.status_code)
                    return
                log.warning("webhook delivery refused", attempt=attempt, status=response.status_code)
            if attempt < self._attempts:
                await anyio.sleep(self._backoff * 2 ** (attempt - 1))
        log.error("webhook given up; the action stays pending", attempts=self._attempts)

    def _body(self, action: ActionRecord) -> bytes:
        payload = {
            "event": EVENT_REQUESTED,
            "id": action.id,
            "agent": action.agent_name,
            "method": action.method,
            "tool": action.public_name,
            "arguments_digest": action.digest,
            "created_at": _timestamp(action.created_at),
            "expires_at": _timestamp(action.expires_at),
            "link": self._link(action.id),
        }
        return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
