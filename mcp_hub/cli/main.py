"""The `mcp-hub` command: serve, stdio, migrate, connectors list|check|reload, catalog (its review verbs in
`cli/catalog.py`), the admin commands, and audit (`cli/audit.py`).

Exit codes (the CLI's mapping of `mcp_hub.errors`): 0 done; 1 refused or failed (`HubError`, an unknown agent,
user or action); 2 a configuration error (`ConfigError`) or bad input (`InvalidInputError`, usage).
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import structlog

from mcp_hub.cli.admin import ADMIN_COMMANDS, add_admin_commands, run_admin, run_catalog_for_agent
from mcp_hub.cli.audit import add_audit_command, run_audit
from mcp_hub.cli.catalog import add_catalog_verbs, run_catalog_verb
from mcp_hub.cli.virtual import add_virtual_command, run_virtual
from mcp_hub.config.connectors import (
    RELOAD_REQUEST_FILE,
    ConnectorFiles,
    ConnectorSpec,
    load_connectors,
    scan_connectors,
)
from mcp_hub.config.settings import HubSettings, load_settings
from mcp_hub.domain import ConnectorId, ConnectorListing, Health
from mcp_hub.errors import ConfigError, DatabaseError, HubError, InvalidInputError
from mcp_hub.logs import LEVELS, configure_logging

_log = structlog.get_logger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_USAGE = 0, 1, 2, 2


def _parser() -> argparse.ArgumentParser:
    # The common options are accepted before or after the command (`mcp-hub serve --config x.toml`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="the hub's config.toml")
    common.add_argument(
        "--log-level", choices=LEVELS, default=argparse.SUPPRESS, help="overrides [logging] level (default: info)"
    )
    common.add_argument(
        "--log-json", action="store_true", default=argparse.SUPPRESS, help="log JSON lines (overrides [logging] format)"
    )
    parser = argparse.ArgumentParser(prog="mcp-hub", description="An MCP aggregation gateway.", parents=[common])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", parents=[common], help="serve MCP over Streamable HTTP and /healthz")
    serve.add_argument("--host", help="listen address (overrides hub.listen_host)")
    serve.add_argument("--port", type=int, help="listen port (overrides hub.listen_port)")

    stdio = commands.add_parser(
        "stdio", parents=[common], help="serve the catalog over stdin/stdout for one local client"
    )
    stdio.add_argument(
        "--agent", metavar="NAME", help="the agent whose grants apply (with auth; or an access token in MCP_HUB_TOKEN)"
    )

    migrate = commands.add_parser("migrate", parents=[common], help="upgrade the database schema")
    migrate.add_argument("--revision", default="head")

    connectors = commands.add_parser("connectors", parents=[common], help="inspect connectors")
    connector_commands = connectors.add_subparsers(dest="connectors_command", required=True)
    listing = connector_commands.add_parser("list", parents=[common], help="every connector with its health")
    listing.add_argument("--json", action="store_true")
    reload = connector_commands.add_parser(
        "reload", parents=[common], help="make the running hub apply the connectors directory now"
    )
    reload.add_argument("--wait", type=float, default=30.0, metavar="SECONDS", help="how long to wait for the hub")
    check = connector_commands.add_parser("check", parents=[common], help="connect to one connector, list its tools")
    check.add_argument("connector_id")

    catalog = commands.add_parser("catalog", parents=[common], help="public tool names and their connectors")
    catalog.add_argument("--json", action="store_true")
    catalog.add_argument("--live", action="store_true", help="connect to every connector, not read the database")
    add_catalog_verbs(catalog, common)  # review|diff|approve|reject|export|verify (issue 11)
    # issue 11 §8 / §6: the catalog as one agent sees it; virtual servers
    catalog.add_argument("--agent", metavar="NAME", help="only what this agent may call, with approval needs")
    add_virtual_command(commands, common)
    add_admin_commands(commands, common)
    add_audit_command(commands, common)  # issue 13 §7, §8: verify|list|export|usage|prune
    return parser


# The log options' defaults are `[logging]`'s (None: not given on the command line).
_COMMON_DEFAULTS: dict[str, Any] = {"config": Path("config.toml"), "log_level": None, "log_json": None}


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    # The defaults are applied after parsing: `set_defaults` would change the actions the subcommands share
    # with the top-level parser, and a subcommand's default would then overwrite `mcp-hub --config X serve`.
    args = _parser().parse_args(argv)
    for name, default in _COMMON_DEFAULTS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    try:
        settings = load_settings(args.config)
    except HubError as exc:
        configure_logging(args.log_level or "info", json=bool(args.log_json))
        return _failed(exc, json_lines=bool(args.log_json))
    level, json_lines = log_options(args, settings)
    configure_logging(level, json=json_lines)
    try:
        try:
            return _dispatch(args, settings)
        except BaseExceptionGroup as group:
            raise _lone(group) from None
    except HubError as exc:
        return _failed(exc, json_lines=json_lines)
    except KeyboardInterrupt:
        return EXIT_FAILURE


def log_options(args: argparse.Namespace, settings: HubSettings) -> tuple[str, bool]:
    """The level and whether lines are JSON: the command line's options, else `[logging]`."""
    level: str = args.log_level or settings.logging.level
    return level, bool(args.log_json) or settings.logging.format == "json"


