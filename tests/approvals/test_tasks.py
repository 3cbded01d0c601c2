"""The Tasks path of held calls (issue 4 §3a; threats T13, T14, T19, T20).

A 2026-07-28 client that declares `io.modelcontextprotocol/tasks` on its `tools/call` gets a task at once and
polls `tasks/get`; `tasks/cancel` withdraws the request. Shapes follow the extension (SEP-2663); mapping a
denial to `completed` with an `isError` result is the extension's rule for tool-level errors. Everything goes
over raw HTTP with the 2026-07-28 routing headers (`Mcp-Name` carries the task id for `tasks/*`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import anyio
import pytest

from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ALL_STATUSES, ActionStatus
from mcp_hub.errors import ApprovalError
from tests.approvals.holding import (
    TASKS,
    TwoIdenticalFirstCalls,
    agent_token,
    approval_config,
    approval_hub,
    approver,
    downstream_runs,
    modern,
)
from tests.conftest import RunningHub

pytestmark = pytest.mark.anyio

DANGEROUS = {"name": "faults__echo", "arguments": {"text": "rm -rf /tmp/x"}}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    async with approval_hub(approval_config(tmp_path, hold_seconds=30)) as running:
        yield running


async def start_task(hub: RunningHub, token: str) -> dict[str, Any]:
    answer = await modern(hub, token, "tools/call", DANGEROUS)
    result: dict[str, Any] = answer["result"]
    assert result["resultType"] == "task", answer
    return result


async def get_task(hub: RunningHub, token: str, task_id: str) -> dict[str, Any]:
    answer = await modern(hub, token, "tasks/get", {"taskId": task_id})
    assert "result" in answer, answer
    result: dict[str, Any] = answer["result"]
    return result


async def test_a_declaring_client_gets_a_working_task_at_once_with_a_link_for_humans(hub: RunningHub) -> None:
    """SEP-2663: a CreateTaskResult (`resultType: task`) instead of holding for `hold_seconds` (30 here)."""
    token = await agent_token(hub, "tasker")

    task = await start_task(hub, token)

    assert task["status"] == "working"
    assert task["taskId"].startswith("apv_")
    assert f"{hub.base_url}/approvals/{task['taskId']}" in task["statusMessage"]
    assert "waiting for a human to approve" in task["statusMessage"]
    assert task["ttlMs"] == 600_000
    assert task["pollIntervalMs"] == 200
    assert task["createdAt"].endswith("Z")
    assert task["lastUpdatedAt"].endswith("Z")
    assert (await get_task(hub, token, task["taskId"]))["status"] == "working"
    assert await downstream_runs(hub, "faults__echo") == 0


async def test_an_approved_task_completes_with_the_downstreams_result_run_exactly_once(hub: RunningHub) -> None:
    """Issue 4 §3a and T19 (single use): polling after the approval runs the call once; later polls repeat it."""
    token = await agent_token(hub, "tasker")
    user = await approver(hub)
    task = await start_task(hub, token)

    await hub.hub.approvals.decide(task["taskId"], user, True, None)
    first = await get_task(hub, token, task["taskId"])
    second = await get_task(hub, token, task["taskId"])

    assert first["status"] == "completed"
    assert first["resultType"] == "complete"
    assert first["result"]["content"] == [{"type": "text", "text": "rm -rf /tmp/x"}]
    assert first["result"]["isError"] is False
    assert second["status"] == "completed"
    assert second["result"]["content"] == first["result"]["content"]
    assert await downstream_runs(hub, "faults__echo") == 1


async def test_two_identical_task_calls_at_once_get_one_task_that_runs_once_for_both_pollers(
    tmp_path: Path,
) -> None:
    """Issue 4 (the same call does not create a second action), T19 (single use): two identical first calls
    racing to create the action get the same task; polled at once after the approval, it runs once and both
    pollers get its result. A poll that reads the task while the other poll is running it gets `working`
    (SEP-2663 mapping of `executing`) and polls again once the run has finished. The race is pinned down by the
    hub's `TwoIdenticalFirstCalls` store."""
    config = approval_config(tmp_path, hold_seconds=30)
    async with approval_hub(config, approval_store=TwoIdenticalFirstCalls) as hub:
        await race_two_task_calls(hub)


async def race_two_task_calls(hub: RunningHub) -> None:
    token = await agent_token(hub, "tasker")
    user = await approver(hub)
    tasks: list[dict[str, Any]] = []
    polls: list[dict[str, Any]] = []
    ran = anyio.Event()

    async def on_change(action: ActionRecord) -> None:
        if action.status in (ActionStatus.DONE, ActionStatus.FAILED):
            ran.set()

    hub.hub.feed.subscribe(on_change)

    async def start() -> None:
        tasks.append(await start_task(hub, token))

    async def poll(task_id: str) -> None:
        answer = await get_task(hub, token, task_id)
        if answer["status"] == "working":
            await ran.wait()
            answer = await get_task(hub, token, task_id)
        polls.append(answer)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as group:
            group.start_soon(start)
            group.start_soon(start)
        for task_id in {task["taskId"] for task in tasks}:  # without the guarantee: a task each, approve both
            await hub.hub.approvals.decide(task_id, user, True, None)
        async with anyio.create_task_group() as group:
            for task in tasks:
                group.start_soon(poll, task["taskId"])
    actions = await hub.hub.approvals.list_actions(ALL_STATUSES)

    assert tasks[0]["taskId"] == tasks[1]["taskId"]
    assert [action.id for action in actions] == [tasks[0]["taskId"]]
    assert [(poll["status"], poll["result"]["content"]) for poll in polls] == [
        ("completed", [{"type": "text", "text": "rm -rf /tmp/x"}])
    ] * 2
    assert await downstream_runs(hub, "faults__echo") == 1


