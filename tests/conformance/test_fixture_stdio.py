"""The conformance fixture server over stdio, as the hub's stdio connector runs it: the suite itself speaks
only HTTP, so the Python SDK client checks here that the same fixtures answer the same way on a pipe."""

from __future__ import annotations

import json
from typing import Literal

import anyio
import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.conformance.harness import fixture_stdio_command
from tests.fixtures.conformance_server import PROMPTS, TOOLS

SdkEra = Literal["legacy", "2026-07-28"]


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_the_fixture_serves_either_era_over_stdio(era: SdkEra) -> None:
    """Spec-mandated (basic/transports#stdio): one JSON-RPC message per line on stdout; the client's first request
    picks the era. The fixture's lists, tools, resources and prompts answer as over HTTP."""
    command, args = fixture_stdio_command()
    with anyio.fail_after(30):
        async with Client(StdioServerParameters(command=command, args=args), mode=era) as client:
            tools = (await client.list_tools()).tools
            prompts = (await client.list_prompts()).prompts
            called = await client.call_tool("test_simple_text", {})
            read = await client.read_resource("test://template/7/data")
            headers = await client.call_tool("test_request_headers", {})
            negotiated = client.protocol_version
    assert negotiated == ("2025-11-25" if era == "legacy" else "2026-07-28")
    assert [tool.name for tool in tools] == [tool["name"] for tool in TOOLS]
    assert [prompt.name for prompt in prompts] == [prompt["name"] for prompt in PROMPTS]
    assert called.content == [types.TextContent(type="text", text="This is a simple text response for testing.")]
    (content,) = read.contents
    assert isinstance(content, types.TextResourceContents)
    assert json.loads(content.text) == {"id": "7", "templateTest": True, "data": "Data for ID: 7"}
    assert headers.content == [types.TextContent(type="text", text="{}")]
