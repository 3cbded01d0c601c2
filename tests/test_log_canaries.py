"""Canaries: secrets the hub holds never reach a log line at any level, a relayed error, or the audit table.

`mcp-hub serve --log-level debug` runs as operators run it (a subprocess; its stderr captured whole: structlog's
lines and every library logger's, SQLAlchemy, aiosqlite, uvicorn's access log and the SDK's included), and is
exercised where secrets pass: a token request, the sign-in page and a signed-in page (CSRF token), a call to a
connector whose downstream echoes its credential back, once in a result and once in a JSON-RPC error, and a
request with an `access_token` query parameter; a stdio downstream writes its own credential on stderr (logged as
the hub's lines, issue 13 §6), and every call gets its log line. Then none of the canaries is in the log.

- T23, T29 (our choice, beyond the threat model's minimum: at every level, library loggers included): the
  signing key's private JWK, a CSRF token, the agent's secret and access token, the connector's secret.
- T30: the connector's own secret, echoed by its downstream, reaches neither the agent (result or error)
  nor the audit trail: `[redacted]` stands in its place; a stdio connector's credential written on its stderr
  is logged as `[redacted]`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcp_hub.config.settings import load_settings
from mcp_hub.domain import Role
from mcp_hub.runtime import admin_tools
from tests.authz.conftest import bearer
from tests.conftest import connector_toml, fault_connector, stop_process, write_config
from tests.test_cli import MCP_HUB, free_port, hub_env, migrate, wait_until_ready
from tests.test_http_downstream import http_fault_server, text_of
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

CONNECTOR_SECRET = "canary-connector-secret-5e1f9a"
QUERY_TOKEN = "canary-query-token-77aa01"
STDIO_SECRET = "canary-stdio-secret-0b3d58"
PASSWORD = "a long enough password 123"


async def test_no_secret_reaches_a_debug_log_a_relayed_error_or_the_audit_table(tmp_path: Path) -> None:
    """T23, T29, T30 (see the module docstring)."""
    downstream_port, port = free_port(), free_port()
    connectors = {
        "web": connector_toml(
            id="web",
            transport="http",
            url=f"http://127.0.0.1:{downstream_port}/mcp",
            headers={"Authorization": "Bearer ${CANARY_WEB_TOKEN}"},
        ),
        "noisy": fault_connector("noisy", env={"FAULT_STDERR": "3", "FAULT_STDERR_SECRET": "${CANARY_STDIO_SECRET}"}),
    }
    config = write_config(tmp_path, connectors, f"[hub]\nlisten_port = {port}\n", auth=True)
    await migrate(config)
    settings = load_settings(config)
    base_url = f"http://127.0.0.1:{port}"
    async with admin_tools(settings) as tools:
        agent = await tools.auth.admin.create_agent("canary-agent", ["tool:web__*"])
        await tools.auth.admin.create_user("canary-approver", Role.APPROVER, PASSWORD)
    assert agent.client_secret is not None

    log_path = tmp_path / "serve.log"
    with http_fault_server(downstream_port), log_path.open("wb") as log:
        process = await anyio.open_process(
            [str(MCP_HUB), "serve", "--config", str(config), "--port", str(port), "--log-level", "debug"],
            stdout=log,
            stderr=log,
            env={**hub_env(), "CANARY_WEB_TOKEN": CONNECTOR_SECRET, "CANARY_STDIO_SECRET": STDIO_SECRET},
        )
        try:
            with anyio.fail_after(60):  # a bound on a busy machine, not a wait
                await wait_until_ready(base_url, process, "web")
                await wait_until_ready(base_url, process, "noisy")
            async with httpx2.AsyncClient(timeout=30) as http:
                issued = await http.post(
                    f"{base_url}/oauth/token",
                    data={"grant_type": "client_credentials", "resource": settings.mcp_resource_url},
                    auth=(agent.agent.client_id, agent.client_secret),
                )
                assert issued.status_code == 200, issued.text
                access_token: str = issued.json()["access_token"]
                signed_in = await sign_in(http, base_url, "canary-approver", PASSWORD, "/approvals")
                assert signed_in.status_code == 303, signed_in.text
                inbox = await http.get(f"{base_url}/approvals")
                csrf = re.search(r'name="csrf" value="([^"]+)"', inbox.text)
                assert csrf is not None, "the signed-in page carries a CSRF token"
                probed = await http.get(f"{base_url}/healthz", params={"access_token": QUERY_TOKEN})
                assert probed.status_code == 200
            async with (
                bearer(access_token) as http,
                Client(streamable_http_client(f"{base_url}/mcp", http_client=http), mode="2026-07-28") as client,
            ):
                echoed = text_of(await client.call_tool("web__headers", {}))
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("web__headers", {"as_error": True})
        finally:
            await stop_process(process)

    async with admin_tools(settings) as tools:
        keys = await tools.stores.keys.signing_keys()
        audit = await tools.stores.audit.recent_audit(limit=1000)
    logged = log_path.read_text(errors="replace")
    canaries = {
        "connector secret": CONNECTOR_SECRET,
        "query token": QUERY_TOKEN,
        "stdio connector's secret": STDIO_SECRET,
        "CSRF token": csrf.group(1),
        "agent secret": agent.client_secret,
        "access token": access_token,
        **{f"signing key {key.kid} d": key.private_jwk["d"] for key in keys},
    }

    assert "[debug" in logged, "the hub logged at debug level"
    assert "/healthz?access_token=[redacted]" in logged, "the access log line is there, its token blanked"
    assert "the secret is [redacted]" in logged, "the stdio downstream's stderr line is there, its secret blanked"
    assert re.search(r"tools/call .*\[mcp_hub\.calls\].* tool=web__headers", logged), "the calls have their log lines"
    assert [name for name, value in canaries.items() if value in logged] == []
    assert json.loads(echoed)["authorization"] == "Bearer [redacted]"
    assert CONNECTOR_SECRET not in str(refused.value)
    assert "Bearer [redacted]" in str(refused.value)
    details = [event.detail or "" for event in audit]
    assert any("Bearer [redacted]" in detail for detail in details)
    assert [detail for detail in details if CONNECTOR_SECRET in detail] == []