async def test_a_denied_task_completes_with_a_tool_error_carrying_the_reason(hub: RunningHub) -> None:
    """SEP-2663: `failed` is for JSON-RPC errors only, so a denial is `completed` with `isError: true`."""
    token = await agent_token(hub, "tasker")
    user = await approver(hub)
    task = await start_task(hub, token)

    await hub.hub.approvals.decide(task["taskId"], user, False, "not on a Friday")
    done = await get_task(hub, token, task["taskId"])

    assert done["status"] == "completed"
    assert done["result"]["isError"] is True
    assert "not on a Friday" in done["result"]["content"][0]["text"]
    assert "not on a Friday" in done["statusMessage"]
    assert await downstream_runs(hub, "faults__echo") == 0


async def test_cancelling_a_task_withdraws_the_request_and_no_one_can_approve_it_afterwards(
    hub: RunningHub,
) -> None:
    """Issue 4 §3a: tasks/cancel → withdrawn → `cancelled`; a later decision is a conflict (T20, decisions final)."""
    token = await agent_token(hub, "tasker")
    user = await approver(hub)
    task = await start_task(hub, token)

    ack = await modern(hub, token, "tasks/cancel", {"taskId": task["taskId"]})
    polled = await get_task(hub, token, task["taskId"])

    assert ack["result"]["resultType"] == "complete"
    assert polled["status"] == "cancelled"
    with pytest.raises(ApprovalError) as refused:
        await hub.hub.approvals.decide(task["taskId"], user, True, None)
    assert refused.value.reason == "conflict"
    assert await downstream_runs(hub, "faults__echo") == 0


async def test_another_agents_task_id_reads_exactly_like_an_unknown_one(hub: RunningHub) -> None:
    """T13: task ids are bound to the principal; B presenting A's id learns nothing and cannot cancel it."""
    owner = await agent_token(hub, "owner")
    intruder = await agent_token(hub, "intruder")
    task = await start_task(hub, owner)

    foreign_get = await modern(hub, intruder, "tasks/get", {"taskId": task["taskId"]})
    foreign_cancel = await modern(hub, intruder, "tasks/cancel", {"taskId": task["taskId"]})
    unknown_get = await modern(hub, intruder, "tasks/get", {"taskId": "apv_does-not-exist"})

    assert foreign_get["error"] == unknown_get["error"]
    assert foreign_get["error"]["code"] == -32602
    assert foreign_cancel["error"] == unknown_get["error"]
    assert (await get_task(hub, owner, task["taskId"]))["status"] == "working"


async def test_tasks_methods_need_the_extension_declared_on_that_request(hub: RunningHub) -> None:
    """SEP-2663: a client that does not declare the extension on tasks/get gets -32021 naming it."""
    token = await agent_token(hub, "tasker")
    task = await start_task(hub, token)

    answer = await modern(hub, token, "tasks/get", {"taskId": task["taskId"]}, tasks=False)

    assert answer["error"]["code"] == -32021
    assert answer["error"]["data"] == {"requiredCapabilities": {"extensions": {TASKS: {}}}}


async def test_an_mcp_name_header_naming_another_task_is_a_header_mismatch(hub: RunningHub) -> None:
    """T14: decisions rest on the body; a routing header that disagrees with it is -32020."""
    token = await agent_token(hub, "tasker")
    task = await start_task(hub, token)

    answer = await modern(hub, token, "tasks/get", {"taskId": task["taskId"]}, name="apv_something-else")

    assert answer["error"]["code"] == -32020


async def test_a_client_without_the_extension_is_held_instead(tmp_path: Path) -> None:
    """SEP-2663: never a task for a request that did not declare the extension; the hold path answers."""
    async with approval_hub(approval_config(tmp_path, hold_seconds=0)) as hub:
        token = await agent_token(hub, "plain")
        answer = await modern(hub, token, "tools/call", DANGEROUS, tasks=False)

    result = answer["result"]
    assert result["resultType"] == "complete"
    assert result["isError"] is True
    assert "Call this tool again with exactly the same arguments" in result["content"][0]["text"]


async def test_a_call_that_no_rule_holds_is_answered_directly_even_for_a_declaring_client(hub: RunningHub) -> None:
    """Issue 4 §1: the condition decides; a server may always answer a declaring client with a plain result."""
    token = await agent_token(hub, "tasker")

    answer = await modern(hub, token, "tools/call", {"name": "faults__echo", "arguments": {"text": "ls"}})

    assert answer["result"]["resultType"] == "complete"
    assert answer["result"]["content"] == [{"type": "text", "text": "ls"}]


async def test_server_discover_advertises_the_tasks_extension(hub: RunningHub) -> None:
    """SEP-2663 capability negotiation: the server lists the extension with empty settings."""
    token = await agent_token(hub, "tasker")

    answer = await modern(hub, token, "server/discover", {})

    assert answer["result"]["capabilities"]["extensions"][TASKS] == {}
