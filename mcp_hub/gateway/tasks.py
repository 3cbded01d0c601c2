"""Held calls as tasks, for 2026-07-28 clients that declare the Tasks extension (issue 4 §3a).

Implements the server side of the Tasks extension `io.modelcontextprotocol/tasks` (SEP-2663,
https://github.com/modelcontextprotocol/ext-tasks/blob/main/specification/draft/tasks.md), which the SDK 2.3
does not: a held `tools/call` answers at once with a `CreateTaskResult` (`resultType: "task"`, status
`working`, a status message with the approval link) instead of holding the request open. The task id is the
pending action's id: unguessable (192 random bits) and checked against the caller's principal on every
`tasks/get`, `tasks/update` and `tasks/cancel` (another agent's id gets the same error as an unknown one, T13).

How an action's status reads as a task:

| action                      | task                                                                  |
|-----------------------------|-----------------------------------------------------------------------|
| pending, executing          | `working`                                                             |
| approved                    | the call runs (once, re-checked) during that `tasks/get` → `completed` |
| done, failed                | `completed`, `result` = the tool's result (an `isError` one too)      |
| denied, expired             | `completed`, `result` = a tool error carrying the reason               |
| withdrawn (`tasks/cancel`)  | `cancelled`                                                           |

A denial is `completed` with an `isError` result, not `failed`: the extension reserves `failed` for JSON-RPC
errors and says tool-level errors "MUST use the `completed` status". The SDK's outbound sieve leaves a
2026-07-28 result with a non-core `resultType` to its extension, so `resultType: "task"` passes `tools/call`
unchanged; `tasks/*` are custom methods (`Server.add_request_handler`). The SDK does not compare `Mcp-Name`
with `taskId` for these methods, so this module does (`HeaderMismatchError`, -32020, T14). Errors are raised
as hub errors; `mcp_hub.gateway.errors` maps them to JSON-RPC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Final, cast

import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field
from starlette.requests import Request

from mcp_hub.approvals.service import ApprovalService, HeldCall
from mcp_hub.authz.decisions import Access, Principal
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ActionStatus
from mcp_hub.errors import ActionNotFoundError, HeaderMismatchError, MissingCapabilityError
from mcp_hub.gateway.context import HubContext

TASKS_EXTENSION: Final = "io.modelcontextprotocol/tasks"
_TASK_NOT_FOUND: Final = "Failed to retrieve task: Task not found"

AccessOf = Callable[[HubContext], Awaitable[tuple[Principal, Access] | None]]


class TaskParams(types.RequestParams):
    """`tasks/get` and `tasks/cancel` params."""

    task_id: str = Field(min_length=1, max_length=256)


class UpdateTaskParams(TaskParams):
    """`tasks/update` params: answers to outstanding input requests (held calls never ask for any)."""

    input_responses: dict[str, Any] = Field(default_factory=dict[str, Any])


def declares_tasks(ctx: HubContext) -> bool:
    """Did this very request declare the Tasks extension? (Capabilities are per request on 2026-07-28.)"""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or ctx.meta is None:
        return False
    capabilities = ctx.meta.get(types.CLIENT_CAPABILITIES_META_KEY)
    if not isinstance(capabilities, Mapping):
        return False
    extensions = cast("Mapping[str, object]", capabilities).get("extensions")
    return isinstance(extensions, Mapping) and TASKS_EXTENSION in extensions


def _timestamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ApprovalTasks:
    """The Tasks front of the approval service: creating tasks for held calls and serving `tasks/*`."""

    def __init__(self, approvals: ApprovalService, access_of: AccessOf) -> None:
        self._approvals = approvals
        self._access_of = access_of

    # --- tools/call -------------------------------------------------------------------------------------

    async def answer_held_call(self, ctx: HubContext, call: HeldCall) -> dict[str, Any]:
        """A task for a client that declared the extension on this request; otherwise hold the call."""
        if not declares_tasks(ctx):
            return await self._approvals.hold(call)
        action = await self._approvals.submit(call)
        if action.status is not ActionStatus.PENDING:
            # Already decided (the same call made before): a plain result is always allowed.
            return await self._approvals.settle(action, call.principal, call.access, session=call.session)
        return {"resultType": "task", **self._task(action, "working")}

    # --- tasks/* -----------------------------------------------------------------------------------------

    def register(self, server: Server[Any]) -> None:
        """Serve `tasks/get`, `tasks/update` and `tasks/cancel`, and advertise the extension."""
        server.extensions[TASKS_EXTENSION] = {}
        server.add_request_handler("tasks/get", TaskParams, self._get)
        server.add_request_handler("tasks/update", UpdateTaskParams, self._update)
        server.add_request_handler("tasks/cancel", TaskParams, self._cancel)

    async def _get(self, ctx: HubContext, params: TaskParams) -> dict[str, Any]:
        principal, access, action = await self._authorised(ctx, params)
        if action.status is ActionStatus.APPROVED:
            request = ctx.request
            session = request.headers.get("mcp-session-id") if isinstance(request, Request) else None
            result = await self._approvals.settle(action, principal, access, session=session)
            action = await self._reload(action.id)
            if action.status.is_running:  # another request runs it and has not finished yet
                return {"resultType": "complete", **self._task(action, "working")}
            return {"resultType": "complete", **self._task(action, "completed"), "result": result}
        if action.status in (ActionStatus.PENDING, ActionStatus.EXECUTING):
            return {"resultType": "complete", **self._task(action, "working")}
        if action.status is ActionStatus.WITHDRAWN:
            return {"resultType": "complete", **self._task(action, "cancelled")}
        # done, failed, denied, expired: `settle` returns the stored result or the refusal, and closes it.
        result = await self._approvals.settle(action, principal, access, session=None)
        return {"resultType": "complete", **self._task(action, "completed"), "result": result}

    async def _update(self, ctx: HubContext, params: UpdateTaskParams) -> dict[str, Any]:
        await self._authorised(ctx, params)
        # A held call never asks for input; the extension says to ignore responses to keys not outstanding.
        return {"resultType": "complete"}

    async def _cancel(self, ctx: HubContext, params: TaskParams) -> dict[str, Any]:
        principal, _, action = await self._authorised(ctx, params)
        # Cooperative, per the extension: a task decided already reaches its own terminal status instead.
        if action.status is ActionStatus.PENDING:
            await self._approvals.withdraw(action.id, principal)
        return {"resultType": "complete"}

    # --- internals ---------------------------------------------------------------------------------------

    async def _authorised(self, ctx: HubContext, params: TaskParams) -> tuple[Principal, Access, ActionRecord]:
        """The caller's own action named by `taskId`; an unknown id and another caller's id read the same (T13)."""
        if not declares_tasks(ctx):
            raise MissingCapabilityError("Missing required client capability", {"extensions": {TASKS_EXTENSION: {}}})
        request = ctx.request
        if (
            isinstance(request, Request)
            and MCP_NAME_HEADER in request.headers
            and decode_header_value(request.headers.get(MCP_NAME_HEADER)) != params.task_id
        ):
            raise HeaderMismatchError("Mcp-Name header does not match the request's taskId")
        decided = await self._access_of(ctx)
        action = await self._approvals.get(params.task_id)
        if (
            decided is None
            or action is None
            or action.agent_id != decided[0].agent_id
            or action.user_id != decided[0].user_id
        ):
            raise ActionNotFoundError(_TASK_NOT_FOUND)
        return decided[0], decided[1], action

    async def _reload(self, action_id: str) -> ActionRecord:
        action = await self._approvals.get(action_id)
        if action is None:
            raise ActionNotFoundError(_TASK_NOT_FOUND)
        return action

    def _task(self, action: ActionRecord, status: str) -> dict[str, Any]:
        settings = self._approvals.settings
        moments = [action.created_at, action.decided_at, action.completed_at]
        last = max(moment for moment in moments if moment is not None)
        return {
            "taskId": action.id,
            "status": status,
            "statusMessage": self._message(action, status),
            "createdAt": _timestamp(action.created_at),
            "lastUpdatedAt": _timestamp(last),
            # From creation: by then the action is decided or expired, so the status always says so in time.
            "ttlMs": settings.pending_ttl_seconds * 1000,
            "pollIntervalMs": int(settings.progress_interval_seconds * 1000),
        }

    def _message(self, action: ActionRecord, status: str) -> str:
        link = self._approvals.link(action.id)
        if action.status is ActionStatus.PENDING:
            return (
                f"waiting for a human to approve action {action.id} (rules: {', '.join(action.rules)}); "
                f"an approver decides at {link}; it expires at {_timestamp(action.expires_at)} "
                "(no decision = denied)"
            )
        if action.status.is_running:
            return f"approved by {action.decided_by}; running {action.public_name}"
        if status == "cancelled":
            return f"action {action.id} was withdrawn by the agent"
        if action.status is ActionStatus.DENIED:
            return f"denied by {action.decided_by}" + (f": {action.reason}" if action.reason else "")
        if action.status is ActionStatus.EXPIRED:
            return "expired without a decision, which counts as denied"
        return f"approved by {action.decided_by}; {action.public_name} ran ({action.status})"
