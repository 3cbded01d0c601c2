"""Downstream credentials stay in the hub; the agent's never go downstream (T01, T23)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import connector_toml, running_hub, write_config
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

CANARY = "canary-downstream-secret-5d1e"
AGENT_TOKEN = "agent-bearer-token-93ab"


def text_of(result: types.CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    return first.text


async def test_the_downstream_gets_the_hubs_credential_and_never_the_agents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T01, spec (security best practices: no token passthrough): the agent's Authorization stays at the hub.
    The downstream echoes the credential it got, which the hub scrubs on the way back (T30): the agent reads
    `Bearer [redacted]`, which shows the downstream had the hub's own credential."""
    monkeypatch.setenv("WEB_TOKEN", CANARY)
    port = free_port()
    connector = connector_toml(
        id="web",
        transport="http",
        url=f"http://127.0.0.1:{port}/mcp",
        headers={"Authorization": "Bearer ${WEB_TOKEN}"},
    )
    config = write_config(tmp_path, {"web": connector})
    with http_fault_server(port):
        async with running_hub(config) as running:
            await running.wait_ready(within_seconds=30)
            agent_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {AGENT_TOKEN}"})
            async with (
                agent_http,
                Client(streamable_http_client(running.url, http_client=agent_http), mode="2026-07-28") as client,
            ):
                result = await client.call_tool("web__headers", {})
            report = running.hub.health_report()
    seen = json.loads(text_of(result))
    assert seen["authorization"] == "Bearer [redacted]"
    assert CANARY not in text_of(result)
    assert AGENT_TOKEN not in text_of(result)
    assert CANARY not in json.dumps(report)


def test_an_expanded_secret_never_appears_in_the_hubs_output(tmp_path: Path) -> None:
    """T23: a connector that fails to connect is reported without its credential."""
    connector = connector_toml(
        id="web",
        transport="http",
        url=f"http://127.0.0.1:{free_port()}/mcp",
        headers={"Authorization": "Bearer ${WEB_TOKEN}", "X-Api-Key": "${WEB_TOKEN}"},
    )
    config = write_config(tmp_path, {"web": connector})
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "mcp_hub",
            "connectors",
            "check",
            "web",
            "--config",
            str(config),
            "--log-level",
            "debug",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "WEB_TOKEN": CANARY},
        check=False,
    )
    assert completed.returncode == 1
    assert "web" in completed.stdout
    assert CANARY not in completed.stdout + completed.stderr
