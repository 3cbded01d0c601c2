"""Holding sensitive calls for a human decision, and running approved ones exactly once (issue 4).

A call that a rule holds becomes a durable action bound to a digest of {agent, user, connector, tool,
downstream name, definition hash, arguments} (RFC 8785 canonical JSON, SHA-256; threat T19). The same
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import anyio
import rfc8785
import structlog

from mcp_hub.approvals.policy import ApprovalPolicy, Requirement
from mcp_hub.audit.writer import AuditWriter
from mcp_hub.authz.decisions import Principal, ToolAccess
from mcp_hub.catalog.catalog import Catalog, CatalogTool
from mcp_hub.config.settings import ApprovalsSection
from mcp_hub.db import AuditEvent
from mcp_hub.db.approval_store import ActionRecord, ApprovalStore
from mcp_hub.db.auth_store import AuthStore, UserRecord
from mcp_hub.errors import ApprovalError
from mcp_hub.gateway.errors import tool_error_result

logger = structlog.get_logger(__name__)

POLL_SECONDS: Final = 0.5
"""How often a held call looks for a decision made by another process (the CLI, another replica)."""
APPROVAL_META_KEY: Final = "io.github.mcp-hub/approval"

ProgressReporter = Callable[[float, float | None, str | None], Awaitable[None]]
Forward = Callable[[str, Mapping[str, Any] | None, str, str | None], Awaitable[dict[str, Any]]]
"""(public name, arguments, caller label, session) → the downstream's result (the forwarder)."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def action_digest(principal: Principal, tool: CatalogTool, arguments: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything an approval is bound to."""
    bound = {
        "agent": principal.agent_id,
        "user": principal.user_id,
        "connector": tool.connector_id,
        "tool": tool.public_name,
        "downstream_name": tool.downstream_name,
        "definition_sha256": tool.sha256,
        "arguments": dict(arguments),
    }
    return hashlib.sha256(rfc8785.dumps(bound)).hexdigest()


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
        auth_store: AuthStore,
        policy: ApprovalPolicy,
        catalog: Catalog,
        audit: AuditWriter,
        *,
        public_base_url: str,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self.policy = policy
        self._auth_store = auth_store
        self._catalog = catalog
        self._audit = audit
        self._public_base_url = public_base_url
        self._clock = clock
        self._changed: dict[str, anyio.Event] = {}
        self._listeners: list[Callable[[ActionRecord], Awaitable[None]]] = []
        self.forward: Forward | None = None
        store.on_expired = self._expired

    # --- what other parts hook into ------------------------------------------------------------------

    def on_change(self, listener: Callable[[ActionRecord], Awaitable[None]]) -> None:
        """Call `listener` after every transition made by this process (inbox pages, webhooks)."""
        self._listeners.append(listener)

    def link(self, action_id: str) -> str:
        """Where a human decides: the approval page (behind login; never pre-authenticated)."""
        return f"{self._public_base_url}/approvals/{action_id}"

    def requirement(
        self, principal: Principal | None, tool: CatalogTool, arguments: Mapping[str, Any]
    ) -> Requirement | None:
        name = principal.agent_name if principal is not None else ""
        return self.policy.requirement(name, tool, arguments)

    # --- the caller's side -----------------------------------------------------------------------------

    async def submit(
        self, principal: Principal, tool: CatalogTool, arguments: Mapping[str, Any], requirement: Requirement
    ) -> ActionRecord:
        """The caller's open action for exactly this call, or a new pending one (`ApprovalError` beyond the cap)."""
        digest = action_digest(principal, tool, arguments)
        existing = await self.store.open_action(
            principal.agent_id,
            principal.user_id,
            digest,
            collected_within=timedelta(seconds=self.settings.collect_again_seconds),
        )
        if existing is not None:
            return existing
        now = self._clock()
        action = ActionRecord(
            id="apv_" + secrets.token_urlsafe(24),
            agent_id=principal.agent_id,
            user_id=principal.user_id,
            agent_name=principal.agent_name,
            public_name=tool.public_name,
            connector_id=tool.connector_id,
            downstream_name=tool.downstream_name,
            definition_sha256=tool.sha256,
            description=str(tool.public_definition.get("description", "")),
            arguments=dict(arguments),
            digest=digest,
            rules=requirement.rules,
            approvers=requirement.approvers,
            status="pending",
            reason=None,
            decided_by=None,
            decided_at=None,
            created_at=now,
            expires_at=now + timedelta(seconds=self.settings.pending_ttl_seconds),
            result=None,
            completed_at=None,
            reported_at=None,
        )
        # Refused beyond the cap, unless another request made this very call at the same time: then that one.
        stored = await self.store.create(action, max_pending=self.settings.max_pending_per_agent)
        if stored.id != action.id:
            # The same call, made at the same time by another request, created it first: share that action
            # (announced and audited once), exactly as if this request had called again a moment later.
            return stored
        await self._record(
            action, "approval_requested", f"rules {', '.join(action.rules)}; expires {action.expires_at.isoformat()}"
        )
        await self._changed_locally(action)
        return action

    async def hold(
        self,
        principal: Principal,
        access: ToolAccess,
        tool: CatalogTool,
        arguments: Mapping[str, Any],
        requirement: Requirement,
        *,
        session: str | None,
        report_progress: ProgressReporter | None,
    ) -> dict[str, Any]:
        """The non-Tasks path: wait up to `hold_seconds` for a decision, then answer (issue 4 §3b, §3c)."""
        action = await self.submit(principal, tool, arguments, requirement)
        deadline = anyio.current_time() + self.settings.hold_seconds
        waited = 0.0
        while action.status == "pending" and anyio.current_time() < deadline:
            if report_progress is not None:
                await report_progress(
                    waited, self.settings.hold_seconds, f"waiting for a human to approve action {action.id}"
                )
            step = min(self.settings.progress_interval_seconds, deadline - anyio.current_time())
            await self.wait_for_change(action.id, step)
            waited = self.settings.hold_seconds - max(0.0, deadline - anyio.current_time())
            action = await self._reload(action.id)
        if action.status == "pending":
            return self._pending_result(action)
        return await self.settle(action, principal, access, session=session)

    async def settle(
        self, action: ActionRecord, principal: Principal, access: ToolAccess, *, session: str | None
    ) -> dict[str, Any]:
        """The outcome of a decided action for its caller: run it (once) if approved, then report it."""
        if action.status == "approved":
            action = await self._execute(action, principal, access, session)
        if action.status == "executing":
            # Another request of this caller runs it right now: wait as long as a held call would.
            deadline = anyio.current_time() + self.settings.hold_seconds
            while action.status == "executing" and anyio.current_time() < deadline:
                await self.wait_for_change(action.id, deadline - anyio.current_time())
                action = await self._reload(action.id)
        if action.status in ("approved", "executing"):
            return self._running_result(action)
        if action.status in ("done", "failed"):
            result = dict(action.result or tool_error_result("[mcp-hub] the approved call left no result"))
        elif action.status == "pending":
            return self._pending_result(action)
        else:
            result = self._refusal_result(action)
        if await self.store.mark_reported(action.id):
            await self._record(action, "approval_returned", f"outcome {action.status} returned to the agent")
        self._changed.pop(action.id, None)  # closed: nobody waits for it any more
        return result

    async def withdraw(self, action_id: str, principal: Principal) -> bool:
        withdrawn = await self.store.withdraw(action_id, principal.agent_id)
        if withdrawn:
            action = await self._reload(action_id)
            await self._record(action, "approval_withdrawn", "withdrawn by the agent")
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
            or (user.role == "admin" and approver == "role:approver")
            for approver in action.approvers
        )
        if not allowed:
            return f"the rules of this action name other approvers ({', '.join(action.approvers)})"
        return None

    async def decide(self, action_id: str, user: UserRecord, approve: bool, reason: str | None) -> ActionRecord:
        """Record a human's decision; `ApprovalError` with `not_found`, `forbidden` or `conflict` (→ 404/403/409)."""
        action = await self.store.get(action_id)
        if action is None:
            raise ApprovalError("not_found", f"no action {action_id!r}")
        agent = await self._auth_store.agent_by_id(action.agent_id)
        refusal = self.may_decide(action, user, agent.owner_user_id if agent is not None else None)
        if refusal is not None:
            raise ApprovalError("forbidden", refusal)
        reason = (reason or "").strip()[:2000] or None
        run_within = timedelta(seconds=self.settings.pending_ttl_seconds)
        if not await self.store.decide(action_id, approve, user.name, reason, run_within=run_within):
            current = await self._reload(action_id)
            raise ApprovalError("conflict", f"action {action_id} was already {current.status}: decisions are final")
        action = await self._reload(action_id)
        await self._record(
            action,
            "approval_approved" if approve else "approval_denied",
            f"by {user.name}" + (f": {reason}" if reason else ""),
        )
        await self._changed_locally(action)
        return action

    # --- waiting -------------------------------------------------------------------------------------------

    async def wait_for_change(self, action_id: str, at_most_seconds: float) -> None:
        """Return when this process changes the action, or after `min(at_most_seconds, POLL_SECONDS)`."""
        event = self._changed.setdefault(action_id, anyio.Event())
        with anyio.move_on_after(max(0.0, min(at_most_seconds, POLL_SECONDS))):
            await event.wait()

    async def _expired(self, action_ids: list[str]) -> None:
        """The store expired these while reading (every read does): audit and announce each once."""
        for action_id in action_ids:
            action = await self._reload(action_id)
            await self._record(action, "approval_expired", action.reason or "expired")
            await self._changed_locally(action)

    async def recover(self) -> None:
        """At start-up: pending actions survive as they are; interrupted executions are failed, never rerun."""
        for action_id in await self.store.interrupt_executions():
            logger.warning("approved call interrupted by a restart; not run again", action=action_id)

    # --- internals -----------------------------------------------------------------------------------------

    async def _execute(
        self, action: ActionRecord, principal: Principal, access: ToolAccess, session: str | None
    ) -> ActionRecord:
        if not await self.store.start_execution(action.id):
            return await self._reload(action.id)
        await self._changed_locally(replace(action, status="executing"))
        # Once started, the approved call runs to its end and its outcome is stored even if the request
        # that started it is cancelled or its client goes away: never left `executing`, and calling again
        # collects the outcome. The downstream call is bounded by the connector's call timeout.
        with anyio.CancelScope(shield=True):
            try:
                action = await self._run_approved(action, principal, access, session)
            except Exception as exc:
                logger.exception("approved call failed in the hub", action=action.id)
                await self.store.finish(
                    action.id, tool_error_result(f"[mcp-hub] the approved call failed in the hub: {exc}"), failed=True
                )
                action = await self._reload(action.id)
        return action

    async def _run_approved(
        self, action: ActionRecord, principal: Principal, access: ToolAccess, session: str | None
    ) -> ActionRecord:
        current = self._catalog.tools_by_name().get(action.public_name)
        refusal: str | None = None
        if current is None:
            refusal = f"{action.public_name} is no longer offered by its connector"
        elif current.sha256 != action.definition_sha256:
            refusal = f"{action.public_name} changed after the approval was asked for; ask again"
        elif not access.allows(action.public_name):
            refusal = f"agent {principal.agent_name!r} may no longer call {action.public_name}"
        if refusal is not None or self.forward is None:
            result = tool_error_result(f"[mcp-hub] the approved call was not run: {refusal or 'no forwarder'}")
            await self.store.finish(action.id, result, failed=True)
        else:
            result = await self.forward(action.public_name, action.arguments, principal.label, session)
            await self.store.finish(action.id, result, failed=bool(result.get("isError")))
        action = await self._reload(action.id)
        await self._record(action, "approval_executed", f"ran once: {action.status}")
        await self._changed_locally(action)
        return action

    def _running_result(self, action: ActionRecord) -> dict[str, Any]:
        text = (
            f"[mcp-hub] Action {action.id} was approved and {action.public_name} is running now. "
            "Call this tool again with exactly the same arguments to collect the outcome."
        )
        result = tool_error_result(text)
        result["_meta"] = {APPROVAL_META_KEY: self._summary(action)}
        return result

    def _pending_result(self, action: ActionRecord) -> dict[str, Any]:
        text = (
            f"[mcp-hub] This call needs a human's approval. Action {action.id} is pending "
            f"(rules: {', '.join(action.rules)}); an approver decides at {self.link(action.id)}. "
            f"It expires at {action.expires_at.isoformat(timespec='seconds')} (no decision = denied). "
            "Call this tool again with exactly the same arguments to collect the outcome."
        )
        result = tool_error_result(text)
        result["_meta"] = {APPROVAL_META_KEY: self._summary(action)}
        return result

    def _refusal_result(self, action: ActionRecord) -> dict[str, Any]:
        if action.status == "denied":
            why = f"denied by {action.decided_by}" + (f": {action.reason}" if action.reason else " (no reason given)")
        elif action.status == "expired" and action.decided_by is not None:
            why = action.reason or "approved, but not run before the approval lapsed"
        elif action.status == "expired":
            why = "expired without a decision, which counts as denied"
        else:
            why = action.reason or action.status
        result = tool_error_result(f"[mcp-hub] Action {action.id} for {action.public_name} was {why}.")
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
        action = await self.store.get(action_id)
        if action is None:
            raise ApprovalError("not_found", f"no action {action_id!r}")
        return action

    async def _changed_locally(self, action: ActionRecord) -> None:
        event = self._changed.pop(action.id, None)
        if event is not None:
            event.set()
        for listener in self._listeners:
            try:
                await listener(action)
            except Exception:
                logger.exception("approval listener failed", action=action.id)

    async def _record(self, action: ActionRecord, outcome: str, detail: str) -> None:
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
            )
        )
