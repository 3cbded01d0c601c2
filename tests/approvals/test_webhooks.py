"""Webhooks announcing new pending actions (issue 4 §5; threats T21, T22).

A real receiver (Starlette on uvicorn, loopback) records what the hub posts. The signature scheme, the
payload and the retry policy are our design (issue 4 §5); a receiver that fails must leave the action
pending (T21), and a stale or altered delivery must not verify (T22).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.approvals.webhooks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from mcp_hub.credentials import sign_delivery
from tests.approvals.holding import (
    agent_token,
    approval_config,
    approval_hub,
    approver,
    downstream_runs,
    modern,
)
from tests.conftest import RunningHub, serving

pytestmark = pytest.mark.anyio

SECRET_ENV = "MCP_HUB_TEST_WEBHOOK_SECRET"
SECRET = "a-webhook-secret-for-tests-only"
DANGEROUS = {"name": "faults__echo", "arguments": {"text": "rm -rf /srv/data"}}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Receiver:
    """A webhook endpoint that answers `status`, optionally only after `release` is set."""

    status: int = 200
    release: anyio.Event | None = None
    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list[Delivery])
    _arrived: anyio.Event = field(default_factory=anyio.Event)

    async def handle(self, request: Request) -> Response:
        self.deliveries.append(Delivery(dict(request.headers), await request.body()))
        self._arrived.set()
        self._arrived = anyio.Event()
        if self.release is not None:
            await self.release.wait()
        return Response(status_code=self.status)

    async def wait_for(self, count: int, within_seconds: float = 15) -> None:
        with anyio.fail_after(within_seconds):
            while len(self.deliveries) < count:
                await self._arrived.wait()


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncGenerator[Receiver]:
    async with serving(Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])) as base_url:
        receiver.url = f"{base_url}/hook"
        try:
            yield receiver
        finally:
            if receiver.release is not None:
                receiver.release.set()


def webhook_rule(url: str) -> str:
    return f"""
[[approvals.rules]]
name = "announced-echo"
tools = ["faults__echo"]
when = [{{ field = "text", op = "matches", value = "^rm " }}]
webhook_url = "{url}"
webhook_secret = "${{{SECRET_ENV}}}"
"""


@asynccontextmanager
async def hub_posting_to(tmp_path: Path, receiver: Receiver) -> AsyncGenerator[RunningHub]:
    config = approval_config(tmp_path, hold_seconds=0, rules=webhook_rule(receiver.url))
    async with approval_hub(config) as hub:
        yield hub


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, SECRET)


async def test_a_new_pending_action_is_announced_signed_with_a_plain_link(tmp_path: Path) -> None:
    """Issue 4 §5, T22: one signed POST per new action; the link is the approval page, never pre-authenticated."""
    async with receiving(Receiver()) as receiver, hub_posting_to(tmp_path, receiver) as hub:
        token = await agent_token(hub, "announcer")
        answer = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)
        await receiver.wait_for(1)
        action_id = answer["result"]["_meta"]["io.github.mcp-hub/approval"]["id"]
        action = await hub.hub.approvals.get(action_id)

    assert action is not None
    [delivery] = receiver.deliveries
    payload = delivery.payload
    assert payload == {
        "event": "approval.requested",
        "id": action_id,
        "agent": "announcer",
        "method": "tools/call",
        "tool": "faults__echo",
        "arguments_digest": action.digest,
        "created_at": payload["created_at"],
        "expires_at": payload["expires_at"],
        "link": f"{hub.base_url}/approvals/{action_id}",
    }
    assert "rm -rf" not in delivery.body.decode()  # the digest, never the arguments
    timestamp = delivery.headers[TIMESTAMP_HEADER.lower()]
    signature = delivery.headers[SIGNATURE_HEADER.lower()]
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + delivery.body, hashlib.sha256).hexdigest()
    assert signature == f"v1={expected}"
    assert verify_signature(SECRET, timestamp, delivery.body, signature, now=float(timestamp))


async def test_the_caller_is_answered_while_the_receiver_is_still_busy(tmp_path: Path) -> None:
    """Issue 4 §5: delivery runs in the background and never holds up the agent's call."""
    async with receiving(Receiver(release=anyio.Event())) as receiver, hub_posting_to(tmp_path, receiver) as hub:
        token = await agent_token(hub, "hurried")
        answer = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)
        await receiver.wait_for(1)
        unanswered = receiver.release is not None and not receiver.release.is_set()

    assert answer["result"]["isError"] is True
    assert "pending" in answer["result"]["content"][0]["text"]
    assert unanswered


async def test_a_failing_receiver_leaves_the_action_pending_and_decidable(tmp_path: Path) -> None:
    """T21: a notifier that fails (HTTP 500, retried) changes nothing; an approver still decides, the agent collects."""
    async with receiving(Receiver(status=500)) as receiver, hub_posting_to(tmp_path, receiver) as hub:
        token = await agent_token(hub, "unlucky")
        user = await approver(hub)
        first = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)
        await receiver.wait_for(3)
        action_id = first["result"]["_meta"]["io.github.mcp-hub/approval"]["id"]
        pending = await hub.hub.approvals.get(action_id)
        await hub.hub.approvals.decide(action_id, user, True, None)
        collected = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)
        runs = await downstream_runs(hub, "faults__echo")

    assert len(receiver.deliveries) == 3
    assert pending is not None
    assert pending.status == "pending"
    assert collected["result"]["isError"] is False
    assert collected["result"]["content"] == [{"type": "text", "text": "rm -rf /srv/data"}]
    assert runs == 1


async def test_an_unset_secret_sends_nothing_rather_than_an_unsigned_announcement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our choice (fail closed): a rule that asks for signing never posts unsigned; the action stays pending."""
    monkeypatch.delenv(SECRET_ENV)
    async with receiving(Receiver()) as receiver, hub_posting_to(tmp_path, receiver) as hub:
        token = await agent_token(hub, "unsigned")
        answer = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)
        # A second, signed-rule-free request proves the hub stayed healthy; nothing can be awaited for "no POST".
        plain = await modern(hub, token, "tools/call", {"name": "faults__echo", "arguments": {"text": "ok"}})
        action_id = answer["result"]["_meta"]["io.github.mcp-hub/approval"]["id"]
        action = await hub.hub.approvals.get(action_id)

    assert receiver.deliveries == []
    assert plain["result"]["isError"] is False
    assert action is not None
    assert action.status == "pending"


def test_a_delivery_verifies_only_fresh_unaltered_and_with_the_right_secret() -> None:
    """T22: the timestamp is inside the MAC, so a replay outside the tolerance, an edited body or another key fail."""
    body = b'{"event":"approval.requested","id":"apv_x"}'
    signature = sign_delivery(SECRET, "1000000", body)

    assert verify_signature(SECRET, "1000000", body, signature, now=1_000_100)
    assert not verify_signature(SECRET, "1000000", body, signature, now=1_000_301)  # stale: replay
    assert not verify_signature(SECRET, "999000", body, signature, now=999_000)  # timestamp swapped
    assert not verify_signature(SECRET, "1000000", body + b" ", signature, now=1_000_000)
    assert not verify_signature("another-secret", "1000000", body, signature, now=1_000_000)
    assert not verify_signature(SECRET, "not-a-number", body, signature, now=1_000_000)
