"""What held a call, recorded when it was held, against rules an admin edited since (issue 13 §3; threat T31).

Calls are held by a real hub under one set of rules; the admin edits `config.toml` and the connector file and the
hub restarts on the same database (`holding.rules_edited_after_holding`). The JSON API and `mcp-hub approvals show`
(a process of its own, reading the edited files) must still name the rules that held each call, and say plainly
that the rules have changed. An action stored before the record existed is explained by the rules as they read now,
labelled so. The approver's page in a real browser: tests/approvals/test_web_approvals.py. Our design: MCP leaves
human approval to the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from tests.approvals.holding import (
    EditedRules,
    agent_token,
    approval_config,
    approval_hub,
    held_call,
    rules_edited_after_holding,
)
from tests.approvals.test_approvals_cli import hub_env, mcp_hub
from tests.cli_process import run_cli
from tests.conftest import fault_connector
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

PASSWORD = "a long enough password 123"
"""`holding.approver`'s password."""
DEPLOYS = (
    "tool `faults__echo` matches `faults__echo`",
    'argument `text` = "deploy 1.2" matches /^deploy /',
)
ALL_ECHOES = (
    "tool `faults__echo` matches `faults__echo`",
    "the rule holds every such call, whatever the arguments",
)


@pytest.fixture(scope="module")
async def edited(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[EditedRules]:
    """One hold and one edit for the module: the tests only read what the restarted hub says."""
    async with rules_edited_after_holding(tmp_path_factory.mktemp("edited")) as edited:
        yield edited


async def shown_by_api(edited: EditedRules, action_id: str) -> dict[str, Any]:
    async with edited.hub.client(base_url=edited.hub.base_url) as client:
        signed_in = await sign_in(client, edited.hub.base_url, "alice", PASSWORD, "/approvals")
        assert signed_in.status_code == 303, signed_in.text
        response = await client.get(f"/api/approvals/{action_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_api_names_the_rule_that_held_a_call_and_says_the_rules_changed(edited: EditedRules) -> None:
    """Held by `deploys`, which the edit removed, and held now by `all-echoes`: both are said, the first as what
    held it."""
    shown = await shown_by_api(edited, edited.deploy)

    assert shown["rules"] == ["deploys"]
    assert shown["why"] == [{"rule": "deploys", "because": list(DEPLOYS)}]
    assert shown["why_recorded"] is True
    assert shown["rules_changed"] == {
        "summary": "The rules have changed since this call was held. As they read now:",
        "changes": [
            "rule `deploys` no longer holds it",
            "rule `all-echoes` holds it now: " + "; ".join(ALL_ECHOES),
        ],
        "now": [{"rule": "all-echoes", "because": list(ALL_ECHOES)}],
    }


async def test_a_call_held_by_a_connectors_sensitive_tools_says_so_after_they_were_taken_out(
    edited: EditedRules,
) -> None:
    """The connector's `sensitive_tools` held it; the edit took them out, so nothing would hold it now."""
    shown = await shown_by_api(edited, edited.pid)

    assert shown["why"] == [
        {
            "rule": "sensitive:faults",
            "because": ["connector `faults` lists `pid` in its sensitive_tools, which matches its tool `pid`"],
        }
    ]
    assert shown["rules_changed"] == {
        "summary": "The rules have changed since this call was held: as they read now, none would hold it.",
        "changes": [],
        "now": [],
    }


async def test_an_action_stored_before_the_record_is_explained_by_the_rules_as_they_read_now(
    edited: EditedRules,
) -> None:
    """Nothing was recorded (as for every action stored before migration 0013): today's explanation, labelled."""
    shown = await shown_by_api(edited, edited.unrecorded)

    assert shown["rules"] == ["deploys"]
    assert shown["why"] == [{"rule": "all-echoes", "because": list(ALL_ECHOES)}]
    assert shown["why_recorded"] is False
    assert shown["rules_changed"] is None


async def test_the_command_line_shows_what_held_the_call_and_what_changed(edited: EditedRules) -> None:
    """`mcp-hub approvals show` reads the edited files: it says what held each call and how the rules differ now."""
    deploy = await mcp_hub(edited.config, "approvals", "show", edited.deploy)
    pid = await mcp_hub(edited.config, "approvals", "show", edited.pid)
    unrecorded = await mcp_hub(edited.config, "approvals", "show", edited.unrecorded)
    as_json = await mcp_hub(edited.config, "approvals", "show", edited.deploy, "--json")

    assert deploy.returncode == 0, deploy.stderr
    told = deploy.stdout.decode()
    assert (
        "held by:     Recorded when the call was held.\n"
        f"             deploys: {'; '.join(DEPLOYS)}\n"
        "rules now:   The rules have changed since this call was held. As they read now:\n"
        "             - rule `deploys` no longer holds it\n"
        f"             - rule `all-echoes` holds it now: {'; '.join(ALL_ECHOES)}\n"
    ) in told
    assert (
        "             sensitive:faults: connector `faults` lists `pid` in its sensitive_tools, which matches its tool "
        "`pid`\nrules now:   The rules have changed since this call was held: as they read now, none would hold it.\n"
    ) in pid.stdout.decode()
    assert (
        "held by:     As the rules read now: this action was held before the hub recorded why, so these may not be "
        f"the rules that held it.\n             all-echoes: {'; '.join(ALL_ECHOES)}\n"
    ) in unrecorded.stdout.decode()
    assert "rules now:" not in unrecorded.stdout.decode()
    shown = json.loads(as_json.stdout)
    assert shown["why"] == [{"rule": "deploys", "because": list(DEPLOYS)}]
    assert shown["rules_changed"]["changes"][0] == "rule `deploys` no longer holds it"


async def test_the_command_line_needs_no_connector_secret_to_compare_the_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threat T31 (an approver is never told what is not so), our choice: `approvals show` compares what held a call
    with the connectors' `sensitive_tools`, which need none of the secrets a connector file references. Run where
    those are not set (an operator's shell, not the hub's environment), it still reads the connector, so a call its
    `sensitive_tools` held, under rules nobody edited, is not said to be held by changed rules."""
    monkeypatch.setenv("FAULTS_TOKEN", "a secret only the hub's environment has")
    connector = fault_connector(sensitive_tools=["pid"], env={"TOKEN": "${FAULTS_TOKEN}"})
    config = approval_config(tmp_path, rules="", connector=connector)
    async with approval_hub(config) as hub:
        pid = await held_call(hub, await agent_token(hub, "deployer"), "faults__pid", {})
    without_secret = {key: value for key, value in hub_env().items() if key != "FAULTS_TOKEN"}

    shown = await run_cli(["approvals", "show", pid, "--config", str(config)], env=without_secret, within_seconds=40)

    assert shown.returncode == 0, shown.stderr
    told = shown.stdout.decode()
    assert "held by:     Recorded when the call was held.\n             sensitive:faults: " in told
    assert "rules now:" not in told
