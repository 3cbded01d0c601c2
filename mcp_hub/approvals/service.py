"""Holding sensitive calls for a human decision, and running approved ones exactly once (issue 4).

A call (a tool call, or a prompt get or resource read that a rule names: `subject.py`) that a rule holds
becomes a durable action bound to a digest of {agent, user, connector, method, tool, downstream name,
definition hash, arguments} (RFC 8785 canonical JSON, SHA-256; threat T19), with what held it recorded (each
rule and the parts of it that matched: `reasons.py`), since the rules may be edited before anyone decides. The same
caller calling again with the same arguments finds that action instead of making a second one, also when
both calls arrive at once (the store keeps one open action per digest); different arguments make a new
one. What the caller sees:
- held for up to `hold_seconds` (progress notifications every `progress_interval_seconds` when it asked for
  progress); decided in time → the result, or a tool error with the approver's reason;
- otherwise a tool error saying the action is pending, its id and link, and that calling again with the same
  arguments collects the outcome (the Tasks path, for 2026-07-28 clients that declare it, is `tasks.py`).
An approved action runs once: `approved → executing` is a conditional update only one caller wins; the
stored arguments are the ones sent, the caller's grants and the tool's definition hash are checked again
right before it runs, and a call left `executing` by a crash is never run again.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Final, Protocol

import anyio
import rfc8785
import structlog

from mcp_hub.approvals.briefing import Briefing, Definition, brief
from mcp_hub.approvals.feed import ActionListener
from mcp_hub.approvals.history import CallHistory
from mcp_hub.approvals.policy import ApprovalPolicy, Requirement
from mcp_hub.approvals.presentation import APPROVAL_META_KEY, approval_link
from mcp_hub.approvals.reasons import hold_reasons, read_record, record_of
from mcp_hub.approvals.subject import TOOLS_CALL, HeldSubject, current_subject, scope_kind_of
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.authz.decisions import Access, Principal
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.config.settings import ApprovalsSection
from mcp_hub.db.approvals import ActionRecord, ApprovalStore
from mcp_hub.db.audit import AuditEvent
from mcp_hub.db.identities import IdentityStore, UserRecord
from mcp_hub.domain import ActionId, ActionStatus, AuditOutcome, Caller, Clock, Role, UserId, utc_now
from mcp_hub.errors import (
    ActionNotFoundError,
    DecisionConflictError,
    DecisionForbiddenError,
    DownstreamRejectedError,
)
from mcp_hub.fanout import Bus, LocalBus, Topic
from mcp_hub.telemetry.tracing import Tracing
from mcp_hub.tool_results import hub_error_result

logger = structlog.get_logger(__name__)

POLL_SECONDS: Final = 0.5
"""How often a held call looks for a decision made by another process when no bus tells it (one process alone)."""
RECHECK_SECONDS: Final = 5.0
"""With a shared bus, decisions made elsewhere wake a held call at once; this slow re-read covers a lost message."""

ProgressReporter = Callable[[float, float | None, str | None], Awaitable[None]]
_CALL_AGAIN: Final = {
    "tools/call": "Call this tool again with exactly the same arguments to collect the outcome.",
    "prompts/get": "Get this prompt again with exactly the same arguments to collect the outcome.",
    "resources/read": "Read this resource again to collect the outcome.",
}


class Forward(Protocol):
    """How an approved call reaches its downstream (the gateway's forwarder, which audits it); a downstream's
    JSON-RPC error raises `DownstreamRejectedError`."""

    async def __call__(
        self, method: str, public_name: str, arguments: Mapping[str, Any] | None, caller: Caller
    ) -> dict[str, Any]: ...


def action_digest(principal: Principal, subject: HeldSubject, arguments: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything an approval is bound to."""
    bound: dict[str, Any] = {
        "agent": principal.agent_id,
        "user": principal.user_id,
        "connector": subject.connector_id,
        "tool": subject.public_name,
        "downstream_name": subject.downstream_name,
        "definition_sha256": subject.sha256,
        "arguments": dict(arguments),
    }
    if subject.method != TOOLS_CALL:
        # Only then, so that a tool call's digest (and an open action's match) is what it was before.
        bound["method"] = subject.method
    return hashlib.sha256(rfc8785.dumps(bound)).hexdigest()


@dataclass(frozen=True, slots=True)
class HeldCall:
    """A call a rule holds: who asks (and what they may call now), the tool (or prompt, or resource), the exact
    arguments, why it is held, and where the caller is (its legacy session, its progress channel)."""

    principal: Principal
    access: Access
    subject: HeldSubject
    arguments: Mapping[str, Any]
    requirement: Requirement
    session: str | None = None
    report_progress: ProgressReporter | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: ActionRecord
    approved: bool


class ApprovalService:
    """The pending actions of one hub process, backed by the database (shared by every replica)."""

    def __init__(
        self,
        settings: ApprovalsSection,
        store: ApprovalStore,
        identities: IdentityStore,
        policy: ApprovalPolicy,
        catalog: Catalog,
        audit: AuditWriter,
        forward: Forward,
        *,
        public_base_url: str,
        listeners: Sequence[ActionListener] = (),
        bus: Bus | None = None,
        replica: str | None = None,
        clock: Clock = utc_now,
        tracing: Tracing | None = None,
        on_decided: Callable[[float], None] | None = None,
        history: CallHistory | None = None,
    ) -> None:
        """`on_decided`: told how many seconds after its request each action was decided (the metrics).
        `bus`: tells the other replicas of each transition and wakes this one's held calls on theirs; `replica`:
        this process's id, recorded on the actions it executes (start-up recovery fails only its own or orphaned
        ones: `ReplicaLease`). `history`: the callers' earlier calls, for the rules with `after` (None: no rule has)."""
        self.settings = settings
        self._store = store
        self._policy = policy
        self._identities = identities
        self._catalog = catalog
        self._audit = audit
        self._forward = forward
        self._public_base_url = public_base_url
        self._listeners = tuple(listeners)
        self._clock = clock
        self._changed: dict[str, anyio.Event] = {}
        self._announced: dict[str, ActionStatus] = {}
        """The status an awoken waiter was told of (`approved`: it may claim the action without reading it)."""
        self._bus: Bus = bus if bus is not None else LocalBus()
        self._bus.subscribe(Topic.APPROVALS, self._changed_elsewhere)
        self._recheck_seconds = RECHECK_SECONDS if self._bus.shared else POLL_SECONDS
        self.replica = replica
        self._tracing = tracing if tracing is not None else Tracing.off()
        self._on_decided = on_decided
        self._history = history

    def link(self, action_id: str) -> str:
        """Where a human decides: the approval page (behind login; never pre-authenticated)."""
        return approval_link(self._public_base_url, action_id)

    # --- reading (every read applies expiry first, so an expired action never reads as pending) ---------

    async def get(self, action_id: str) -> ActionRecord | None:
        await self.expire_due()
        return await self._store.get(action_id)

    async def list_actions(self, statuses: Sequence[ActionStatus], limit: int = 100) -> list[ActionRecord]:
        """The newest actions in `statuses`, newest first."""
        await self.expire_due()
        return await self._store.list_actions(statuses, limit)

    async def requirement(
        self, principal: Principal | None, subject: HeldSubject, arguments: Mapping[str, Any]
    ) -> Requirement | None:
        """The approval the request needs (None: none). The caller's earlier calls are read only when a rule with
        `after` matches the subject."""
        name = principal.agent_name if principal is not None else ""
        earlier = None
        if self._history is not None and self._policy.needs_history(subject):
            earlier = await self._history.earlier(principal)
        return self._policy.requirement(name, subject, arguments, earlier)

    def watches(self, public_name: str) -> bool:
        """Is a call of this tool recorded when it is admitted (does a rule's `after` match it)?"""
        return self._history is not None and self._history.watches(public_name)

    async def admitted(self, principal: Principal, public_name: str) -> None:
        """`principal` is about to run `public_name`: recorded if a rule's `after` watches it."""
        if self._history is not None and self._history.watches(public_name):
            await self._history.record(principal, public_name)

    def may_hold(self, subject: HeldSubject) -> bool:
        """Could an approval rule hold requests for this subject (for some agent or arguments)?"""
        return self._policy.may_hold(subject)

    def briefing(self, action: ActionRecord) -> Briefing:
        """What an approver is told besides the request: why it was held (as recorded then, against the rules as
        they read now), the tool's annotations, risk cues, and whether its definition changed since
        (`mcp_hub.approvals.briefing`)."""
        subject = HeldSubject(
            method=action.method,
            public_name=action.public_name,
            connector_id=action.connector_id,
            downstream_name=action.downstream_name,
            sha256=action.definition_sha256,
            description=action.description,
        )
        current = current_subject(self._catalog, action.method, action.public_name)
        if current is None:
            definition = Definition.GONE
        else:
            definition = Definition.SAME if current.sha256 == action.definition_sha256 else Definition.CHANGED
        tool = self._catalog.tools.get(action.public_name) if action.method == TOOLS_CALL else None
        record = read_record(action.hold_reasons)
        now = self._policy.explain(action.agent_name, subject, action.arguments, record or ())
        why = hold_reasons(record, now)
        return brief(why, action.arguments, tool.public_definition if tool is not None else None, definition)

    # --- the caller's side -----------------------------------------------------------------------------

    async def submit(self, call: HeldCall) -> ActionRecord:
        """The caller's open action for exactly this call, or a new pending one (`TooManyPendingError` beyond
        the cap)."""
        principal, subject, arguments, requirement = call.principal, call.subject, call.arguments, call.requirement
        digest = action_digest(principal, subject, arguments)
        await self.expire_due()
        existing = await self._store.open_action(
            principal.agent_id,
            principal.user_id,
            digest,
            collected_within=timedelta(seconds=self.settings.collect_again_seconds),
        )
        if existing is not None:
            return existing
        now = self._clock()
        action = ActionRecord(
            id=ActionId("apv_" + secrets.token_urlsafe(24)),
            agent_id=principal.agent_id,
            user_id=principal.user_id,
            agent_name=principal.agent_name,
            method=subject.method,
            public_name=subject.public_name,
            connector_id=subject.connector_id,
            downstream_name=subject.downstream_name,
            definition_sha256=subject.sha256,
            description=subject.description,
            arguments=dict(arguments),
            digest=digest,
            rules=requirement.rules,
            approvers=requirement.approvers,
            status=ActionStatus.PENDING,
            reason=None,
            decided_by=None,
            decided_at=None,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.pending_ttl_seconds),
            result=None,
            completed_at=None,
            reported_at=None,
            # What held it, as the rules read now: an admin may edit them before anyone decides.
            hold_reasons=record_of(requirement.matches),
        )
        # Refused beyond the cap, unless another request made this very call at the same time: then that one.
        stored = await self._store.create(action, max_pending=self.settings.max_pending_per_caller)
        if stored.id != action.id:
            # The same call, made at the same time by another request, created it first: share that action
            # (announced and audited once), exactly as if this request had called again a moment later.
            return stored
        await self._record(
            action,
            AuditOutcome.APPROVAL_REQUESTED,
            f"rules {', '.join(action.rules)}; expires {action.expires_at.isoformat()}",
        )
        await self._changed_locally(action)
        return action

    async def hold(self, call: HeldCall) -> dict[str, Any]:
        """The non-Tasks path: wait up to `hold_seconds` for a decision, then answer (issue 4 §3b, §3c)."""
        action = await self.submit(call)
        report_progress = call.report_progress
        hold_seconds, interval = self.settings.hold_seconds, self.settings.progress_interval_seconds
        started = anyio.current_time()
        deadline = started + hold_seconds
        next_report = started
        with self._tracing.span("hub.approval_wait", {"mcp_hub.approval.id": action.id}) as span:
            # Each wait may end early (a wake-up, or the re-check every `_recheck_seconds`, 0.5 s alone): progress
            # follows its own clock, once per `progress_interval_seconds`, not once per look at the action.
            while action.status is ActionStatus.PENDING and (now := anyio.current_time()) < deadline:
                if report_progress is not None and now >= next_report:
                    await report_progress(
                        now - started, hold_seconds, f"waiting for a human to approve action {action.id}"
                    )
                    next_report = now + interval
                until = min(next_report, deadline) if report_progress is not None else deadline
                action = await self._next_state(action.id, ActionStatus.PENDING, until - anyio.current_time())
            if span is not None:
                span.set_attribute("mcp_hub.approval.status", str(action.status))
        if action.status is ActionStatus.PENDING:
            return self._pending_result(action)
        return await self.settle(action, call.principal, call.access, session=call.session)

    async def settle(
        self, action: ActionRecord, principal: Principal, access: Access, *, session: str | None
    ) -> dict[str, Any]:
        """The outcome of a decided action for its caller: run it (once) if approved, then report it."""
        if action.status is ActionStatus.APPROVED:
            action = await self._execute(action, principal, access, session)
        if action.status is ActionStatus.EXECUTING:
            # Another request of this caller runs it right now: wait as long as a held call would.
            deadline = anyio.current_time() + self.settings.hold_seconds
            while action.status is ActionStatus.EXECUTING and anyio.current_time() < deadline:
                action = await self._next_state(action.id, ActionStatus.EXECUTING, deadline - anyio.current_time())
        if action.status.is_running:
            return self._running_result(action)
        if action.status in (ActionStatus.DONE, ActionStatus.FAILED):
            result = dict(action.result or hub_error_result("the approved call left no result"))
        elif action.status is ActionStatus.PENDING:
            return self._pending_result(action)
        else:
            result = self._refusal_result(action)
        if await self._store.mark_reported(action.id):
            await self._record(action, AuditOutcome.APPROVAL_RETURNED, f"outcome {action.status} returned to the agent")
        self._changed.pop(action.id, None)  # closed: nobody waits for it any more
        self._announced.pop(action.id, None)
        return result

    async def withdraw(self, action_id: str, principal: Principal) -> bool:
        withdrawn = await self._store.withdraw(action_id, principal.agent_id)
        if withdrawn:
            action = await self._reload(action_id)
            await self._record(action, AuditOutcome.APPROVAL_WITHDRAWN, "withdrawn by the agent")
            await self._changed_locally(action)
        return withdrawn

    # --- the approver's side -----------------------------------------------------------------------------

    def may_decide(self, action: ActionRecord, user: UserRecord, agent_owner_id: str | None) -> str | None:
        """None if `user` may decide `action`; otherwise why not (separation of duties, T20)."""
        if not user.enabled:
            return "this user is disabled"
        if agent_owner_id is not None and agent_owner_id == user.id:
            return "you own the agent that asks: someone else must decide"
        if action.user_id is not None and action.user_id == user.id:
            return "the agent asks on your behalf: someone else must decide"
        allowed = any(
            approver == f"user:{user.name}"
            or approver == f"role:{user.role}"
            or (user.role is Role.ADMIN and approver == f"role:{Role.APPROVER}")
            for approver in action.approvers
        )
        if not allowed:
            return f"the rules of this action name other approvers ({', '.join(action.approvers)})"
        return None

    async def decide(self, action_id: str, user: UserRecord, approve: bool, reason: str | None) -> ActionRecord:
        """Record a human's decision; `ActionNotFoundError`, `DecisionForbiddenError` (separation of duties) or
        `DecisionConflictError` (decided already)."""
        action = await self._reload(action_id)
        refusal = self.may_decide(action, user, await self.agent_owner(action))
        if refusal is not None:
            raise DecisionForbiddenError(refusal)
        reason = (reason or "").strip()[:2000] or None
        run_within = timedelta(seconds=self.settings.pending_ttl_seconds)
        if not await self._store.decide(action_id, approve, user.name, reason, run_within=run_within):
            current = await self._reload(action_id)
            raise DecisionConflictError(f"action {action_id} was already {current.status}: decisions are final")
        if self._on_decided is not None:
            self._on_decided((self._clock() - action.created_at).total_seconds())
        # A call held on another replica waits for exactly this: tell it before anything else.
        decided = ActionStatus.APPROVED if approve else ActionStatus.DENIED
        await self._bus.publish(Topic.APPROVALS, {"id": action_id, "status": decided})
        action = await self._reload(action_id)
        await self._record(
            action,
            AuditOutcome.APPROVAL_APPROVED if approve else AuditOutcome.APPROVAL_DENIED,
            f"by {user.name}" + (f": {reason}" if reason else ""),
        )
        await self._changed_locally(action)
        return action

    # --- waiting -------------------------------------------------------------------------------------------

    async def wait_for_change(self, action_id: str, at_most_seconds: float) -> None:
        """Return when this process or, through the bus, another changes the action, or after
        `at_most_seconds` or the re-check interval (`POLL_SECONDS` alone, `RECHECK_SECONDS` with a shared bus)."""
        event = self._changed.setdefault(action_id, anyio.Event())
        with anyio.move_on_after(max(0.0, min(at_most_seconds, self._recheck_seconds))):
            await event.wait()

    async def _next_state(self, action_id: str, waiting_while: ActionStatus, at_most_seconds: float) -> ActionRecord:
        """The action once it leaves `waiting_while`, or as it is after `at_most_seconds` (or a re-check interval).

        The wake-up is armed before the action is read, so a change announced between the read and the wait
        still wakes it (otherwise it would wait for the slow re-check)."""
        event = self._changed.setdefault(action_id, anyio.Event())
        action = await self._reload(action_id)
        if action.status is waiting_while:
            with anyio.move_on_after(max(0.0, min(at_most_seconds, self._recheck_seconds))):
                await event.wait()
            announced = self._announced.pop(action_id, None)
            if announced is ActionStatus.APPROVED and event.is_set():
                # The decision path, without a read: what an approval changes (status, decision) is not what the
                # run uses, and the conditional UPDATE that claims the action checks it is approved and unexpired.
                return replace(action, status=ActionStatus.APPROVED)
            # One read, without the expiry sweep (the next round runs it if nothing changed).
            action = await self._store.get(action_id) or await self._reload(action_id)
        return action

    async def expire_due(self) -> list[ActionId]:
        """Expire what is due, and audit and announce each expiry (once: only the call that expires an action
        sees it). Every read runs this first; returns the ids this call expired."""
        expired = await self._store.expire_due()
        for action_id in expired:
            action = await self._store.get(action_id)
            if action is not None:
                await self._record(action, AuditOutcome.APPROVAL_EXPIRED, action.reason or "expired")
                await self._changed_locally(action)
        return expired

    async def agent_owner(self, action: ActionRecord) -> UserId | None:
        """The user responsible for the agent that asks (who may not decide its actions)."""
        agent = await self._identities.agent_by_id(action.agent_id)
        return agent.owner_user_id if agent is not None else None

    async def recover(self) -> list[ActionId]:
        """At start-up: pending actions survive as they are; executions left by this replica's previous
        incarnation, by a replica whose lease expired, or by a hub without replica ids are failed, never rerun.
        A live replica's executions are not touched (issue 12 §4). Returns the ids failed."""
        return await self._interrupted(await self._store.interrupt_executions(self.replica, at_start=True))

    async def recover_orphans(self) -> list[ActionId]:
        """While running: executions of replicas whose lease expired (crashed, never restarted) are failed."""
        return await self._interrupted(await self._store.interrupt_executions(None, at_start=False))

    async def _interrupted(self, action_ids: list[ActionId]) -> list[ActionId]:
        for action_id in action_ids:
            logger.warning("approved call interrupted by a stopped replica; not run again", action=action_id)
            action = await self._store.get(action_id)
            if action is not None:
                await self._changed_locally(action)
        return action_ids

    # --- internals -----------------------------------------------------------------------------------------

    async def _execute(
        self, action: ActionRecord, principal: Principal, access: Access, session: str | None
    ) -> ActionRecord:
        if not await self._store.start_execution(action.id, replica=self.replica):
            return await self._reload(action.id)
        # Once started, the approved call runs to its end and its outcome is stored even if the request
        # that started it is cancelled or its client goes away: never left `executing`, and calling again
        # collects the outcome. The downstream call is bounded by the connector's call timeout.
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as announcing:
                # Announced while the call goes out: the downstream does not wait for the news to spread.
                announcing.start_soon(self._changed_locally, replace(action, status=ActionStatus.EXECUTING))
                try:
                    action = await self._run_approved(action, principal, access, session)
                except Exception as exc:
                    logger.exception("approved call failed in the hub", action=action.id)
                    await self._store.finish(
                        action.id, hub_error_result(f"the approved call failed in the hub: {exc}"), failed=True
                    )
                    action = await self._reload(action.id)
        return action

    async def _run_approved(
        self, action: ActionRecord, principal: Principal, access: Access, session: str | None
    ) -> ActionRecord:
        current = current_subject(self._catalog, action.method, action.public_name)
        refusal: str | None = None
        if current is None:
            refusal = f"{action.public_name} is no longer offered by its connector"
        elif current.sha256 != action.definition_sha256:
            refusal = f"{action.public_name} changed after the approval was asked for; ask again"
        elif not access.allows(action.public_name, scope_kind_of(action.method)):
            refusal = f"agent {principal.agent_name!r} may no longer use {action.public_name}"
        if refusal is not None:
            result = hub_error_result(f"the approved call was not run: {refusal}")
            await self._store.finish(action.id, result, failed=True)
        else:
            caller = Caller(client=principal.label, session=session)
            if action.method == TOOLS_CALL:
                await self.admitted(principal, action.public_name)
            try:
                result = await self._forward(action.method, action.public_name, action.arguments, caller)
            except DownstreamRejectedError as exc:
                result = hub_error_result(str(exc))
            await self._store.finish(action.id, result, failed=bool(result.get("isError")))
        action = await self._reload(action.id)
        await self._record(action, AuditOutcome.APPROVAL_EXECUTED, f"ran once: {action.status}")
        await self._changed_locally(action)
        return action

    def _running_result(self, action: ActionRecord) -> dict[str, Any]:
        return self._told(
            action,
            f"Action {action.id} was approved and {action.public_name} is running now. {_CALL_AGAIN[action.method]}",
        )

    def _pending_result(self, action: ActionRecord) -> dict[str, Any]:
        return self._told(
            action,
            f"This {'call' if action.method == TOOLS_CALL else 'request'} needs a human's approval. "
            f"Action {action.id} is pending (rules: {', '.join(action.rules)}); an approver decides at "
            f"{self.link(action.id)}. It expires at {action.expires_at.isoformat(timespec='seconds')} "
            f"(no decision = denied). {_CALL_AGAIN[action.method]}",
        )

    def _refusal_result(self, action: ActionRecord) -> dict[str, Any]:
        if action.status is ActionStatus.DENIED:
            why = f"denied by {action.decided_by}" + (f": {action.reason}" if action.reason else " (no reason given)")
        elif action.status is ActionStatus.EXPIRED and action.decided_by is not None:
            why = action.reason or "approved, but not run before the approval lapsed"
        elif action.status is ActionStatus.EXPIRED:
            why = "expired without a decision, which counts as denied"
        else:
            why = action.reason or action.status
        return self._told(action, f"Action {action.id} for {action.public_name} was {why}.")

    def _told(self, action: ActionRecord, text: str) -> dict[str, Any]:
        """A tool error the agent reads, with the action's summary in `_meta` for clients that act on it."""
        result = hub_error_result(text)
        result["_meta"] = {APPROVAL_META_KEY: self._summary(action)}
        return result

    def _summary(self, action: ActionRecord) -> dict[str, Any]:
        return {
            "id": action.id,
            "status": action.status,
            "link": self.link(action.id),
            "expiresAt": action.expires_at.isoformat(),
        }

    async def _reload(self, action_id: str) -> ActionRecord:
        action = await self.get(action_id)
        if action is None:
            raise ActionNotFoundError(f"no action {action_id!r}")
        return action

    async def _changed_locally(self, action: ActionRecord) -> None:
        self._wake(action.id, action.status)
        # First the other replicas (a held call there waits for exactly this), then this process's listeners.
        await self._bus.publish(Topic.APPROVALS, {"id": action.id, "status": action.status})
        for listener in self._listeners:
            try:
                await listener(action)
            except Exception:
                logger.exception("approval listener failed", action=action.id)

    async def _changed_elsewhere(self, message: Mapping[str, Any]) -> None:
        """Another replica (or the `mcp-hub` command) changed an action: whoever here waits on it looks again."""
        action_id, status = message.get("id"), message.get("status")
        if isinstance(action_id, str):
            self._wake(action_id, _status_of(status))

    def _wake(self, action_id: str, status: ActionStatus | None) -> None:
        event = self._changed.pop(action_id, None)
        if event is not None:
            if status is not None:
                self._announced[action_id] = status
            else:
                self._announced.pop(action_id, None)
            event.set()

    async def _record(self, action: ActionRecord, outcome: AuditOutcome, detail: str) -> None:
        await self._audit.record(
            AuditEvent(
                at=self._clock(),
                client=f"agent:{action.agent_name}",
                session=None,
                public_name=action.public_name,
                connector_id=action.connector_id,
                downstream_name=action.downstream_name,
                outcome=outcome,
                latency_ms=0.0,
                detail=f"action {action.id}: {detail}",
                method=action.method,
            )
        )


def _status_of(value: object) -> ActionStatus | None:
    """The status a bus message names, if it names one."""
    try:
        return ActionStatus(value)
    except ValueError:
        return None
