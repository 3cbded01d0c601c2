"""`mcp-hub approvals list|show|approve|deny|rules`: deciding held calls from the hub's machine (issue 4 §5).

The command reads and writes the hub's database directly (`runtime.admin_tools`), so it works whether or not
the hub runs; a hub
that holds the call sees the decision at its next poll. `--as USER` names the human who decides: the
separation-of-duties checks and the rule's approvers apply exactly as on the web page (threat T20). `show` says
what held the call, as recorded then, and how the rules of this `config.toml` and connectors directory differ now
(`mcp_hub.approvals.reasons`). `rules` prints the rules of this `config.toml` as the hub applies them, sequences
(`after`, `within_seconds`: threat T18) included, and warns of a tool glob that matches no tool the hub last saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from mcp_hub.approvals.presentation import action_json, duration, why_json
from mcp_hub.approvals.reasons import HoldReasons
from mcp_hub.approvals.states import Told, run_of, tell, verdict_of
from mcp_hub.authz.scopes import matches
from mcp_hub.cli.terminal import shown
from mcp_hub.config.settings import ApprovalCondition, ApprovalRule
from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import ALL_STATUSES, ActionStatus, utc_now
from mcp_hub.errors import ApprovalError
from mcp_hub.runtime import AdminTools

EXIT_OK, EXIT_REFUSED = 0, 1


def add_approvals_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `approvals` on the top-level `commands` sub-parser action."""
    approvals = commands.add_parser("approvals", parents=[common], help="held calls waiting for a human")
    verbs = approvals.add_subparsers(dest="approvals_command", required=True)
    listing = verbs.add_parser("list", parents=[common], help="pending actions (--all: decided ones too)")
    listing.add_argument("--all", action="store_true", help="every action, not only pending ones")
    listing.add_argument("--json", action="store_true")
    show = verbs.add_parser("show", parents=[common], help="one action with its full arguments")
    show.add_argument("id")
    show.add_argument("--json", action="store_true")
    rules = verbs.add_parser("rules", parents=[common], help="the approval rules of config.toml, read-only")
    rules.add_argument("--json", action="store_true")
    for verb in ("approve", "deny"):
        decide = verbs.add_parser(verb, parents=[common], help=f"{verb} a pending action")
        decide.add_argument("id")
        decide.add_argument("--as", dest="as_user", required=True, metavar="USER", help="the user who decides")
        decide.add_argument("--reason", help="shown to the agent")


def _fail(message: str) -> int:
    print(f"mcp-hub: {message}", file=sys.stderr)
    return EXIT_REFUSED


def _line(action: ActionRecord, now: datetime) -> str:
    if action.status is ActionStatus.PENDING:
        left = (action.expires_at - now).total_seconds()
        state = f"pending, {duration(left)} left" if left > 0 else "expired"
    else:
        # The decision and, apart, what became of the call: "approved by alice, ran", never "done by alice".
        state = verdict_of(action) + (f" by {action.decided_by}" if action.decided_by else "")
        state += f", {run_of(action)[0]}"
    age = duration((now - action.created_at).total_seconds())
    return f"{action.id}  {action.public_name:<28} {action.agent_name:<20} {age + ' ago':<16} {state}"


