"""`ApprovalStore`: the durable pending actions of issue 4, and the transitions of their state machine.

Every transition is one conditional `UPDATE ... WHERE status = <expected>`: two approvers deciding at once,
or two replicas executing at once, cannot both win (threats T19, T20). Expiry is applied by the same kind
of update, so an expired action can never be approved afterwards (T21). A caller has at most one open
(uncollected) action per digest, enforced by partial unique indexes: of simultaneous identical first calls
one creates the action and the others are handed it (`create`), so it is asked for, counted and run once.
The store applies no time on its own: `expire_due` is called by `ApprovalService` before it reads, so that the
service audits and announces each expiry once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from mcp_hub.db._base import Store, columns_of, mapped, record_of, rowcount
from mcp_hub.db.models import Agent, ApprovalAction, HubReplica
from mcp_hub.domain import SETTLED_STATUSES, ActionId, ActionStatus, AgentId, ConnectorId, UserId
from mcp_hub.errors import TooManyPendingError
from mcp_hub.tool_results import hub_error_result

_EXPIRING: Final = {
    ActionStatus.PENDING: "no decision before the action expired",
    ActionStatus.APPROVED: "approved, but not run before the approval lapsed; call again to ask anew",
}
"""The statuses that expire at `expires_at`, with the reason an expired action then gives."""
_CREATE_ATTEMPTS: Final = 3
_INTERRUPTED: Final = (
    "the hub replica running this approved call stopped before it finished; it was not run again "
    "(it may or may not have taken effect)"
)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One pending (or decided) action, as stored."""

    id: ActionId
    agent_id: AgentId
    user_id: UserId | None
    agent_name: str
    method: str
    """`tools/call`, `prompts/get` or `resources/read`."""
    public_name: str
    connector_id: ConnectorId
    downstream_name: str
    definition_sha256: str
    description: str
    arguments: dict[str, Any]
    digest: str
    rules: tuple[str, ...]
    approvers: tuple[str, ...]
    status: ActionStatus
    reason: str | None
    decided_by: str | None
    decided_at: datetime | None
    created_at: datetime
    expires_at: datetime
    result: dict[str, Any] | None
    completed_at: datetime | None
    reported_at: datetime | None
    hold_reasons: list[dict[str, Any]] | None
    """What held it, as recorded when it was held (`mcp_hub.approvals.reasons`); None for an action stored
    before the record existed (migration 0013)."""

    @property
    def subject_label(self) -> str:
        """What is held, in a word: `tool` (a call), `prompt` (a get) or `resource` (a read)."""
        return {"prompts/get": "prompt", "resources/read": "resource"}.get(self.method, "tool")


def _row(action: ActionRecord) -> ApprovalAction:
    """A new pending row for `action` (its decision and outcome fields are the table's defaults: empty)."""
    return ApprovalAction(
        **columns_of(
            action,
            rules=list(action.rules),
            approvers=list(action.approvers),
            arguments=dict(action.arguments),
            status=ActionStatus.PENDING.value,
        )
    )


def _record(row: ApprovalAction) -> ActionRecord:
    return record_of(
        ActionRecord,
        row,
        arguments=dict(row.arguments),
        rules=tuple(row.rules),
        approvers=tuple(row.approvers),
        status=ActionStatus(row.status),
    )