def _failed(exc: HubError, *, json_lines: bool) -> int:
    """Report what ended the command (a log line when every line is JSON) and return its exit code."""
    code, message = exit_for(exc)
    if json_lines:
        _log.error(f"mcp-hub: {message}", exit_code=code)
    else:
        print(f"mcp-hub: {message}", file=sys.stderr)
    return code


def exit_for(exc: HubError) -> tuple[int, str]:
    """The exit code and the message of a command that `exc` ended (the CLI's one mapping of the error tree)."""
    if isinstance(exc, ConfigError):
        return EXIT_CONFIG, f"configuration error: {exc}"
    if isinstance(exc, InvalidInputError):
        return EXIT_USAGE, str(exc)
    return EXIT_FAILURE, str(exc)


def _lone(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception a task group wrapped (a command's error inside a running component), else the group."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        inner: list[BaseException] = list(found.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        if len(inner) != 1:
            return group
        found = inner[0]
    return found


def _dispatch(args: argparse.Namespace, settings: HubSettings) -> int:
    command: str = args.command
    if command in ADMIN_COMMANDS:
        return run_admin(args, settings)
    if command == "audit":
        return run_audit(args, settings)
    if command == "migrate":
        return anyio.run(_migrate, settings, args.revision)
    if command == "serve":
        settings = settings.with_listen(args.host, args.port)
        return _serve(settings, load_connectors(settings.connectors_dir))
    if command == "stdio":
        return anyio.run(_stdio, settings, load_connectors(settings.connectors_dir), args.agent)
    if command == "connectors":
        if args.connectors_command == "list":
            return anyio.run(_connectors_list, settings, scan_connectors(settings.connectors_dir), args.json)
        if args.connectors_command == "reload":
            return anyio.run(_connectors_reload, settings, args.wait)
        specs = load_connectors(settings.connectors_dir)
        return anyio.run(_connectors_check, settings, specs, args.connector_id)
    if command == "catalog" and getattr(args, "catalog_command", None) is not None:
        return anyio.run(_catalog_verb, settings, args)
    if command == "virtual":
        return run_virtual(args, settings)
    if command == "catalog" and args.agent is not None:
        return run_catalog_for_agent(settings, args.agent, args.json)
    if command == "catalog":
        specs = load_connectors(settings.connectors_dir)
        return anyio.run(_catalog, settings, specs, args.json, args.live)
    raise AssertionError(command)  # pragma: no cover - argparse rejects unknown commands


async def _catalog_verb(settings: HubSettings, args: argparse.Namespace) -> int:
    from mcp_hub.runtime import admin_tools

    async with admin_tools(settings) as tools:
        return await run_catalog_verb(tools, args, None)


async def _migrate(settings: HubSettings, revision: str) -> int:
    from mcp_hub.db.engine import display_url, upgrade

    await upgrade(settings.database.url, revision)
    _log.info(f"database upgraded to {revision}", database=display_url(settings.database.url))
    return EXIT_OK


def _serve(settings: HubSettings, specs: list[ConnectorSpec]) -> int:
    import uvicorn

    from mcp_hub.db.audit_chain import AuditChainStore
    from mcp_hub.db.engine import current_database
    from mcp_hub.runtime import Hub, audit_seal_key, build_app, require_seal_key, server_config

    async def check_database() -> None:
        async with current_database(settings.database.url) as engine:
            await require_seal_key(AuditChainStore(engine), audit_seal_key(settings), settings)

    # Refuse before binding the port, so a half-started hub never answers.
    anyio.run(check_database)
    hub = Hub(settings, specs, sighup=True, settle_heap=True)
    config = server_config(build_app(hub), settings, host=settings.hub.listen_host, port=settings.hub.listen_port)
    server = uvicorn.Server(config)
    server.run()
    return EXIT_OK if server.started else EXIT_FAILURE


async def _stdio(settings: HubSettings, specs: list[ConnectorSpec], agent: str | None) -> int:
    from mcp_hub.gateway.stdio import token_from_environment
    from mcp_hub.runtime import Hub

    await Hub(settings, specs, settle_heap=True).serve_stdio(agent=agent, token=token_from_environment())
    return EXIT_OK


async def _live_health(settings: HubSettings) -> dict[str, Any] | None:
    """The running hub's `/healthz`, or None when no hub answers at its public URL."""
    try:
        async with httpx2.AsyncClient(timeout=2.0) as client:
            response = await client.get(f"{settings.public_base_url}/healthz")
            response.raise_for_status()
            body: object = response.json()
    except (httpx2.HTTPError, ValueError):
        return None
    # Something else may answer at that address: a hub's report is an object with its connectors.
    if not isinstance(body, dict) or not isinstance(cast("dict[str, Any]", body).get("connectors"), dict):
        return None
    return cast("dict[str, Any]", body)


async def _connectors_list(settings: HubSettings, files: ConnectorFiles, as_json: bool) -> int:
    """Every connector the files or the hub know, each with the truth about its state: live when the hub runs
    (`/healthz`), else the last state recorded, shown as last known with its time; `never-seen` for a connector
    no hub has served; a bad file's error beside the definition still served, if any."""
    health = await _live_health(settings)
    if health is not None:
        source = f"live, from {settings.public_base_url}/healthz"
        known: dict[str, dict[str, Any]] = health["connectors"]
    else:
        source = "the hub is not running: last known state recorded in the database"
        known = await _recorded_health(settings)
    bad = {name.removesuffix(".toml"): error for name, error in files.errors.items()}
    ids: set[str] = {*files.specs, *bad, *(known if health is not None else ())}
    rows: list[dict[str, Any]] = []
    for connector_id in sorted(ids):
        spec = files.specs.get(ConnectorId(connector_id))
        state = known.get(connector_id)
        details: list[str] = []
        if state is None:
            name = "never-seen" if health is None else "not-loaded"
        else:
            name = state["state"] if health is not None else f"last-known:{state['state']}"
            if state.get("detail"):
                details.append(str(state["detail"]))
        if connector_id in bad:
            details.append(f"bad file (not applied): {bad[connector_id]}")
        elif spec is None:
            details.append("file removed: served until the hub reloads")
        elif health is not None and state is None:
            details.append("file added: applied at the hub's next reload")
        rows.append(
            {
                "id": connector_id,
                "transport": spec.transport if spec is not None else None,
                "protocol": spec.protocol if spec is not None else None,
                "enabled": spec.enabled if spec is not None else None,
                "state": name,
                "since": state.get("since") if state is not None else None,
                "era": state.get("era") if state is not None else None,
                "tools": state.get("tools", 0) if state is not None else 0,
                "detail": "; ".join(details) or None,
                "file_error": bad.get(connector_id),
            }
        )
    if as_json:
        body: dict[str, Any] = {"source": source, "connectors": rows}
        if health is not None:
            body["reload"] = health.get("connector_files")
        print(json.dumps(body, indent=2))
        return EXIT_OK
    print(f"# {source}")
    print(f"{'ID':<20} {'TRANSPORT':<9} {'PROTOCOL':<10} {'STATE':<18} {'ERA':<10} {'TOOLS':>5}  {'SINCE':<25}  DETAIL")
    for row in rows:
        print(
            f"{row['id']:<20} {row['transport'] or '-':<9} {row['protocol'] or '-':<10} {row['state']:<18} "
            f"{row['era'] or '-':<10} {row['tools']:>5}  {row['since'] or '-':<25}  {row['detail'] or ''}"
        )
    return EXIT_OK


async def _recorded_health(settings: HubSettings) -> dict[str, dict[str, Any]]:
    """The state each connector was last recorded in (a connector never served has none)."""
    from mcp_hub.db.catalog import CatalogStore
    from mcp_hub.db.engine import current_database

    try:
        async with current_database(settings.database.url) as engine:
            statuses = await CatalogStore(engine).list_connectors()
    except DatabaseError:
        return {}
    return {
        status.id: {
            "state": status.health,
            "since": status.updated_at.isoformat(),
            "era": status.era,
            "tools": status.tool_count,
            "detail": status.health_detail,
        }
        for status in statuses
    }


async def _connectors_reload(settings: HubSettings, wait_seconds: float) -> int:
    """Ask the running hub to apply the connectors directory now, and report what it did.

    The request is a token written to `connectors/.reload-request` (authority: the right to write connector files,
    nothing on the network); the hub's watcher sees it and reports the token as answered in `/healthz`."""
    files = scan_connectors(settings.connectors_dir)
    for name, error in sorted(files.errors.items()):
        print(f"mcp-hub: {name} will not be applied (its previous definition keeps serving): {error}", file=sys.stderr)
    if await _live_health(settings) is None:
        print(f"mcp-hub: no hub answers at {settings.public_base_url}: nothing to reload", file=sys.stderr)
        return EXIT_FAILURE
    token = secrets.token_hex(16)
    request = settings.connectors_dir / RELOAD_REQUEST_FILE
    request.write_text(token + "\n", encoding="ascii")
    answered: dict[str, Any] | None = None
    with anyio.move_on_after(wait_seconds):
        while answered is None:
            health = await _live_health(settings)
            report: dict[str, Any] = (health or {}).get("connector_files") or {}
            if report.get("request") == token:
                answered = report
            else:
                await anyio.sleep(0.2)  # the hub answers on its next poll of the directory
    if answered is None:
        print(
            f"mcp-hub: the hub did not apply the request within {wait_seconds:g} s "
            "(with [hub] connectors_poll_seconds = 0 it only reloads on SIGHUP)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    names = {what: ", ".join(answered[what]) or "none" for what in ("added", "changed", "removed")}
    print(f"reloaded: added {names['added']}; changed {names['changed']}; removed {names['removed']}")
    for name, error in sorted(answered["errors"].items()):
        print(f"not applied: {name}: {error}")
    return EXIT_FAILURE if answered["errors"] else EXIT_OK


async def _connect_once(
    settings: HubSettings, specs: list[ConnectorSpec]
) -> dict[ConnectorId, tuple[str, ConnectorListing, str | None]]:
    """Connect to each connector once (concurrently); per connector: (state, what it listed, detail)."""
    from mcp_hub.downstream.connection import DownstreamConnection
    from mcp_hub.downstream.health import HealthState

    found: dict[ConnectorId, ConnectorListing] = {}
    settled: dict[ConnectorId, anyio.Event] = {spec.id: anyio.Event() for spec in specs}

    async def on_listing(connector_id: ConnectorId, listing: ConnectorListing) -> None:
        found[connector_id] = listing

    async def on_health(connector_id: ConnectorId, state: HealthState) -> None:
        if state.state in (Health.READY, Health.DOWN, Health.DISABLED):
            settled[connector_id].set()

    connections = [
        DownstreamConnection(spec, settings.timeouts, on_listing=on_listing, on_health=on_health) for spec in specs
    ]
    async with anyio.create_task_group() as tasks:
        for connection in connections:
            tasks.start_soon(connection.run)
        with anyio.move_on_after(settings.timeouts.connect_seconds + 5):
            for event in settled.values():
                await event.wait()
        tasks.cancel_scope.cancel()
    return {
        connection.spec.id: (
            connection.health.state.value,
            found.get(connection.spec.id, ConnectorListing()),
            connection.health.detail,
        )
        for connection in connections
    }


async def _connectors_check(settings: HubSettings, specs: list[ConnectorSpec], connector_id: str) -> int:
    spec = next((item for item in specs if item.id == connector_id), None)
    if spec is None:
        known = ", ".join(item.id for item in specs) or "none"
        print(f"mcp-hub: no connector {connector_id!r} (configured: {known})", file=sys.stderr)
        return EXIT_FAILURE
    state, listing, detail = (await _connect_once(settings, [spec.model_copy(update={"enabled": True})]))[spec.id]
    if state != Health.READY:
        print(f"{connector_id}: {state}: {detail or 'no answer'}")
        return EXIT_FAILURE
    print(
        f"{connector_id}: ready, {len(listing.tools)} tool(s), {len(listing.prompts)} prompt(s), "
        f"{len(listing.resources)} resource(s), {len(listing.resource_templates)} resource template(s)"
    )
    for tool in sorted(listing.tools, key=lambda item: str(item["name"])):
        print(f"  {tool['name']}")
    return EXIT_OK


async def _catalog(settings: HubSettings, specs: list[ConnectorSpec], as_json: bool, live: bool) -> int:
    from mcp_hub.catalog.catalog import Catalog

    pairs: list[tuple[str, str, str]]
    if live:
        catalog = Catalog()
        results = await _connect_once(settings, [spec for spec in specs if spec.enabled])
        for connector_id, (_, listing, _) in results.items():
            catalog.replace_connector(connector_id, listing)
        pairs = [(tool.public_name, tool.connector_id, tool.downstream_name) for tool in catalog.tools.entries()]
    else:
        from mcp_hub.db.catalog import CatalogStore
        from mcp_hub.db.engine import current_database

        async with current_database(settings.database.url) as engine:
            rows = await CatalogStore(engine).catalog()
        pairs = [(row.public_name, row.connector_id, row.downstream_name) for row in rows]
    if as_json:
        print(json.dumps([{"name": p, "connector": c, "downstream_name": d} for p, c, d in pairs], indent=2))
        return EXIT_OK
    for public_name, connector_id, _ in pairs:
        print(f"{public_name}\t{connector_id}")
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
