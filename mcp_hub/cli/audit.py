"""`mcp-hub audit verify|list|export|usage|prune`: the audit trail from the command line (issue 13 §7, §8).

The filters are the query layer's (`mcp_hub.db.audit_query.AuditFilter`): `--agent --tool --connector --outcome
(repeatable) --method --since --until`; times are ISO 8601 (`2026-12-01` or `2026-12-01T10:00:00+01:00`), UTC when
no offset is given; `--until` is exclusive. `export` writes JSON lines to standard output, oldest first.
`verify` exits 1 when the chain does not hold, naming the first bad row (docs/audit.md); with a seal key
(`[audit] seal_key`, or `--seal-key-env NAME` for each older key after a rotation) it checks the seals too, and
warns (exit 0) about the rows written after the newest seal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio

from mcp_hub.audit.verify import ChainReport, SealReport, verify_chain
from mcp_hub.cli.terminal import shown
from mcp_hub.config.settings import HubSettings
from mcp_hub.credentials import seal_key_bytes
from mcp_hub.db.audit_chain import AuditChainStore, ChainLink
from mcp_hub.db.audit_query import AuditFilter, AuditQueryStore, json_line, parse_time
from mcp_hub.db.audit_seal import SealKey
from mcp_hub.db.engine import current_database
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import InvalidInputError
from mcp_hub.runtime import audit_seal_key, require_seal_key

EXIT_OK, EXIT_BROKEN = 0, 1


def add_audit_command(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `audit` on the top-level `commands` sub-parser action."""
    audit = commands.add_parser("audit", parents=[common], help="the hash-chained audit trail")
    verbs = audit.add_subparsers(dest="audit_command", required=True)
    verify = verbs.add_parser("verify", parents=[common], help="check the hash chain; exit 1 naming the first bad row")
    verify.add_argument(
        "--head", metavar="ID:HASH", help="a row id and hash recorded elsewhere (a sink): must be in the chain"
    )
    verify.add_argument(
        "--seal-key-env",
        metavar="NAME",
        action="append",
        default=[],
        help="an environment variable holding a seal key besides [audit] seal_key (an older one); repeatable",
    )
    verify.add_argument("--json", action="store_true")
    listing = verbs.add_parser("list", parents=[common], help="one page of rows, newest first")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=50, help="rows per page (at most 500)")
    listing.add_argument("--cursor", help="the next_cursor a previous page printed")
    listing.add_argument("--json", action="store_true", help="JSON lines, then the next cursor on standard error")
    export = verbs.add_parser("export", parents=[common], help="every matching row as JSON lines, oldest first")
    _filters(export)
    export.add_argument("--limit", type=int, help="at most this many rows")
    usage = verbs.add_parser(
        "usage", parents=[common], help="calls, failed, refused, downstream time, approvals per agent/day"
    )
    usage.add_argument("--agent", metavar="NAME")
    usage.add_argument("--since", type=_time, metavar="TIME")
    usage.add_argument("--until", type=_time, metavar="TIME")
    usage.add_argument("--json", action="store_true")
    prune = verbs.add_parser("prune", parents=[common], help="delete rows older than N days behind a checkpoint")
    prune.add_argument("--days", type=int, required=True)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", metavar="NAME", help="an agent's calls, for itself and for users")
    parser.add_argument("--tool", metavar="PUBLIC_NAME")
    parser.add_argument("--connector", metavar="ID")
    parser.add_argument("--outcome", action="append", default=[], choices=[str(o) for o in AuditOutcome])
    parser.add_argument("--method", help="tools/call, prompts/get, resources/read, ...")
    parser.add_argument("--since", type=_time, metavar="TIME", help="inclusive")
    parser.add_argument("--until", type=_time, metavar="TIME", help="exclusive")


def _time(value: str) -> datetime:
    try:
        return parse_time(value)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def filter_of(args: argparse.Namespace) -> AuditFilter:
    """The `AuditFilter` the command line names."""
    return AuditFilter(
        agent=args.agent,
        tool=args.tool,
        connector=args.connector,
        outcomes=tuple(AuditOutcome(outcome) for outcome in args.outcome),
        method=args.method,
        since=args.since,
        until=args.until,
    )


def _head(value: str | None) -> ChainLink | None:
    if value is None:
        return None
    row_id, _, row_hash = value.partition(":")
    if not (row_id.isascii() and row_id.isdigit()) or len(row_hash) != 64:  # isdigit alone lets '²' to int()
        raise InvalidInputError("--head: expected ID:HASH, such as 42:<64 hex digits>")
    return ChainLink(int(row_id), row_hash.lower())


def seal_keys(settings: HubSettings, variables: list[str]) -> list[SealKey]:
    """`[audit] seal_key`'s key and those the `--seal-key-env` variables hold (never on the command line itself,
    where other users could read them)."""
    keys = [key] if (key := audit_seal_key(settings)) is not None else []
    for name in variables:
        try:
            keys.append(SealKey.of(seal_key_bytes(os.environ.get(name, ""))))
        except ValueError as exc:
            raise InvalidInputError(f"--seal-key-env: the environment variable {name} {exc}") from None
    return keys


def run_audit(args: argparse.Namespace, settings: HubSettings) -> int:
    return anyio.run(_run, args, settings)


