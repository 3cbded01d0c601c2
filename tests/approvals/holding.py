"""Helpers for the approval tests: a hub with approval rules, agents, an approver, raw 2026-07-28 requests."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2

from mcp_hub.admin import identity
from mcp_hub.db.auth_store import UserRecord
from tests.authz.conftest import auth_service, client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, write_config

TASKS = "io.modelcontextprotocol/tasks"
ECHO_RULE = """
[[approvals.rules]]
name = "dangerous-echo"
tools = ["faults__echo"]
when = [{ field = "text", op = "matches", value = "^rm " }]
"""
"""Holds `faults__echo` only when the text starts with `rm ` (so other echoes show the condition)."""


def approvals_toml(
    *, hold_seconds: float = 0, pending_ttl_seconds: int = 600, max_pending: int = 10, rules: str = ECHO_RULE
) -> str:
    return (
        "[approvals]\n"
        f"hold_seconds = {hold_seconds}\n"
        f"pending_ttl_seconds = {pending_ttl_seconds}\n"
        f"max_pending_per_agent = {max_pending}\n"
        "progress_interval_seconds = 0.2\n" + rules
    )


def approval_config(directory: Path, *, connector: str | None = None, **approvals: Any) -> Path:
    """A config with auth on, the fault server as `faults`, and the approval settings given."""
    return write_config(directory, {"faults": connector or fault_connector()}, approvals_toml(**approvals), auth=True)


@asynccontextmanager
async def approval_hub(config: Path) -> AsyncGenerator[RunningHub]:
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


async def agent_token(hub: RunningHub, name: str, *grants: str) -> str:
    agent = await make_agent(hub, name, *(grants or ("tool:faults__*",)))
    return await client_credentials_token(hub, agent)


async def approver(hub: RunningHub, name: str = "alice", role: str = "approver") -> UserRecord:
    return await identity.create_user(auth_service(hub), name, role, "a long enough password 123")


async def downstream_runs(hub: RunningHub, public_name: str) -> int:
    """How many times the hub forwarded `public_name` and the downstream answered (audit outcome `ok`)."""
    await hub.hub.audit.flush()
    events = await hub.hub.store.recent_audit(limit=1000)
    return sum(1 for event in events if event.public_name == public_name and event.outcome == "ok")


def envelope(*, tasks: bool) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}} if tasks else {},
    }


async def modern(
    hub: RunningHub, token: str, method: str, params: dict[str, Any], *, tasks: bool = True, name: str | None = None
) -> dict[str, Any]:
    """One raw 2026-07-28 request with its routing headers; the JSON-RPC response object."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
        "Authorization": f"Bearer {token}",
    }
    named = name if name is not None else params.get("name", params.get("taskId"))
    if named is not None:
        headers["Mcp-Name"] = str(named)
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**params, "_meta": envelope(tasks=tasks)}}
    async with httpx2.AsyncClient(timeout=30) as client:
        response = await client.post(hub.url, headers=headers, content=json.dumps(body).encode())
    answer: dict[str, Any] = response.json()
    return answer
