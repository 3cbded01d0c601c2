"""What an action's pages say about it: the decision, the run, the expiry, each on its own (issue 13 §3).

An action's status mixes two things an approver must not confuse: who decided what (approved, denied, nobody in
time, the agent withdrew) and what became of the call (not run, about to run, running, ran, failed). The pages
state them apart: "Approved by alice at ..." and, separately, "Ran; finished at ... The result is below."
The expiry is explained, since it means different things: while pending, the time by which a decision must come
(none = denied); once approved, the time by which the call must run, restarted at the decision (an approval is
good for `pending_ttl_seconds` from then), which is why it moves when someone approves.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from mcp_hub.approvals.presentation import duration, iso_seconds
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ActionStatus

_RUN: Final = {
    # status → (run word for lists and badges, the badge's class)
    ActionStatus.PENDING: ("not run", "unknown"),
    ActionStatus.APPROVED: ("about to run", "info"),
    ActionStatus.EXECUTING: ("running", "executing"),
    ActionStatus.DONE: ("ran", "done"),
    ActionStatus.FAILED: ("failed", "failed"),
    ActionStatus.DENIED: ("not run", "unknown"),
    ActionStatus.EXPIRED: ("not run", "unknown"),
    ActionStatus.WITHDRAWN: ("not run", "unknown"),
}


@dataclass(frozen=True, slots=True)
class Told:
    """The sentences of one action's page: `decision` and `run` with their badges, the `expiry` explained."""

    verdict: str
    """`pending`, `approved`, `denied`, `expired` (no decision in time) or `withdrawn`: also the badge's class."""
    decision: str
    run_word: str
    run_badge: str
    run: str
    expiry: str | None
    """None when no time applies any more (denied, withdrawn, or the call ran)."""


def verdict_of(action: ActionRecord) -> str:
    """Who decided what, in a word: an approval that lapsed before the call ran is still `approved`."""
    status = action.status
    if status is ActionStatus.EXPIRED:
        return "approved" if action.decided_by is not None else "expired"
    if status.is_running or status in (ActionStatus.DONE, ActionStatus.FAILED):
        return "approved"
    return str(status)


def run_of(action: ActionRecord) -> tuple[str, str]:
    """What became of the call, in a word, and its badge's class."""
    if action.status is ActionStatus.EXPIRED and action.decided_by is not None:
        return "lapsed", "expired"
    return _RUN[action.status]


def tell(action: ActionRecord, now: datetime, pending_ttl_seconds: float) -> Told:
    verdict = verdict_of(action)
    run_word, run_badge = run_of(action)
    return Told(
        verdict=verdict,
        decision=_decision(action, verdict),
        run_word=run_word,
        run_badge=run_badge,
        run=_run(action, now),
        expiry=_expiry(action, pending_ttl_seconds),
    )


def _at(moment: datetime | None) -> str:
    return iso_seconds(moment) if moment is not None else "an unrecorded time"


def _decision(action: ActionRecord, verdict: str) -> str:
    by = action.decided_by or "the hub"
    if verdict == "pending":
        return "No decision yet."
    if verdict == "approved":
        return f"Approved by {by} at {_at(action.decided_at)}."
    if verdict == "denied":
        return f"Denied by {by} at {_at(action.decided_at)}."
    if verdict == "withdrawn":
        return f"Withdrawn by the agent at {_at(action.decided_at)}, before anyone decided."
    return f"Nobody decided before {_at(action.expires_at)}: it expired, which counts as denied."


def _run(action: ActionRecord, now: datetime) -> str:
    status = action.status
    if status is ActionStatus.PENDING:
        return "Not run: it runs only once approved."
    if status is ActionStatus.APPROVED:
        left = duration((action.expires_at - now).total_seconds())
        return (
            "Not run yet: the agent's waiting call runs it now, or its next call with the same arguments does "
            f"(within {left})."
        )
    if status is ActionStatus.EXECUTING:
        return "Running now. The result shows here when it is done."
    if status is ActionStatus.DONE:
        return f"Ran; finished at {_at(action.completed_at)}. The result is below."
    if status is ActionStatus.FAILED:
        return f"Failed at {_at(action.completed_at)}. What the agent was told is below."
    if status is ActionStatus.EXPIRED and action.decided_by is not None:
        return f"Not run: the agent did not call again before the approval lapsed at {_at(action.expires_at)}."
    return "Not run."


def _expiry(action: ActionRecord, pending_ttl_seconds: float) -> str | None:
    status, ttl = action.status, duration(pending_ttl_seconds)
    if status is ActionStatus.PENDING:
        return (
            f"A decision is needed by {iso_seconds(action.expires_at)}; without one the call is denied. "
            f"Every request waits {ttl} for a decision."
        )
    if status is ActionStatus.APPROVED:
        return (
            f"The approval is good until {iso_seconds(action.expires_at)}. Approving restarted the clock: an "
            f"approval lasts {ttl} from the decision, so this is later than the deadline shown while it waited. "
            "If the call has not run by then, the approval lapses and the agent must ask again."
        )
    if status is ActionStatus.EXPIRED:
        return f"Expired at {iso_seconds(action.expires_at)}."
    return None
