"""`mcp-hub audit verify|list|export|usage` as operators run it: the installed console script in a subprocess
(issue 13 §7, §8; threat T24, audit tampering)."""

from __future__ import annotations

import base64
import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import insert

from mcp_hub.cli.audit import run_audit
from mcp_hub.cli.main import parse_arguments
from mcp_hub.config.settings import DATABASE_URL_ENV, load_settings
from mcp_hub.db import create_engine, upgrade
from mcp_hub.db.audit import AuditEvent, AuditStore
from mcp_hub.db.audit_chain import AuditChainStore
from mcp_hub.db.audit_seal import SealKey, seal_values
from mcp_hub.db.models import AuditSeal
from mcp_hub.domain import AuditOutcome
from mcp_hub.errors import InvalidInputError
from tests.conftest import write_config
from tests.db.test_audit_seals import append_as_intruder

pytestmark = pytest.mark.anyio

MCP_HUB = Path(sys.executable).parent / "mcp-hub"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


SEAL_KEY_ENV = "HUB_TEST_AUDIT_SEAL_KEY"
SEAL_SECRET = bytes(range(7, 39))
OLD_SEAL_SECRET = bytes(range(50, 82))
SEALED = f'[audit]\nseal_key = "${{{SEAL_KEY_ENV}}}"\n'


async def mcp_hub(config: Path, *args: str, env: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if key != DATABASE_URL_ENV} | dict(env or {})
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


async def trail(config: Path, *, seal_with: bytes | None = None) -> None:
    """Three calls by two agents in the configured database (sealed with `seal_with`)."""
    url = load_settings(config).database.url
    await upgrade(url)
    engine = create_engine(url)
    try:
        await AuditStore(engine).insert_audit(
            [event(0, "agent:alpha"), event(1, "agent:beta", AuditOutcome.TIMEOUT), event(2, "agent:alpha")],
            seal_key=None if seal_with is None else SealKey.of(seal_with),
        )
    finally:
        await engine.dispose()


async def forged_seal(config: Path, *, key_id: str) -> None:
    """A seal of the newest row written by plain SQL, naming `key_id`."""
    engine = create_engine(load_settings(config).database.url)
    try:
        head = await AuditChainStore(engine).head()
        seal = seal_values(
            SealKey.of(OLD_SEAL_SECRET), first_id=head.id, last_id=head.id, last_hash=head.hash, sealed_at=T0
        )
        async with engine.begin() as connection:
            await connection.execute(insert(AuditSeal).values(**(seal | {"key_id": key_id})))
    finally:
        await engine.dispose()


async def intruder_appends(config: Path, rows: int) -> None:
    engine = create_engine(load_settings(config).database.url)
    try:
        await append_as_intruder(engine, rows)
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