class ApprovalStore(Store):
    """Reads and conditional transitions of `approval_actions`."""

    async def create(self, action: ActionRecord, *, max_pending: int | None = None) -> ActionRecord:
        """Store `action` as pending, unless its caller already has an open action with its digest: then that one.

        Two partial unique indexes allow one open action per (agent, user, digest), so of two simultaneous
        identical first calls exactly one inserts; the other gets the winner's row, as if it had called again.
        With `max_pending`, `TooManyPendingError` when the caller, the (agent, user) pair, already has that many
        pending (unless this very call is among them: then that one); each user of a shared public client has their
        own count (T28). Counting and inserting are one transaction that holds the agent's row lock (PostgreSQL)
        or the write lock (SQLite's BEGIN IMMEDIATE), so simultaneous distinct calls cannot overshoot the cap (T21).
        """
        attempts = 0
        while True:
            try:
                async with self._writes.begin() as session:
                    at_cap = max_pending is not None and await self._pending_at_cap(
                        session, action.agent_id, action.user_id, max_pending
                    )
                    if not at_cap:
                        session.add(_row(action))
                if at_cap:
                    existing = await self.open_action(action.agent_id, action.user_id, action.digest)
                    if existing is not None:
                        return existing
                    caller = f"agent {action.agent_name!r}" + (
                        f" for user {action.user_id!r}" if action.user_id is not None else ""
                    )
                    raise TooManyPendingError(
                        f"{caller} already has {max_pending} actions waiting for approval; "
                        "wait for a decision before asking for more",
                    )
            except IntegrityError:
                attempts += 1
                existing = await self.open_action(action.agent_id, action.user_id, action.digest)
                if existing is not None:
                    return existing
                # Nothing open: another constraint failed (re-raised at the last attempt), or the winner was
                # decided and collected in between, which leaves room for this action: try again.
                if attempts >= _CREATE_ATTEMPTS:
                    raise
            else:
                return action

    @staticmethod
    async def _pending_at_cap(
        session: AsyncSession, agent_id: AgentId, user_id: UserId | None, max_pending: int
    ) -> bool:
        # The agent's row is the lock for all its users: one caller's count and insert are never interleaved with
        # another insert of the same agent (PostgreSQL; SQLite's write lock already serialises every writer).
        await session.execute(select(Agent.id).where(Agent.id == agent_id).with_for_update())
        pending = await session.scalar(
            select(func.count())
            .select_from(ApprovalAction)
            .where(
                ApprovalAction.agent_id == agent_id,
                ApprovalAction.user_id.is_(None) if user_id is None else ApprovalAction.user_id == user_id,
                ApprovalAction.status == ActionStatus.PENDING,
            )
        )
        return int(pending or 0) >= max_pending

    async def get(self, action_id: str) -> ActionRecord | None:
        return mapped(await self._get(ApprovalAction, action_id), _record)

    async def open_action(
        self, agent_id: AgentId, user_id: UserId | None, digest: str, *, collected_within: timedelta = timedelta(0)
    ) -> ActionRecord | None:
        """The newest action of this caller with this digest whose outcome was not returned, or was returned
        less than `collected_within` ago (the response carrying it may never have reached the caller)."""
        returned_after = self._clock() - collected_within
        query = (
            select(ApprovalAction)
            .where(
                ApprovalAction.agent_id == agent_id,
                ApprovalAction.user_id.is_(None) if user_id is None else ApprovalAction.user_id == user_id,
                ApprovalAction.digest == digest,
                or_(ApprovalAction.reported_at.is_(None), ApprovalAction.reported_at > returned_after),
            )
            .order_by(ApprovalAction.created_at.desc())
            .limit(1)
        )
        return mapped(await self._first(query), _record)

    async def list_actions(self, statuses: Sequence[ActionStatus], limit: int = 100) -> list[ActionRecord]:
        """The newest actions in `statuses`, newest first."""
        query = (
            select(ApprovalAction)
            .where(ApprovalAction.status.in_(list(statuses)))
            .order_by(ApprovalAction.created_at.desc())
            .limit(limit)
        )
        return [_record(row) for row in await self._every(query)]

    async def count_pending(self) -> int:
        """Actions waiting for a decision (not yet expired), over every replica (the `/metrics` gauge)."""
        query = (
            select(func.count())
            .select_from(ApprovalAction)
            .where(ApprovalAction.status == ActionStatus.PENDING, ApprovalAction.expires_at > self._clock())
        )
        async with self._reads() as session:
            return int((await session.execute(query)).scalar_one())

    async def expire_due(self) -> list[ActionId]:
        """Actions past their expiry become `expired` (= denied); returns the ids this call expired.

        A pending action expires without a decision; an approved one that nobody ran before its
        approval lapsed expires too, so an old approval cannot be cashed in days later (T19).
        """
        now = self._clock()
        # Runs before every read of the service: look without the write lock, take it only when something is due.
        async with self._reads() as session:
            rows = await session.execute(
                select(ApprovalAction.id, ApprovalAction.status).where(
                    ApprovalAction.status.in_(_EXPIRING), ApprovalAction.expires_at <= now
                )
            )
            due = [(ActionId(action_id), ActionStatus(status)) for action_id, status in rows.all()]
        if not due:
            return []
        expired: list[ActionId] = []
        async with self._writes.begin() as session:
            for action_id, status in due:  # one by one: report only the rows this call changed, not a concurrent one's
                values: dict[str, Any] = {"status": ActionStatus.EXPIRED, "reason": _EXPIRING[status]}
                if status is ActionStatus.PENDING:
                    values["decided_at"] = now
                result = await session.execute(
                    update(ApprovalAction)
                    .where(ApprovalAction.id == action_id, ApprovalAction.status == status)
                    .values(**values)
                )
                if rowcount(result):
                    expired.append(action_id)
        return expired

    async def decide(
        self, action_id: str, approve: bool, decided_by: str, reason: str | None, *, run_within: timedelta
    ) -> bool:
        """pending → approved | denied, only if still pending and not expired; False otherwise (→ 409).

        An approval is good for `run_within`: an approved action not run by then expires.
        """
        now = self._clock()
        decision: dict[str, Any] = {"status": ActionStatus.DENIED}
        if approve:
            decision = {"status": ActionStatus.APPROVED, "expires_at": now + run_within}
        changed = await self._change(
            update(ApprovalAction)
            .where(
                ApprovalAction.id == action_id,
                ApprovalAction.status == ActionStatus.PENDING,
                ApprovalAction.expires_at > now,
            )
            .values(decided_by=decided_by, reason=reason, decided_at=now, **decision)
        )
        return changed == 1

    async def withdraw(self, action_id: str, agent_id: AgentId) -> bool:
        """pending → withdrawn, by the agent that asked (tasks/cancel)."""
        changed = await self._change(
            update(ApprovalAction)
            .where(
                ApprovalAction.id == action_id,
                ApprovalAction.agent_id == agent_id,
                ApprovalAction.status == ActionStatus.PENDING,
            )
            .values(status=ActionStatus.WITHDRAWN, reason="withdrawn by the agent", decided_at=self._clock())
        )
        return changed == 1

    async def start_execution(self, action_id: str, *, replica: str | None = None) -> bool:
        """approved → executing, while the approval holds: exactly one caller wins and runs the call, on
        `replica` (recorded: recovery after a crash fails only that replica's executions)."""
        changed = await self._change(
            update(ApprovalAction)
            .where(
                ApprovalAction.id == action_id,
                ApprovalAction.status == ActionStatus.APPROVED,
                ApprovalAction.expires_at > self._clock(),
            )
            .values(status=ActionStatus.EXECUTING, executing_replica=replica)
        )
        return changed == 1

    async def finish(self, action_id: str, result: dict[str, Any], *, failed: bool = False) -> None:
        await self._change(
            update(ApprovalAction)
            .where(ApprovalAction.id == action_id, ApprovalAction.status == ActionStatus.EXECUTING)
            .values(
                status=ActionStatus.FAILED if failed else ActionStatus.DONE, result=result, completed_at=self._clock()
            )
        )

    async def mark_reported(self, action_id: str) -> bool:
        """The outcome was handed to the agent: the action is closed (True for the one reporter)."""
        changed = await self._change(
            update(ApprovalAction)
            .where(
                ApprovalAction.id == action_id,
                ApprovalAction.reported_at.is_(None),
                ApprovalAction.status.in_(SETTLED_STATUSES),
            )
            .values(reported_at=self._clock())
        )
        return changed == 1

    async def interrupt_executions(self, replica: str | None, *, at_start: bool) -> list[ActionId]:
        """Calls left `executing` by a replica that stopped may or may not have run; never re-run them: fail them.

        Stopped means: `replica` itself (at its start: its previous incarnation), a replica whose lease in
        `hub_replicas` expired or that never held one, and `at_start` also an execution no replica recorded (rows
        from before replicas had ids). A live replica's executions are left alone.
        """
        now = self._clock()
        live = (
            select(HubReplica.id)
            .where(HubReplica.id == ApprovalAction.executing_replica, HubReplica.expires_at > now)
            .exists()
        )
        stopped = [and_(ApprovalAction.executing_replica.is_not(None), ~live)]
        if replica is not None:
            stopped.append(ApprovalAction.executing_replica == replica)
        if at_start:
            stopped.append(ApprovalAction.executing_replica.is_(None))
        async with self._writes.begin() as session:
            # One conditional UPDATE: of replicas sweeping at once, each reports only the rows it changed.
            failed = await session.scalars(
                update(ApprovalAction)
                .where(ApprovalAction.status == ActionStatus.EXECUTING, or_(*stopped))
                .values(status=ActionStatus.FAILED, completed_at=now, result=hub_error_result(_INTERRUPTED))
                .returning(ApprovalAction.id)
            )
            return [ActionId(action_id) for action_id in failed.all()]
