"""Helpers for the approval tests: a hub with approval rules, agents, an approver, raw 2026-07-28 requests."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.approvals.presentation import APPROVAL_META_KEY
from mcp_hub.config.settings import load_settings
from mcp_hub.db import create_engine
from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.db.identities import UserRecord
from mcp_hub.db.models import ApprovalAction
from mcp_hub.domain import AgentId, AuditOutcome, Role, UserId, utc_now
from mcp_hub.runtime import Stores
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
    *,
    hold_seconds: float = 0,
    pending_ttl_seconds: int = 600,
    max_pending: int = 10,
    progress_interval_seconds: float = 0.2,
    rules: str = ECHO_RULE,
) -> str:
    return (
        "[approvals]\n"
        f"hold_seconds = {hold_seconds}\n"
        f"pending_ttl_seconds = {pending_ttl_seconds}\n"
        f"max_pending_per_caller = {max_pending}\n"
        f"progress_interval_seconds = {progress_interval_seconds}\n" + rules
    )


def approval_config(directory: Path, *, connector: str | None = None, **approvals: Any) -> Path:
    """A config with auth on, the fault server as `faults`, and the approval settings given."""
    return write_config(directory, {"faults": connector or fault_connector()}, approvals_toml(**approvals), auth=True)


@asynccontextmanager
async def approval_hub(
    config: Path, *, approval_store: Callable[[AsyncEngine], ApprovalStore] = ApprovalStore
) -> AsyncGenerator[RunningHub]:
    """A running hub whose approval store `approval_store` makes (a choreographed one, or one with a clock)."""

    def stores(engine: AsyncEngine) -> Stores:
        return replace(Stores.over(engine), approvals=approval_store(engine))

    async with running_hub(config, stores=stores) as hub:
        await hub.wait_ready("faults")
        yield hub


async def agent_token(hub: RunningHub, name: str, *grants: str) -> str:
    agent = await make_agent(hub, name, *(grants or ("tool:faults__*",)))
    return await client_credentials_token(hub, agent)


async def approver(hub: RunningHub, name: str = "alice", role: Role = Role.APPROVER) -> UserRecord:
    return await auth_service(hub).admin.create_user(name, role, "a long enough password 123")


async def downstream_runs(hub: RunningHub, public_name: str) -> int:
    """How many times the hub forwarded `public_name` and the downstream answered (audit outcome `ok`)."""
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(limit=1000)
    return sum(1 for event in events if event.public_name == public_name and event.outcome is AuditOutcome.OK)


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


RULES_WHEN_HELD = """
[[approvals.rules]]
name = "deploys"
tools = ["faults__echo"]
when = [{ field = "text", op = "matches", value = "^deploy " }]
"""
RULES_EDITED = """
[[approvals.rules]]
name = "all-echoes"
tools = ["faults__echo"]
"""


@dataclass(frozen=True)
class EditedRules:
    """A hub restarted on edited rules, over the database of one that held calls under the old ones."""

    hub: RunningHub
    config: Path
    deploy: str
    """An echo of "deploy 1.2" held by `deploys`; as the rules read now, held by `all-echoes` instead."""
    pid: str
    """A `faults__pid` call held by the connector's `sensitive_tools`, which the edit took out: nothing holds it now."""
    unrecorded: str
    """An echo held by `deploys` whose record is gone, as an action stored before migration 0013 has none."""


@asynccontextmanager
async def rules_edited_after_holding(directory: Path) -> AsyncGenerator[EditedRules]:
    """Calls held under `RULES_WHEN_HELD` and the connector's `sensitive_tools = ["pid"]`; then an admin's edit
    (`RULES_EDITED`, no sensitive tools) and a restart on the same database. The hub runs on the edited rules."""
    held = approval_config(directory, rules=RULES_WHEN_HELD, connector=fault_connector(sensitive_tools=["pid"]))
    async with approval_hub(held) as hub:
        token = await agent_token(hub, "deployer")
        deploy = await held_call(hub, token, "faults__echo", {"text": "deploy 1.2"})
        pid = await held_call(hub, token, "faults__pid", {})
        unrecorded = await held_call(hub, token, "faults__echo", {"text": "deploy 0.9"})
    edited = approval_config(directory, rules=RULES_EDITED)
    engine = create_engine(load_settings(edited).database.url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(ApprovalAction).where(ApprovalAction.id == unrecorded).values(hold_reasons=None)
            )
    finally:
        await engine.dispose()
    async with approval_hub(edited) as hub:
        await approver(hub)
        yield EditedRules(hub, edited, deploy, pid, unrecorded)


async def held_call(hub: RunningHub, token: str, tool: str, arguments: dict[str, Any]) -> str:
    """Call `tool` (held, and answered at once: `hold_seconds = 0`); the id of the action it waits on."""
    answer = await modern(hub, token, "tools/call", {"name": tool, "arguments": arguments}, tasks=False)
    action_id: str = answer["result"]["_meta"][APPROVAL_META_KEY]["id"]
    return action_id


class ChoreographedStore(ApprovalStore):
    """The hub's own store with one race pinned down instead of left to luck: every read and write still goes
    to the database, only their order is fixed. Given to the hub when it is built (`approval_hub`), it is what
    the approval service, and so the hold path and the Tasks path, use."""


class LaterClock:
    """An approval store's clock: real time, plus an offset a test sets for a moment (expiry without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return utc_now() + self.offset


class TwoIdenticalFirstCalls(ChoreographedStore):
    """Two identical first calls: both look for an open action before either stores one, and the second
    tries to store its own (counting the agent's pending actions first) only after the first stored its."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._looks = 0
        self._creates = 0
        self._both_looked = anyio.Event()
        self._first_created = anyio.Event()

    async def open_action(
        self, agent_id: AgentId, user_id: UserId | None, digest: str, *, collected_within: timedelta = timedelta(0)
    ) -> ActionRecord | None:
        found = await super().open_action(agent_id, user_id, digest, collected_within=collected_within)
        self._looks += 1
        if self._looks <= 2:
            if self._looks == 2:
                self._both_looked.set()
            await self._both_looked.wait()
        return found

    async def create(self, action: ActionRecord, *, max_pending: int | None = None) -> ActionRecord:
        self._creates += 1
        if self._creates == 2:
            await self._first_created.wait()
        try:
            return await super().create(action, max_pending=max_pending)
        finally:
            self._first_created.set()


class TwoRequestsRunTheApprovedCall(ChoreographedStore):
    """Two requests held on one action both read it approved and try to run it: neither starts before both
    try. `lost` is set once the loser has been refused the `approved → executing` step."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self._tries = 0
        self._both_try = anyio.Event()
        self.lost = anyio.Event()

    async def start_execution(self, action_id: str, *, replica: str | None = None) -> bool:
        self._tries += 1
        if self._tries == 2:
            self._both_try.set()
        await self._both_try.wait()
        won = await super().start_execution(action_id, replica=replica)
        if not won:
            self.lost.set()
        return won
