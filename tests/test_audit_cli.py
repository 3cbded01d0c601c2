"""`mcp-hub audit verify|list|export|usage` as operators run it: the installed console script in a subprocess
(issue 13 §7, §8; threat T24, audit tampering)."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from mcp_hub.cli.audit import run_audit
from mcp_hub.cli.main import parse_arguments
from mcp_hub.config.settings import DATABASE_URL_ENV, load_settings
from mcp_hub.db import create_engine, upgrade
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import InvalidInputError
from tests.conftest import write_config

pytestmark = pytest.mark.anyio

MCP_HUB = Path(sys.executable).parent / "mcp-hub"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


async def mcp_hub(config: Path, *args: str) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV}
    with anyio.fail_after(40):
        done = await anyio.run_process([str(MCP_HUB), *args, "--config", str(config)], check=False, env=environment)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def event(n: int, client: str, outcome: AuditOutcome = AuditOutcome.OK) -> AuditEvent:
    return AuditEvent(
        at=T0 + timedelta(minutes=n),
        client=client,
        session=None,
        public_name="time__now",
        connector_id="time",
        downstream_name="now",
        outcome=outcome,
        latency_ms=4.0,
        detail=None,
        downstream_ms=3.0,
    )


async def trail(config: Path) -> None:
    """Three calls by two agents in the configured database."""
    url = load_settings(config).database.url
    await upgrade(url)
    engine = create_engine(url)
    try:
        await AuditStore(engine).insert_audit(
            [event(0, "agent:alpha"), event(1, "agent:beta", AuditOutcome.TIMEOUT), event(2, "agent:alpha")]
        )
    finally:
        await engine.dispose()


async def test_audit_verify_passes_then_fails_naming_the_row_edited_in_sql(tmp_path: Path) -> None:
    """Issue 13 §7 "How it is proven": `audit verify` fails after a row is edited in SQL (T24), naming the row;
    `audit export` writes JSON lines with the query layer's filters."""
    config = write_config(tmp_path, {})
    await trail(config)

    code, out, err = await mcp_hub(config, "audit", "export", "--agent", "alpha", "--since", "2026-12-03T09:01:00Z")
    assert (code, err) == (0, "")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [3]

    engine = create_engine(load_settings(config).database.url)
    try:
        async with engine.begin() as connection:  # as someone with the database file would
            await connection.exec_driver_sql("DROP TRIGGER audit_calls_no_update")
            await connection.exec_driver_sql("UPDATE audit_calls SET outcome = 'ok' WHERE id = 2")
    finally:
        await engine.dispose()

    code, out, err = await mcp_hub(config, "audit", "verify")
    assert (code, out) == (1, "")
    assert err.strip() == "audit chain broken: row 2: its columns do not match its hash: it was edited"


def test_audit_list_usage_and_verify_print_what_the_query_layer_returns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our choice: the CLI's filters are the API's; `list --json` and `usage --json` for scripts (run in-process:
    the console script itself is exercised above; no global logging set-up here)."""
    config = write_config(tmp_path, {})
    anyio.run(trail, config)

    def main(argv: list[str]) -> int:
        return run_audit(parse_arguments(argv), load_settings(config))

    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("audit chain intact: 3 rows from the start, 0 checkpoints\nhead: 3:")

    assert main(["audit", "list", "--json", "--limit", "1", "--outcome", "ok"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["id"] for line in captured.out.splitlines()] == [3]
    assert captured.err == "next: --cursor a3\n"

    assert main(["audit", "usage", "--json"]) == 0
    usage = json.loads(capsys.readouterr().out)
    assert [(day["agent"], day["calls"], day["errors"]) for day in usage] == [("alpha", 2, 0), ("beta", 1, 1)]

    with pytest.raises(InvalidInputError, match="invalid audit cursor"):  # exit 2 (mcp_hub.cli.main.exit_for)
        main(["audit", "list", "--cursor", "bogus"])
    with pytest.raises(InvalidInputError, match="expected ID:HASH"):  # '²' passes str.isdigit, not int()
        main(["audit", "verify", "--head", "²:" + "0" * 64])