async def test_audit_verify_with_the_seal_key_warns_of_rows_appended_since_the_newest_seal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threat T24 (docs/audit.md, trust model): with `[audit] seal_key` verify checks the seals and says so; a row
    appended by plain SQL after the newest seal is a warning with its count (exit 0); without the key it says the
    seals were not checked. A sealed trail refuses to be written without the key (a prune, a command's audit row,
    a hub before it binds its port); with the key a command's audit row is sealed, and the appended rows now lie
    between seals: an error."""
    key_text = base64.b64encode(SEAL_SECRET).decode()
    monkeypatch.setenv(SEAL_KEY_ENV, key_text)  # for load_settings in this process; the commands get it in `env`
    config = write_config(tmp_path, {}, extra=SEALED)
    await trail(config, seal_with=SEAL_SECRET)
    with_key = {SEAL_KEY_ENV: key_text}

    code, out, err = await mcp_hub(config, "audit", "verify", env=with_key)
    assert (code, err) == (0, "")
    assert out.splitlines()[2].startswith("seals checked: 1 seals over 3 rows; the newest seals row 3, sealed ")

    await intruder_appends(config, 2)
    code, out, err = await mcp_hub(config, "audit", "verify", env=with_key)
    assert code == 0
    assert out.startswith("audit chain intact: 5 rows from the start")
    assert err.strip() == (
        "warning: 2 rows after the newest seal (from row 4) are not sealed: written by a replica or command without "
        "[audit] seal_key, or appended by someone without the key"
    )
    assert key_text not in out + err

    keyless = tmp_path / "keyless"
    keyless.mkdir()
    keyless_config = write_config(keyless, {}, database_url=load_settings(config).database.url)
    code, out, err = await mcp_hub(keyless_config, "audit", "verify")
    assert (code, err) == (0, "")
    assert out.splitlines()[2] == "seals not checked: no seal key (set [audit] seal_key, or pass --seal-key-env NAME)"

    refusal = "audit.seal_key: the audit trail in this database is sealed, but no seal key is configured"
    for command in (["audit", "prune", "--days", "1"], ["agents", "create", "beta"], ["serve", "--port", "0"]):
        code, out, err = await mcp_hub(keyless_config, *command)
        assert (code, out) == (2, ""), command
        assert refusal in err, command

    code, _, err = await mcp_hub(config, "agents", "create", "gamma", env=with_key)  # its audit row is sealed
    assert (code, err) == (0, "")
    code, out, _ = await mcp_hub(config, "audit", "verify", "--json", env=with_key)
    report = json.loads(out)
    assert (code, report["fault"]["row_id"], report["seals"]["seals"]) == (1, 4, 1)
    assert report["fault"]["problem"].startswith("is in no seal, but seal 2 follows it")


def test_audit_verify_takes_older_keys_from_the_variables_it_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Our choice (rotation): after the key changed, the old seals verify with the old key named by
    `--seal-key-env`, never given on the command line; a variable that holds no key is a usage error."""
    monkeypatch.setenv(SEAL_KEY_ENV, base64.b64encode(SEAL_SECRET).decode())
    monkeypatch.setenv("HUB_TEST_OLD_SEAL_KEY", base64.urlsafe_b64encode(OLD_SEAL_SECRET).decode().rstrip("="))
    monkeypatch.setenv("HUB_TEST_NOT_A_KEY", "c2hvcnQ=")
    config = write_config(tmp_path, {}, extra=SEALED)
    anyio.run(lambda: trail(config, seal_with=OLD_SEAL_SECRET))

    def main(*argv: str) -> int:
        return run_audit(parse_arguments(["audit", "verify", *argv]), load_settings(config))

    assert main() == 1
    assert capsys.readouterr().err.startswith(
        f"audit chain broken: seal 1: its MAC is by key {SealKey.of(OLD_SEAL_SECRET).id}, which was not given"
    )
    assert main("--seal-key-env", "HUB_TEST_OLD_SEAL_KEY") == 0
    assert "seals checked: 1 seals over 3 rows" in capsys.readouterr().out
    with pytest.raises(InvalidInputError, match="HUB_TEST_NOT_A_KEY decodes to 5 bytes"):
        main("--seal-key-env", "HUB_TEST_NOT_A_KEY")


def test_audit_verify_prints_a_key_id_the_database_holds_escaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Threat T24, and T31's rule for what an operator reads: a seal's key id is whatever someone wrote into the
    database; `verify` names it with its controls escaped, so that a carriage return and an escape sequence cannot
    rewrite the line that says the trail is broken."""
    monkeypatch.setenv(SEAL_KEY_ENV, base64.b64encode(SEAL_SECRET).decode())
    config = write_config(tmp_path, {}, extra=SEALED)
    anyio.run(lambda: trail(config, seal_with=SEAL_SECRET))
    anyio.run(lambda: forged_seal(config, key_id="\r\x1b[2Kintact"))

    assert run_audit(parse_arguments(["audit", "verify"]), load_settings(config)) == 1
    err = capsys.readouterr().err
    assert err.startswith("audit chain broken: seal 2: its MAC is by key \\x0d\\x1b[2Kintact, which was not given")
    assert "\x1b" not in err
    assert "\r" not in err