async def run_approvals(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    verb: str = args.approvals_command
    service = tools.approvals
    now = utc_now()
    if verb == "rules":
        rules = tools.settings.approvals.rules
        known = [row.public_name for row in await tools.stores.catalog.catalog()]
        for warning in _unknown_globs(rules, known):
            _warn(warning)
        return _print_rules(rules, as_json=args.json)
    if verb == "list":
        actions = await service.list_actions(ALL_STATUSES if args.all else (ActionStatus.PENDING,), limit=500)
        if args.json:
            rows = [action_json(action, full=False, link=service.link(action.id)) for action in actions]
            print(json.dumps(rows, indent=2))
        elif not actions:
            print("no actions" if args.all else "no pending actions")
        else:
            for action in actions:
                _say(_line(action, now))
        return EXIT_OK
    action = await service.get(args.id)
    if action is None:
        return _fail(f"no action {args.id!r}")
    if verb == "show":
        why = service.briefing(action).why
        if args.json:
            shown = action_json(action, full=True, link=service.link(action.id)) | why_json(why)
            print(json.dumps(shown, indent=2))
        else:
            told = tell(action, now, service.settings.pending_ttl_seconds)
            _print_action(action, service.link(action.id), told, why)
        return EXIT_OK
    user = await tools.stores.identities.user_by_name(args.as_user)
    if user is None:
        return _fail(f"no user {args.as_user!r} (mcp-hub users list)")
    try:
        decided = await service.decide(action.id, user, verb == "approve", args.reason)
    except ApprovalError as exc:
        return _fail(str(exc))
    print(f"action {decided.id} {decided.status} by {user.name}")
    return EXIT_OK


def _print_rules(rules: Sequence[ApprovalRule], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps([rule.model_dump(mode="json") for rule in rules], indent=2))
        return EXIT_OK
    if not rules:
        print("no approval rules: no call waits for a human (connectors' sensitive_tools aside)")
    for rule in rules:
        _say(rule.name)
        for label, values in (
            ("tools", rule.tools),
            ("prompts", rule.prompts),
            ("resources", rule.resources),
            ("connectors", rule.connectors),
            ("agents", rule.agents),
        ):
            if values:
                _say(f"  {label + ':':<12}{', '.join(values)}")
        if rule.after:
            _say(
                f"  {'after:':<12}{', '.join(rule.after)} (each called by the same agent and user within "
                f"{rule.within_seconds} s)"
            )
        when = " and ".join(_condition_text(condition) for condition in rule.when)
        _say(f"  {'when:':<12}{when or 'every matching call'}")
        _say(f"  {'approvers:':<12}{', '.join(rule.approvers)}")
    return EXIT_OK


def _unknown_globs(rules: Sequence[ApprovalRule], known: Sequence[str]) -> list[str]:
    """Each tool glob of a rule (`tools`, `after`) that matches no tool the hub last saw: likely a misspelling, which
    would leave the calls it meant unheld (as `grants` warns of its patterns)."""
    return [
        f"rule `{rule.name}`: {field} glob `{glob}` matches none of the {len(known)} tools the hub last saw "
        "(public names are <connector>__<tool>: see `mcp-hub catalog`)"
        for rule in rules
        for field, globs in (("tools", rule.tools), ("after", rule.after))
        for glob in globs
        if not any(matches(f"tool:{glob}", "tool", name) for name in known)
    ]


def _condition_text(condition: ApprovalCondition) -> str:
    value = "" if condition.op == "exists" else f" {json.dumps(condition.value)}"
    return f"{condition.field} {condition.op}{value}"


def _print_action(action: ActionRecord, link: str, told: Told, why: HoldReasons) -> None:
    _say(f"id:          {action.id}")
    _say(f"status:      {action.status}")
    _say(f"agent:       {action.agent_name}")
    where = f"(connector {action.connector_id}: {action.downstream_name})"
    _say(f"{action.subject_label + ':':<13}{action.public_name} {where}")
    _say(f"description: {action.description or '-'}")
    _say(f"rules:       {', '.join(action.rules)}")
    _say(f"approvers:   {', '.join(action.approvers)}")
    _print_why(action, why)
    _say(f"created:     {action.created_at.isoformat(timespec='seconds')}")
    _say(f"expires:     {action.expires_at.isoformat(timespec='seconds')}")
    if told.expiry:
        _say(f"             {told.expiry}")
    _say(f"decision:    {told.decision}")
    if told.verdict in ("approved", "denied"):
        _say(f"reason:      {action.reason or '-'}")
    _say(f"run:         {told.run}")
    _say(f"link:        {link}")
    _say("arguments:")
    _say(json.dumps(action.arguments, indent=2, ensure_ascii=False), keep_layout=True)


def _print_why(action: ActionRecord, why: HoldReasons) -> None:
    """What held the call, as recorded then, and how the rules as they read now differ (as the page says it)."""
    indent = " " * 13
    if why.held:
        _say(f"held by:     {why.note}")
        for match in why.held:
            _say(f"{indent}{match.rule}: {'; '.join(match.because)}")
    else:
        _say(f"held by:     {', '.join(action.rules)}. {why.note}")
    if why.summary is not None:
        _say(f"rules now:   {why.summary}")
        for change in why.changes:
            _say(f"{indent}- {change}")


def _warn(warning: str) -> None:
    """A warning on stderr, escaped like every line that holds text a rule's author wrote (threat T31)."""
    print(shown(f"mcp-hub: warning: {warning}"), file=sys.stderr)


def _say(line: str, *, keep_layout: bool = False) -> None:
    """Print a line that may hold text an agent, a downstream or a rule's author wrote (threat T31)."""
    print(shown(line, keep_layout=keep_layout))
