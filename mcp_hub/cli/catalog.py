"""`mcp-hub catalog review|diff|approve|reject|export|verify`: pinned definitions and their review (issue 11 §1, §4).

The commands read and write the hub's database directly, so they work whether or not the hub runs; a running
hub applies a decision within `[catalog] review_poll_seconds`. `--as USER` names the admin who decides (a user
with the `admin` role); the decision is the admin service's (`mcp_hub.admin.review.CatalogReview`, as from the
API and the console): the pin's `decided_by` and the audit rows name `user:USER`. Hidden and bidirectional
characters, and control characters, are always printed escaped (`\\u202e`, `\\x1b`), never raw (threat T31:
`mcp_hub.cli.terminal`).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from mcp_hub.admin.changes import Actor
from mcp_hub.catalog.lock import CatalogLock, lock_differences, lock_document, parse_lock, read_lock
from mcp_hub.cli.terminal import shown
from mcp_hub.db.pins import PinRecord
from mcp_hub.domain import PinStatus, Role
from mcp_hub.errors import CatalogError, ConfigError, NotFoundError
from mcp_hub.runtime import AdminTools

EXIT_OK, EXIT_DIFFERENT = 0, 1
CATALOG_VERBS = frozenset({"review", "diff", "approve", "reject", "export", "verify"})
_COLUMN = 58


def add_catalog_verbs(catalog: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    """Register the review verbs under `catalog` (which still lists the catalog without one)."""
    verbs = catalog.add_subparsers(dest="catalog_command", required=False)
    review = verbs.add_parser("review", parents=[common], help="definitions waiting for an admin, and refused ones")
    review.add_argument("--json", action="store_true")
    diff = verbs.add_parser("diff", parents=[common], help="the approved and the waiting definition, side by side")
    diff.add_argument("name", help="a public name (e.g. github__create_issue) or public URI template")
    for verb, what in (("approve", "offer the waiting definition"), ("reject", "never offer the waiting definition")):
        decide = verbs.add_parser(verb, parents=[common], help=what)
        decide.add_argument("names", nargs="+", metavar="NAME")
        decide.add_argument("--as", dest="as_user", required=True, metavar="USER", help="the admin who decides")
        decide.add_argument("--sha", help="the waiting digest (a prefix) when several wait under one name")
        decide.add_argument("--reason")
    export = verbs.add_parser("export", parents=[common], help="write the approved definitions to a lock file")
    export.add_argument("file", type=Path, nargs="?", default=Path("catalog.lock.json"))
    verify = verbs.add_parser("verify", parents=[common], help="compare a lock file with the approved definitions")
    verify.add_argument("file", type=Path)


def _print_json(value: Any) -> None:
    print(shown(json.dumps(value, indent=2, ensure_ascii=False, default=str), keep_layout=True))


async def run_catalog_verb(tools: AdminTools, args: argparse.Namespace, _password: str | None) -> int:
    verb: str = args.catalog_command
    pins = tools.stores.pins
    if verb == "review":
        return _review(await pins.waiting(), as_json=args.json)
    if verb == "diff":
        return _diff(args.name, await pins.history(args.name))
    if verb == "export":
        document = lock_document(await pins.approved())
        args.file.write_text(json.dumps(document, indent=2, ensure_ascii=True, sort_keys=True) + "\n")
        count = sum(len(entries) for entries in document["pins"].values())
        print(f"{count} approved definition(s) written to {args.file}")
        return EXIT_OK
    if verb == "verify":
        expected = read_lock(args.file)
        actual = parse_lock(lock_document(await pins.approved()), "the hub's pins")
        return _verify(args.file, expected, actual)
    return await _decide(tools, args, approve=verb == "approve")


def _review(waiting: list[PinRecord], *, as_json: bool) -> int:
    if as_json:
        _print_json([_row(record) for record in waiting])
        return EXIT_OK
    if not waiting:
        print("nothing waits for review")
        return EXIT_OK
    for record in waiting:
        state = "REFUSED" if record.status is PinStatus.REFUSED else "waiting"
        seen = record.last_seen.isoformat(timespec="seconds")
        print(f"{state:<8} {record.kind:<17} {shown(record.public_name)}  sha256:{record.sha256[:12]}  {seen}")
        for flag in record.flags:
            print(f"         ! {shown(flag)}")
        if record.reason:
            print(f"         reason: {shown(record.reason)}")
    return EXIT_OK


def _row(record: PinRecord) -> dict[str, Any]:
    return {
        "name": record.public_name,
        "kind": record.kind,
        "connector": record.connector_id,
        "downstream_name": record.name,
        "status": record.status,
        "sha256": record.sha256,
        "flags": list(record.flags),
        "first_seen": record.first_seen.isoformat(),
        "last_seen": record.last_seen.isoformat(),
        "reason": record.reason,
        "definition": record.definition,
    }


def _diff(name: str, history: list[PinRecord]) -> int:
    approved = [record for record in history if record.status in (PinStatus.APPROVED, PinStatus.SUPERSEDED)]
    waiting = [record for record in history if record.status in (PinStatus.PENDING, PinStatus.REFUSED)]
    if not history:
        print(f"mcp-hub: no definition was ever seen under {name!r}", file=sys.stderr)
        return EXIT_DIFFERENT
    old = next((r for r in approved if r.status is PinStatus.APPROVED), approved[-1] if approved else None)
    if not waiting:
        print(f"nothing waits under {shown(name)}; the pin is sha256:{old.sha256 if old else '-'}")
        return EXIT_OK
    for new in waiting:
        left = _lines(old.definition) if old is not None else []
        right = _lines(new.definition)
        old_title = f"{old.status} sha256:{old.sha256[:12]}" if old is not None else "(never approved)"
        print(f"{shown(name)}: {new.status} sha256:{new.sha256[:12]}")
        for flag in new.flags:
            print(f"  ! {shown(flag)}")
        print(_side(old_title, "|", f"{new.status} sha256:{new.sha256[:12]}"))
        print(_side("-" * _COLUMN, " ", "-" * _COLUMN))
        for line in _side_by_side(left, right):
            print(line)
    return EXIT_OK


def _lines(definition: dict[str, Any]) -> list[str]:
    return shown(json.dumps(definition, indent=2, ensure_ascii=False, sort_keys=True), keep_layout=True).splitlines()


def _side(left: str, mark: str, right: str) -> str:
    shown = left if len(left) <= _COLUMN else left[: _COLUMN - 1] + "…"
    return f"{shown:<{_COLUMN}} {mark} {right}"


def _side_by_side(left: list[str], right: list[str]) -> list[str]:
    """Like `diff -y`: equal lines on both sides, `|` changed, `<` only in the old, `>` only in the new."""
    out: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=left, b=right, autojunk=False).get_opcodes():
        if tag == "equal":
            out += [_side(line, " ", line) for line in left[i1:i2]]
            continue
        olds, news = left[i1:i2], right[j1:j2]
        for index in range(max(len(olds), len(news))):
            old = olds[index] if index < len(olds) else ""
            new = news[index] if index < len(news) else ""
            out.append(_side(old, "|" if old and new else ("<" if old else ">"), new))
    return out


def _verify(path: Path, expected: CatalogLock, actual: CatalogLock) -> int:
    differences = lock_differences(expected, actual)
    if not differences:
        print(f"{path}: the approved definitions match ({len(expected.pins)} pinned)")
        return EXIT_OK
    print(f"{path}: {len(differences)} difference(s) from the approved definitions")
    for line in differences:
        print(f"  {shown(line)}")
    return EXIT_DIFFERENT


async def _decide(tools: AdminTools, args: argparse.Namespace, *, approve: bool) -> int:
    user = await tools.stores.identities.user_by_name(args.as_user)
    if user is None or not user.enabled:
        raise ConfigError("--as", None, f"no enabled user {args.as_user!r} (mcp-hub users list)")
    if user.role is not Role.ADMIN:
        raise CatalogError(f"{user.name} is not an admin: only admins decide what the catalog offers")
    failed = 0
    for name in args.names:
        try:
            decided = await tools.review.decide(
                Actor.user(user.name), name, approve=approve, sha256=args.sha, reason=args.reason
            )
        except NotFoundError as exc:
            print(f"mcp-hub: {exc}", file=sys.stderr)
            failed += 1
            continue
        for record in decided:
            print(f"{shown(record.public_name)} sha256:{record.sha256[:12]} {record.status} by {user.name}")
    return EXIT_DIFFERENT if failed else EXIT_OK