async def _run(args: argparse.Namespace, settings: HubSettings) -> int:
    verb: str = args.audit_command
    async with current_database(settings.database.url) as engine:
        if verb == "verify":
            keys = seal_keys(settings, args.seal_key_env)
            return await _verify(AuditChainStore(engine), _head(args.head), keys, json_output=args.json)
        if verb == "prune":
            if args.days <= 0:
                raise InvalidInputError("--days must be positive")
            chain, seal_key = AuditChainStore(engine), audit_seal_key(settings)
            await require_seal_key(chain, seal_key, settings)
            cutoff = datetime.now(UTC) - timedelta(days=args.days)
            pruned = await chain.prune_before(cutoff, seal_key=seal_key)
            print(f"audit: {pruned} rows pruned behind checkpoints")
            return EXIT_OK
        query = AuditQueryStore(engine)
        if verb == "list":
            return await _list(query, args)
        if verb == "export":
            return await _export(query, filter_of(args), args.limit)
        return await _usage(query, args)


_NOT_CHECKED = "seals not checked: no seal key (set [audit] seal_key, or pass --seal-key-env NAME)"


async def _verify(store: AuditChainStore, head: ChainLink | None, keys: list[SealKey], *, json_output: bool) -> int:
    report = await verify_chain(store, expected_head=head, seal_keys=keys)
    if json_output:
        print(json.dumps(_json_report(report), indent=2))
    elif report.fault is None:
        since = f"after checkpoint anchor row {report.start.id}" if report.start.id else "from the start"
        print(f"audit chain intact: {report.rows} rows {since}, {report.checkpoints} checkpoints")
        print(f"head: {report.head.id}:{report.head.hash}")
        if report.seals is None:
            print(_NOT_CHECKED)
        else:
            _print_seals(report.seals)
    else:
        print(shown(f"audit chain broken: {report.fault}"), file=sys.stderr)  # a key id is the database's text
    return EXIT_OK if report.intact else EXIT_BROKEN


def _print_seals(seals: SealReport) -> None:
    newest = seals.newest
    if newest is None:
        print(f"seals checked: {seals.seals} seals")
    else:
        at = newest.sealed_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        print(
            f"seals checked: {seals.seals} seals over {seals.sealed_rows} rows; the newest seals row "
            f"{newest.last_id}, sealed {at}"
        )
    if seals.unsealed_after:
        where = "after the newest seal" if newest is not None else "and no seal at all"
        print(
            f"warning: {seals.unsealed_after} rows {where} (from row {seals.first_unsealed_after}) are not sealed: "
            "written by a replica or command without [audit] seal_key, or appended by someone without the key",
            file=sys.stderr,
        )
    if seals.unsealed_before:
        print(f"{seals.unsealed_before} rows before the first seal were written before sealing began")
    if seals.unsealed_checkpoints:
        print(f"{seals.unsealed_checkpoints} checkpoints without a MAC are from before sealing began")


def _json_report(report: ChainReport) -> dict[str, Any]:
    seals = report.seals
    return {
        "intact": report.intact,
        "rows": report.rows,
        "checkpoints": report.checkpoints,
        "start": {"id": report.start.id, "hash": report.start.hash},
        "head": {"id": report.head.id, "hash": report.head.hash},
        "fault": None
        if report.fault is None
        else {
            "row_id": report.fault.row_id,
            "checkpoint_id": report.fault.checkpoint_id,
            "seal_id": report.fault.seal_id,
            "problem": report.fault.problem,
        },
        "seals": None
        if seals is None
        else {
            "seals": seals.seals,
            "sealed_rows": seals.sealed_rows,
            "newest": None
            if seals.newest is None
            else {
                "id": seals.newest.id,
                "last_id": seals.newest.last_id,
                "sealed_at": seals.newest.sealed_at.isoformat(),
            },
            "unsealed_before": seals.unsealed_before,
            "unsealed_after": seals.unsealed_after,
            "first_unsealed_after": seals.first_unsealed_after,
            "unsealed_checkpoints": seals.unsealed_checkpoints,
        },
    }


async def _list(query: AuditQueryStore, args: argparse.Namespace) -> int:
    page = await query.page(filter_of(args), cursor=args.cursor, limit=args.limit)
    for record in page.records:
        if args.json:
            sys.stdout.buffer.write(json_line(record))
        else:
            at = record.at.isoformat(timespec="seconds").replace("+00:00", "Z")
            took = f"{record.latency_ms:.1f}ms"
            line = f"{record.id:>8} {at} {record.client} {record.method} {record.public_name} {record.outcome} {took}"
            print(shown(line))  # a refused call's name is the caller's text
    sys.stdout.flush()
    if page.next_cursor is not None:
        print(f"next: --cursor {page.next_cursor}", file=sys.stderr)
    return EXIT_OK


async def _export(query: AuditQueryStore, audit_filter: AuditFilter, limit: int | None) -> int:
    if limit is not None and limit <= 0:
        raise InvalidInputError("--limit must be positive")
    written = 0
    out = sys.stdout.buffer
    async for record in query.export(audit_filter):
        if limit is not None and written >= limit:
            break
        out.write(json_line(record))
        written += 1
    out.flush()
    return EXIT_OK


async def _usage(query: AuditQueryStore, args: argparse.Namespace) -> int:
    days = await query.usage(agent=args.agent, since=args.since, until=args.until)
    if args.json:
        print(json.dumps([day.to_json() for day in days], indent=2))
        return EXIT_OK
    print(
        f"{'day':<10} {'agent':<24} {'calls':>7} {'failed':>7} {'refused':>7} {'downstream_s':>12} {'held':>5} "
        f"{'ok':>4} {'denied':>6}"
    )
    for day in days:
        print(
            f"{day.day.isoformat():<10} {day.agent:<24} {day.calls:>7} {day.errors:>7} {day.refused:>7} "
            f"{day.downstream_ms / 1000:>12.2f} {day.approvals_requested:>5} {day.approvals_approved:>4} "
            f"{day.approvals_denied:>6}"
        )
    return EXIT_OK
