"""What an approver's page says besides the request: the tool's hints, risk cues, the decision, the run and the
expiry stated apart, and what held the call against the rules as they read now (issue 13 §3; threat T31). Pure
functions, no hub (the same end to end: tests/approvals/test_hold_reasons.py).

The hints and their defaults are MCP 2025-11-25's `ToolAnnotations` (mandated); the wording is our choice.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mcp_hub.approvals.briefing import Definition, Hint, brief, hints_of
from mcp_hub.approvals.policy import RuleMatch
from mcp_hub.approvals.reasons import (
    MAX_PART_CHARS,
    MAX_PARTS,
    MAX_RULES,
    bounded,
    hold_reasons,
    read_record,
    record_of,
)
from mcp_hub.approvals.states import run_of, tell, verdict_of
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ActionId, ActionStatus, AgentId, ConnectorId

ASKED = datetime(2026, 12, 5, 22, 0, tzinfo=UTC)
PENDING = ActionRecord(
    id=ActionId("apv_x"),
    agent_id=AgentId("agt_x"),
    user_id=None,
    agent_name="deployer",
    method="tools/call",
    public_name="git__push",
    connector_id=ConnectorId("git"),
    downstream_name="push",
    definition_sha256="0" * 64,
    description="",
    arguments={"branch": "main"},
    digest="d",
    rules=("pushes",),
    approvers=("role:approver",),
    status=ActionStatus.PENDING,
    reason=None,
    decided_by=None,
    decided_at=None,
    created_at=ASKED,
    expires_at=ASKED + timedelta(minutes=15),
    result=None,
    completed_at=None,
    reported_at=None,
    hold_reasons=None,
)
DECIDED = ASKED + timedelta(minutes=5)


def test_hints_are_the_servers_claims_or_mcps_defaults() -> None:
    """MCP: readOnlyHint false, destructiveHint true, idempotentHint false, openWorldHint true when unstated; a
    value that is not a boolean is no claim."""
    hints = hints_of({"readOnlyHint": False, "destructiveHint": False, "openWorldHint": "no"})

    assert [(hint.label, hint.value, hint.stated) for hint in hints] == [
        ("read-only", False, True),
        ("destructive", False, True),
        ("idempotent", False, False),
        ("open world", True, False),
    ]
    assert all(isinstance(hint, Hint) for hint in hints)


def test_risk_cues_name_what_deserves_a_second_look() -> None:
    """Our choice: destructive (unless read-only) and open-world tools, a sensitive connector, hidden characters,
    and a definition that changed since the request."""
    matches = (RuleMatch("sensitive:git", ("connector `git` lists `push` in its sensitive_tools, ...",)),)
    tool = {"name": "push", "annotations": {"title": "Push", "destructiveHint": True, "openWorldHint": False}}

    risky = brief(hold_reasons(matches, matches), {"message": "fix \u202e"}, tool, Definition.CHANGED)
    read_only = brief(
        hold_reasons((), ()),
        {},
        {"name": "log", "annotations": {"readOnlyHint": True, "openWorldHint": False}},
        Definition.SAME,
    )
    prompt = brief(hold_reasons((), ()), {}, None, Definition.GONE)
    no_longer_sensitive = brief(hold_reasons(matches, ()), {}, tool, Definition.SAME)

    assert risky.title == "Push"
    assert risky.cues == (
        "destructive (may delete or overwrite data): the server says so",
        "sensitive connector: `git` lists this tool in its sensitive_tools",
        "hidden or bidirectional characters in the arguments (shown written out below)",
        "the tool's definition changed after this was asked: an approval will not run it",
    )
    assert read_only.cues == ()
    assert not any("sensitive" in cue for cue in no_longer_sensitive.cues)  # the cues speak of the present
    assert (prompt.hints, prompt.cues) == ((), ("its connector no longer offers it: an approval will not run it",))


@pytest.mark.parametrize(
    ("action", "verdict", "run", "decision", "told_run"),
    [
        pytest.param(
            PENDING, "pending", "not run", "No decision yet.", "Not run: it runs only once approved.", id="pending"
        ),
        pytest.param(
            replace(PENDING, status=ActionStatus.DONE, decided_by="alice", decided_at=DECIDED, completed_at=DECIDED),
            "approved",
            "ran",
            "Approved by alice at 2026-12-05T22:05:00+00:00.",
            "Ran; finished at 2026-12-05T22:05:00+00:00. The result is below.",
            id="done",
        ),
        pytest.param(
            replace(PENDING, status=ActionStatus.EXECUTING, decided_by="alice", decided_at=DECIDED),
            "approved",
            "running",
            "Approved by alice at 2026-12-05T22:05:00+00:00.",
            "Running now. The result shows here when it is done.",
            id="executing",
        ),
        pytest.param(
            replace(PENDING, status=ActionStatus.DENIED, decided_by="bob", decided_at=DECIDED, reason="no"),
            "denied",
            "not run",
            "Denied by bob at 2026-12-05T22:05:00+00:00.",
            "Not run.",
            id="denied",
        ),
        pytest.param(
            replace(PENDING, status=ActionStatus.EXPIRED),
            "expired",
            "not run",
            "Nobody decided before 2026-12-05T22:15:00+00:00: it expired, which counts as denied.",
            "Not run.",
            id="expired",
        ),
        pytest.param(
            replace(PENDING, status=ActionStatus.EXPIRED, decided_by="alice", decided_at=DECIDED),
            "approved",
            "lapsed",
            "Approved by alice at 2026-12-05T22:05:00+00:00.",
            "Not run: the agent did not call again before the approval lapsed at 2026-12-05T22:15:00+00:00.",
            id="lapsed",
        ),
    ],
)
def test_the_decision_and_the_run_are_told_apart(
    action: ActionRecord, verdict: str, run: str, decision: str, told_run: str
) -> None:
    """Issue 13 §3: a run state ("done", "executing") is never shown as the decision."""
    told = tell(action, DECIDED, 900)

    assert (verdict_of(action), run_of(action)[0]) == (verdict, run)
    assert (told.verdict, told.decision, told.run) == (verdict, decision, told_run)


def test_the_expiry_says_what_it_means_and_why_it_moved() -> None:
    """Issue 13 §3, our wording: pending, the decision deadline; approved, the run deadline, restarted at approval."""
    approved = replace(
        PENDING,
        status=ActionStatus.APPROVED,
        decided_by="alice",
        decided_at=DECIDED,
        expires_at=DECIDED + timedelta(minutes=15),
    )

    pending = tell(PENDING, ASKED, 900).expiry
    moved = tell(approved, DECIDED, 900).expiry

    assert pending == (
        "A decision is needed by 2026-12-05T22:15:00+00:00; without one the call is denied. "
        "Every request waits 15 min 0 s for a decision."
    )
    assert moved is not None
    assert moved.startswith("The approval is good until 2026-12-05T22:20:00+00:00. Approving restarted the clock")
    assert tell(replace(approved, status=ActionStatus.DONE), DECIDED, 900).expiry is None


DEPLOYS = RuleMatch("deploys", ("tool `git__push` matches `git__*`", 'argument `branch` = "main"'))
PUSHES = RuleMatch("pushes", ("tool `git__push` matches `git__push`",))
SENSITIVE = RuleMatch("sensitive:git", ("connector `git` lists `push` in its sensitive_tools, which matches ...",))


@pytest.mark.parametrize(
    ("record", "now", "summary", "changes"),
    [
        pytest.param((DEPLOYS, PUSHES), (PUSHES, DEPLOYS), None, (), id="the same rules, listed in another order"),
        pytest.param(
            (DEPLOYS,),
            (PUSHES,),
            "The rules have changed since this call was held. As they read now:",
            ("rule `deploys` no longer holds it", "rule `pushes` holds it now: tool `git__push` matches `git__push`"),
            id="another rule",
        ),
        pytest.param(
            (DEPLOYS, SENSITIVE),
            (RuleMatch("deploys", ("tool `git__push` matches `git__*`", 'argument `branch` = "main" matches /m/')),),
            "The rules have changed since this call was held. As they read now:",
            (
                "rule `deploys` holds it for other reasons: tool `git__push` matches `git__*`; argument `branch` = "
                '"main" matches /m/',
                "rule `sensitive:git` no longer holds it",
            ),
            id="the same rule, for other reasons",
        ),
        pytest.param(
            (DEPLOYS,),
            (DEPLOYS, PUSHES),
            "The rules have changed since this call was held. As they read now:",
            (
                "rule `deploys` still holds it, for the same reasons",
                "rule `pushes` holds it now: tool `git__push` matches `git__push`",
            ),
            id="one more rule",
        ),
        pytest.param(
            (SENSITIVE,),
            (),
            "The rules have changed since this call was held: as they read now, none would hold it.",
            (),
            id="no rule",
        ),
    ],
)
def test_what_held_a_call_is_compared_with_the_rules_as_they_read_now(
    record: tuple[RuleMatch, ...], now: tuple[RuleMatch, ...], summary: str | None, changes: tuple[str, ...]
) -> None:
    """Issue 13 §3, threat T31 (our wording): the record stays what held the call; how the rules differ now is
    said beside it, rule by rule, or that none would hold it."""
    why = hold_reasons(record, now)

    assert (why.held, why.recorded, why.now) == (record, True, now)
    assert why.note == "Recorded when the call was held."
    assert (why.changed, why.summary, why.changes) == (summary is not None, summary, changes)


def test_an_action_without_a_record_is_explained_by_the_rules_as_they_read_now_and_says_so() -> None:
    """Our choice: an action stored before migration 0013 falls back to today's explanation, labelled as such."""
    explained = hold_reasons(None, (PUSHES,))
    unheld = hold_reasons(None, ())

    assert (explained.held, explained.recorded, explained.changed, explained.summary) == ((PUSHES,), False, False, None)
    assert explained.note.startswith("As the rules read now: this action was held before the hub recorded why")
    assert unheld.note == (
        "This action was held before the hub recorded why, and as the rules read now none would hold it."
    )


def test_the_record_is_bounded_and_reads_back_as_it_was_stored() -> None:
    """Our choice: at most `MAX_RULES` rules of `MAX_PARTS` parts of `MAX_PART_CHARS` characters, cuts marked; a
    value that is not a record reads as none (the fallback), never as an error."""
    huge = tuple(
        RuleMatch(f"rule-{number}", tuple(f"argument `a{part}` = {'x' * 1000}" for part in range(MAX_PARTS + 5)))
        for number in range(MAX_RULES + 4)
    )

    stored = record_of(huge)
    kept = bounded(huge)

    assert len(stored) == MAX_RULES
    assert all(len(entry["because"]) == MAX_PARTS for entry in stored)
    assert stored[0]["because"][-1] == "and 6 more parts of the rule matched"
    first = stored[0]["because"][0]
    assert (len(first), first[-1]) == (MAX_PART_CHARS, "…")
    assert len(json.dumps(stored, ensure_ascii=False)) < 40_000
    assert read_record(json.loads(json.dumps(stored))) == kept
    assert read_record(record_of((DEPLOYS, SENSITIVE))) == (DEPLOYS, SENSITIVE)
    assert [read_record(value) for value in (None, "deploys", [{"rule": 1}], [["deploys"]])] == [None] * 4
