"""How an action is shown outside the hub: its link, its JSON form (the approvals API, `mcp-hub approvals --json`),
and durations for people. Shared by the web pages and the CLI, so both say the same thing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from mcp_hub.approvals.reasons import HoldReasons, matches_json
from mcp_hub.db.approvals import ActionRecord

APPROVAL_META_KEY: Final = "io.github.mcp-hub/approval"
"""The `_meta` key of a held call's result: the action's id, status, link and expiry."""
INBOX_PATH: Final = "/approvals"


def approval_link(public_base_url: str, action_id: str) -> str:
    """Where a human decides: the approval page (behind login; never pre-authenticated, T22)."""
    return f"{public_base_url}{INBOX_PATH}/{action_id}"


def iso_seconds(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    """`2 h 5 min`, `4 min 10 s`, `12 s`: how long, for people."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def action_json(action: ActionRecord, *, full: bool, link: str) -> dict[str, Any]:
    """An action as the JSON API and `mcp-hub approvals --json` show it."""
    body: dict[str, Any] = {
        "id": action.id,
        "status": action.status,
        "agent": action.agent_name,
        "method": action.method,
        "tool": action.public_name,
        "connector": action.connector_id,
        "rules": list(action.rules),
        "approvers": list(action.approvers),
        "created_at": iso_seconds(action.created_at),
        "expires_at": iso_seconds(action.expires_at),
        "decided_by": action.decided_by,
        "decided_at": iso_seconds(action.decided_at) if action.decided_at else None,
        "reason": action.reason,
        "link": link,
    }
    if full:
        body["description"] = action.description
        body["downstream_name"] = action.downstream_name
        body["arguments"] = action.arguments
    return body


def why_json(why: HoldReasons) -> dict[str, Any]:
    """Why an action was held, as the JSON API and `mcp-hub approvals show --json` give it: `why` (each rule and
    what matched), `why_recorded` (False: an action from before the record, explained by the rules as they read
    now), `rules_changed` (None, or the summary, each rule's part now, and the rules as they read now)."""
    changed = None
    if why.changed:
        changed = {"summary": why.summary, "changes": list(why.changes), "now": matches_json(why.now)}
    return {"why": matches_json(why.held), "why_recorded": why.recorded, "rules_changed": changed}
