"""No body makes a 500 (issue 10 §6; threats T14, T26): the request parsing path, with auth on, for an agent
whose grants the guard must check (it reads the body before the SDK does) and for one with `tool:*`.

A JSON document nested deeper than the parser's bound (pydantic-core's, about 200 levels) is a parse error like
any other malformed body: the SDK's `-32700` for `/mcp`, 400 for the JSON endpoints. The hypothesis property
throws deep, wide, invalid-UTF-8, duplicate-key and random bodies at `/mcp` (both eras) and `/oauth/register`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import anyio.to_thread
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.approvals.holding import agent_token
from tests.conftest import (
    RunningHub,
    fault_connector,
    modern_call_body,
    modern_call_headers,
    modern_envelope,
    running_hub,
    unique,
    write_config,
)

pytestmark = pytest.mark.anyio

DEPTH = 100_000


def deep_call(name: str, depth: int) -> bytes:
    """A `tools/call` whose arguments nest `depth` levels deep (written by hand: `json.dumps` would recurse)."""
    head = json.dumps({"jsonrpc": "2.0", "id": 9, "method": "tools/call"})[:-1]
    arguments = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
    params = b'{"name":' + json.dumps(name).encode() + b',"arguments":' + arguments + b',"_meta":'
    return head.encode() + b',"params":' + params + json.dumps(modern_envelope()).encode() + b"}}"


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    config = write_config(tmp_path_factory.mktemp("hardening"), {"faults": fault_connector()}, auth=True)
    async with running_hub(config) as running:
        await running.wait_ready("faults")
        yield running


@pytest.fixture(scope="module")
async def narrow_token(hub: RunningHub) -> str:
    """An agent that may call `faults__echo` only: the guard decides its `tools/call` from the body."""
    return await agent_token(hub, unique("narrow"), "tool:faults__echo")


@pytest.fixture(scope="module")
async def wide_token(hub: RunningHub) -> str:
    return await agent_token(hub, unique("wide"), "tool:*")


@pytest.mark.parametrize("name", ["faults__fail", "faults__echo"])
@pytest.mark.parametrize("grants", ["narrow", "wide"])
async def test_a_body_nested_a_hundred_thousand_levels_deep_is_a_parse_error(
    hub: RunningHub, narrow_token: str, wide_token: str, grants: str, name: str
) -> None:
    """Was HTTP 500 (`RecursionError` in the guard) for an agent without `tool:*`."""
    token = narrow_token if grants == "narrow" else wide_token
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(hub.url, content=deep_call(name, DEPTH), headers=modern_call_headers(name, token))
        still_served = await http.post(
            hub.url,
            content=modern_call_body("faults__echo", {"text": "fine"}),
            headers=modern_call_headers("faults__echo", token),
        )

    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == -32700
    assert still_served.status_code == 200
    assert still_served.json()["result"]["content"][0]["text"] == "fine"


async def test_a_deeply_nested_registration_is_a_bad_request(hub: RunningHub) -> None:
    body = b'{"redirect_uris":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
    async with httpx2.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{hub.base_url}/oauth/register", content=body, headers={"Content-Type": "application/json"}
        )

    assert response.status_code == 400, response.text


def _nested(depth: int, opener: bytes, closer: bytes) -> bytes:
    return opener * depth + closer * depth


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=30,
)


def _envelope_with(arguments: Any) -> bytes:
    return modern_call_body("faults__fail", arguments, request_id=3)


bodies = st.one_of(
    st.integers(1, 300_000).map(lambda depth: _nested(depth, b"[", b"]")),
    st.integers(1, 100_000).map(lambda depth: _nested(depth, b'{"a":', b"}")[:-depth] + b"1" + b"}" * depth),
    st.integers(150, 5_000).map(
        lambda depth: b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + _nested(depth, b"[", b"]") + b"}"
    ),
    st.binary(max_size=200),
    st.binary(min_size=1, max_size=50).map(lambda junk: b'{"jsonrpc":"2.0","method":"' + junk + b'\xff\xfe"}'),
    json_values.map(_envelope_with),
    st.lists(st.integers(), min_size=1000, max_size=5000).map(_envelope_with),
    st.sampled_from(
        [
            b'{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/call","method":"tools/list","params":{}}',
            b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"faults__fail","name":"faults__echo"}}',
            b'[{"jsonrpc":"2.0","id":1,"method":"tools/call"}]',
            b'{"jsonrpc":"2.0","id":{"a":[1]},"method":"tools/call","params":{"name":1}}',
            b"\xef\xbb\xbf{}",
        ]
    ),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies)
def _never_a_server_error(http: httpx2.Client, url: str, token: str, body: bytes) -> None:
    for headers in (
        modern_call_headers("faults__fail", token),
        {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Authorization": f"Bearer {token}",
        },
    ):
        response = http.post(url, content=body, headers=headers)
        assert response.status_code < 500, (response.status_code, body[:200], response.text[:300])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies)
def _registration_never_a_server_error(http: httpx2.Client, url: str, body: bytes) -> None:
    response = http.post(url, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code < 500, (response.status_code, body[:200], response.text[:300])


async def test_no_body_makes_a_server_error(hub: RunningHub, narrow_token: str) -> None:
    """Property (hypothesis): whatever the body, `/mcp` (both eras' headers, the guard reading it first) and
    `/oauth/register` answer below 500. Runs in a worker thread with a blocking client, while the hub serves on
    this event loop."""

    def run() -> None:
        with httpx2.Client(timeout=30) as http:
            _never_a_server_error(http, hub.url, narrow_token)
            _registration_never_a_server_error(http, f"{hub.base_url}/oauth/register")

    await anyio.to_thread.run_sync(run)
