"""`mcp-hub agents|grants|users|token|keys`: the admin commands of issue 3, over `runtime.admin_tools()`.

Every change (and every token minted) goes through the admin services the API and console use, so it is an audit
row naming `cli:<login>` (`mcp_hub.admin.changes`), refused ones included."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from mcp_hub.authz import scopes
from mcp_hub.authz.urls import TOKEN_PATH
from mcp_hub.cli.approvals import add_approvals_command, run_approvals
from mcp_hub.cli.limits import add_limits_command, run_limits
from mcp_hub.cli.terminal import shown
from mcp_hub.config.settings import HubSettings
from mcp_hub.domain import Role
from mcp_hub.errors import InvalidInputError
from mcp_hub.runtime import AdminTools, admin_tools

ADMIN_COMMANDS = frozenset({"agents", "grants", "users", "token", "keys", "approvals", "limits"})


def add_admin_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register the admin subcommands on the top-level `commands` sub-parser action."""
    agents = commands.add_parser("agents", parents=[common], help="OAuth clients (agents)")
    agent_commands = agents.add_subparsers(dest="agents_command", required=True)
    create = agent_commands.add_parser("create", parents=[common], help="create an agent; prints its secret once")
    create.add_argument("name")
    create.add_argument("--grant", action="append", default=[], metavar="PATTERN", help="e.g. 'tool:time__*'")
    create.add_argument("--public", action="store_true", help="a public client (authorization code + PKCE)")
    create.add_argument("--redirect-uri", action="append", default=[], help="for --public clients")
    create.add_argument("--owner", metavar="USER", help="the user responsible (who may not approve its actions)")
    create.add_argument("--json", action="store_true")
    listing = agent_commands.add_parser("list", parents=[common], help="every agent")
    listing.add_argument("--json", action="store_true")
    for verb in ("disable", "enable", "rotate-secret"):
        agent_commands.add_parser(verb, parents=[common]).add_argument("name")

    grants = commands.add_parser("grants", parents=[common], help="scope grants of agents (or user:NAME)")
    grant_commands = grants.add_subparsers(dest="grants_command", required=True)
    for verb in ("add", "remove"):
        grant = grant_commands.add_parser(verb, parents=[common])
        grant.add_argument("subject", help="an agent name, or user:NAME")
        grant.add_argument("pattern", help="tool:<glob>, e.g. tool:time__*")
        if verb == "add":
            grant.add_argument(
                "--strict", action="store_true", help="refuse (exit 1) a tool pattern that matches no known tool"
            )
    grant_list = grant_commands.add_parser("list", parents=[common])
    grant_list.add_argument("subject")
    grant_list.add_argument("--effective", action="store_true", help="the tools the subject can call now")

    users = commands.add_parser("users", parents=[common], help="humans who log in to the web pages")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    user = user_commands.add_parser("create", parents=[common], help="create a user (password asked for)")
    user.add_argument("name")
    user.add_argument("--role", choices=[role.value for role in Role], required=True)
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_commands.add_parser("list", parents=[common], help="every user, with role and state").add_argument(
        "--json", action="store_true"
    )
    for verb, what in (
        ("disable", "refuse sign-in, end web sessions, refuse tokens acting for the user"),
        ("enable", "allow the user again"),
    ):
        user_commands.add_parser(verb, parents=[common], help=what).add_argument("name")
    password = user_commands.add_parser(
        "set-password", parents=[common], help="replace a user's password (asked for); ends their web sessions"
    )
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    token = commands.add_parser("token", parents=[common], help="print an access token for an agent")
    token.add_argument("name")
    token.add_argument("--scope", help="narrow the token (space-separated patterns)")
    token.add_argument("--json", action="store_true", help="the whole token response")
    token.add_argument(
        "--resource",
        metavar="URL",
        help="a virtual server's URL, or <base>/admin/api: a token valid there alone",
    )

    keys = commands.add_parser("keys", parents=[common], help="token signing keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_commands.add_parser("rotate", parents=[common], help="publish a new signing key")
    key_commands.add_parser("list", parents=[common], help="published keys")

    add_approvals_command(commands, common)
    add_limits_command(commands, common)


def run_admin(args: argparse.Namespace, settings: HubSettings) -> int:
    handler = _HANDLERS[args.command]
    password: str | None = None
    if args.command == "users" and args.users_command in ("create", "set-password"):
        password = _read_password(args.password_stdin)

    # A decision on a held call is logged as the hub logs it (whoever watches the hub's log sees it); an admin
    # change prints what it did, and a log line on the same terminal would only repeat it.
    log_audited = args.command == "approvals"

    async def run() -> int:
        async with admin_tools(settings, log_audited=log_audited) as tools:
            return await handler(tools, args, password)

    return anyio.run(run)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise InvalidInputError("no terminal to ask for the password: use --password-stdin")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat: ") != first:
        raise InvalidInputError("the passwords differ")
    return first


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


async def _agents(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    verb: str = args.agents_command
    if verb == "create":
        created = await tools.agents.create(
            tools.actor, args.name, args.grant, public=args.public, redirect_uris=args.redirect_uri, owner=args.owner
        )
        body = {
            "name": created.agent.name,
            "client_id": created.agent.client_id,
            "client_secret": created.client_secret,
            "grants": list(created.grants),
            "token_endpoint": tools.auth.urls.url(TOKEN_PATH),
        }
        if args.json:
            _print_json(body)
        else:
            print(f"agent {created.agent.name} created")
            print(f"  client_id:     {created.agent.client_id}")
            if created.client_secret is not None:
                print(f"  client_secret: {created.client_secret}   (shown once: store it now)")
            print(f"  grants:        {' '.join(created.grants) or '(none yet: mcp-hub grants add)'}")
        return 0
    if verb == "list":
        agents = await tools.stores.identities.list_agents()
        rows: list[dict[str, Any]] = [
            {
                "name": agent.name,
                "client_id": agent.client_id,
                "kind": "public" if agent.is_public else "confidential",
                "source": agent.source,
                "enabled": agent.enabled,
                "grants": await tools.stores.identities.grants_of(agent_id=agent.id),
            }
            for agent in agents
        ]
        if args.json:
            _print_json(rows)
        else:
            print(f"{'NAME':<24} {'ENABLED':<8} {'KIND':<13} {'SOURCE':<6} GRANTS")
            for row in rows:
                enabled = "yes" if row["enabled"] else "no"
                print(f"{row['name']:<24} {enabled:<8} {row['kind']:<13} {row['source']:<6} {' '.join(row['grants'])}")
        return 0
    if verb in ("disable", "enable"):
        await tools.agents.set_enabled(tools.actor, args.name, verb == "enable")
        print(f"agent {args.name} {verb}d")
        return 0
    secret = await tools.agents.rotate_secret(tools.actor, args.name)
    print(f"new client_secret for {args.name}: {secret}   (shown once; the old one no longer works)")
    return 0


async def _grants(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    verb: str = args.grants_command
    admin = tools.auth.admin
    if verb == "add":
        unmatched = await _matches_nothing(tools, args.pattern)
        if unmatched is not None:
            print(f"mcp-hub: {'refused' if args.strict else 'warning'}: {unmatched}", file=sys.stderr)
            if args.strict:
                return 1
        added = await tools.agents.grant(tools.actor, args.subject, args.pattern)
        print(f"{args.subject}: {args.pattern} {'granted' if added else 'was already granted'}")
        return 0
    if verb == "remove":
        removed = await tools.agents.revoke(tools.actor, args.subject, args.pattern)
        print(f"{args.subject}: {args.pattern} {'removed' if removed else 'was not granted'}")
        return 0 if removed else 1
    if args.effective:
        catalog = [("tool", row.public_name) for row in await tools.stores.catalog.catalog()]
        for _kind, name in await admin.effective(args.subject, catalog):
            print(name)
        return 0
    for pattern in await admin.list_grants(args.subject):
        print(pattern)
    return 0


async def _matches_nothing(tools: AdminTools, pattern: str) -> str | None:
    """Why a tool grant pattern is likely a mistake (it matches no tool the hub last saw), or None (issue 11 §8).

    Only tools are recorded (`catalog_tools`); prompt and resource patterns are not checked."""
    kind, _, _ = scopes.validate_pattern(pattern).partition(":")
    if kind != "tool":
        return None
    rows = await tools.stores.catalog.catalog()
    if any(scopes.matches(pattern, "tool", row.public_name) for row in rows):
        return None
    return (
        f"{pattern} matches none of the {len(rows)} tools the hub last saw (public names are <connector>__<tool>: "
        "see `mcp-hub catalog`)"
    )


async def catalog_for_agent(tools: AdminTools, name: str, as_json: bool) -> int:
    """`mcp-hub catalog --agent NAME`: the tools the agent may call now, their descriptions, and which need a
    human's approval (issue 11 §8)."""
    from mcp_hub.approvals.policy import ApprovalPolicy
    from mcp_hub.approvals.subject import HeldSubject
    from mcp_hub.runtime import readable_connectors

    policy = ApprovalPolicy(tools.settings.approvals.rules, readable_connectors(tools.settings))
    rows = {row.public_name: row for row in await tools.stores.catalog.catalog()}
    allowed = await tools.auth.admin.effective(name, [("tool", public) for public in rows])
    visible: list[dict[str, Any]] = []
    for _kind, public in allowed:
        row = rows[public]
        description = " ".join(str(row.definition.get("description") or "").split())
        subject = HeldSubject(
            method="tools/call",
            public_name=public,
            connector_id=row.connector_id,
            downstream_name=row.downstream_name,
            sha256=row.sha256,
            description=description,
        )
        visible.append({"name": public, "description": description, "approval": policy.holds_for(name, subject)})
    if as_json:
        _print_json(visible)
        return 0
    approval = "always, sometimes (by arguments or earlier calls), -"
    print(f"# {len(visible)} of {len(rows)} tools visible to {name}; APPROVAL: {approval}")
    print(f"{'NAME':<40} {'APPROVAL':<9} DESCRIPTION")
    for item in visible:
        print(shown(f"{item['name']:<40} {item['approval'] or '-':<9} {item['description'][:100]}"))
    return 0


def run_catalog_for_agent(settings: HubSettings, name: str, as_json: bool) -> int:
    async def run() -> int:
        async with admin_tools(settings) as tools:
            return await catalog_for_agent(tools, name, as_json)

    return anyio.run(run)


async def _users(tools: AdminTools, args: argparse.Namespace, password: str | None) -> int:
    verb: str = args.users_command
    if verb in ("create", "set-password"):
        if password is None:
            raise InvalidInputError("a password is required")
        if verb == "create":
            user = await tools.users.create(tools.actor, args.name, Role(args.role), password)
            print(f"user {user.name} created with role {user.role}")
        else:
            await tools.users.set_password(tools.actor, args.name, password)
            print(f"password of user {args.name} replaced; their web sessions have ended")
        return 0
    if verb in ("disable", "enable"):
        await tools.users.set_enabled(tools.actor, args.name, verb == "enable")
        print(f"user {args.name} {verb}d")
        return 0
    users = await tools.stores.identities.list_users()
    if args.json:
        _print_json([{"name": user.name, "role": user.role, "enabled": user.enabled} for user in users])
        return 0
    for user in users:
        print(f"{user.name:<24} {user.role:<9} {'enabled' if user.enabled else 'disabled'}")
    return 0


async def _token(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    audience = None if args.resource is None else tools.auth.urls.accept_resource([args.resource])
    admin = audience == tools.auth.urls.admin_resource
    response = await tools.agents.mint_token(tools.actor, args.name, args.scope, audience=audience, admin=admin)
    if args.json:
        _print_json(response)
    else:
        print(response["access_token"])
    return 0


async def _keys(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    if args.keys_command == "rotate":
        record = await tools.keys.rotate(tools.actor)
        print(f"published key {record.kid}; it signs from {record.signs_from.isoformat()}")
        return 0
    for record in await tools.stores.keys.signing_keys():
        retires = record.retires_at.isoformat() if record.retires_at else "-"
        print(f"{record.kid}  {record.algorithm}  signs from {record.signs_from.isoformat()}  retires {retires}")
    return 0


_HANDLERS: dict[str, Callable[[AdminTools, argparse.Namespace, str | None], Awaitable[int]]] = {
    "agents": _agents,
    "grants": _grants,
    "users": _users,
    "token": _token,
    "keys": _keys,
    "approvals": run_approvals,
    "limits": run_limits,
}
