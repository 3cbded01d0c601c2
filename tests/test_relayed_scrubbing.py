"""The hub's own secret values never reach a caller through a downstream's log entries or questions (issue 10 §6;
threat T30). Results and errors are covered by `tests/test_log_canaries.py` and `tests/test_credentials.py`.

The downstream (`tests/fixtures/features_server.py` over stdio) is given a secret through a `${VAR}` reference in
its environment, as a connector's credential would be; the test makes it quote that value in a log entry and in
an elicitation's message, and checks what the caller receives, in both eras.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.conftest import RunningHub, connector_toml, running_hub, write_config
from tests.features import FEATURES_SERVER, PYTHON

pytestmark = pytest.mark.anyio

CANARY = "canary-secret-7f3a9c21d4"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FS_CANARY_TOKEN", CANARY)
        connector = connector_toml(
            id="fs",
            transport="stdio",
            protocol="legacy",
            command=PYTHON,
            args=[str(FEATURES_SERVER)],
            env={"FS_CANARY_TOKEN": "${FS_CANARY_TOKEN}"},
        )
        config = write_config(tmp_path_factory.mktemp("scrubbing"), {"fs": connector})
        async with running_hub(config) as running:
            await running.wait_ready("fs")
            yield running


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_log_entry_quoting_the_secret_reaches_the_caller_redacted(hub: RunningHub, era: str) -> None:
    received: list[Any] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append(params.data)

    async with Client(hub.url, mode=era, log_level="debug", logging_callback=on_log) as client:
        if era == "legacy":
            with pytest.warns(MCPDeprecationWarning):  # deprecated by 2026-07-28, still the 2025-11-25 way
                await client.set_logging_level("debug")  # pyright: ignore[reportDeprecated]
        await client.call_tool("fs__log", {"level": "error", "text": f"the token is {CANARY}"})

    assert received == ["the token is [redacted]"]


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_a_question_quoting_the_secret_reaches_the_caller_redacted(hub: RunningHub, era: str) -> None:
    asked: list[str] = []

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"answer": "no"})

    async with Client(hub.url, mode=era, elicitation_callback=elicit) as client:
        await client.call_tool("fs__ask", {"question": f"may I use {CANARY}?"})

    assert asked == ["may I use [redacted]?"]
