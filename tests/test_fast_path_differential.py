"""One behaviour, two paths (issue 12 §2): the same requests through a hub with the 2026-07-28 fast path
(`mcp_hub.gateway.fast_path`) and through one with `[hub] fast_path = false` (the SDK path) get the same answers.

Real hubs (auth on, an approval rule, a loop limit), the fault fixture over stdio (2025-11-25) and the features
fixture over HTTP at 2026-07-28. Compared: the HTTP status, Content-Type, WWW-Authenticate, Retry-After and the
JSON-RPC messages (SSE events included), with only what must differ normalised (ids the hub mints, timestamps,
sealed states). Threats covered on both paths: T12 (foreign Host and Origin), T14 (header/body mismatch), T27
(a filtered list is private). The fast path is proven taken by its own count (`Hub.fast_path`), never by a mock.
"""

from __future__ import annotations

import gc
import json
import re
import tracemalloc
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from mcp_hub.gateway import fast_path
from tests.approvals.holding import approvals_toml
from tests.authz.conftest import client_credentials_token, make_agent
from tests.conftest import RunningHub, fault_connector, running_hub, write_config
from tests.features import features_connectors, features_over_http, free_port

pytestmark = pytest.mark.anyio

MODERN = "2026-07-28"
LOOP_RULE = '[[limits.loops]]\ntools = ["faults__fail"]\nmax_repeats = 2\nwindow_seconds = 600\n'
# Room for every case: the default per-tool bucket (burst 20, 10/s) ran out within a run once the hub got faster, and
# which side it ran out on depended on timing. Refusals by rate are tested in test_limits.py; the loop rule stays.
ROOMY_BUCKETS = (
    "[limits]\nper_agent = { rate = 1000.0, burst = 1000 }\nper_agent_connector = { rate = 1000.0, burst = 1000 }\n"
    "per_agent_tool = { rate = 1000.0, burst = 1000 }\n"
)
TASKS = "io.modelcontextprotocol/tasks"


def envelope(**extra: Any) -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "differential", "version": "1"},
        **extra,
    }


@dataclass
class Request:
    """One HTTP request to the MCP endpoint: headers (None drops a default one) and a body."""

    body: bytes
    headers: dict[str, str | None]
    method: str = "POST"


def call(
    method: str, params: dict[str, Any], *, name: str | None = None, request_id: Any = 1, **headers: str | None
) -> Request:
    """A well-formed 2026-07-28 request, with `headers` changing the usual ones."""
    usual: dict[str, str | None] = {"Mcp-Method": method}
    named = name if name is not None else params.get("name")
    if named is not None:
        usual["Mcp-Name"] = str(named)
    body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {"_meta": envelope(), **params}}
    return Request(json.dumps(body).encode(), {**usual, **headers})


def raw(body: bytes | str, **headers: str | None) -> Request:
    return Request(body.encode() if isinstance(body, str) else body, {"Mcp-Method": "tools/call", **headers})


async def send(hub: RunningHub, token: str, request: Request, *, client: httpx2.AsyncClient) -> httpx2.Response:
    headers: dict[str, str | None] = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Authorization": f"Bearer {token}",
        **request.headers,
    }
    present = {key: value for key, value in headers.items() if value is not None}
    return await client.request(request.method, hub.url, headers=present, content=request.body)


_MINTED = re.compile(r"[A-Za-z0-9_-]{24,}")
_SECONDS = re.compile(r"after \d+ s")
_HUB_URL = re.compile(r"http://127\.0\.0\.1:\d+")
_MOMENT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def normalised(value: Any) -> Any:
    """What differs between two hubs by construction: their URLs, the ids and states they mint, moments."""
    if isinstance(value, dict):
        return {
            key: "<minted>" if key in ("requestState", "retryAfterSeconds") else normalised(item)
            for key, item in value.items()  # pyright: ignore[reportUnknownVariableType]
        }
    if isinstance(value, list):
        return [normalised(item) for item in value]  # pyright: ignore[reportUnknownVariableType]
    if isinstance(value, str):
        value = _HUB_URL.sub("<hub>", value)
        return _SECONDS.sub("after <n> s", _MOMENT.sub("<moment>", _MINTED.sub("<id>", value)))
    return value


def messages(response: httpx2.Response) -> list[Any]:
    """The JSON-RPC messages of a response: its JSON body, or the data of each SSE event (progress excluded:
    how many are coalesced depends on timing, not on the path)."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        events = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
        return [event for event in events if event.get("method") != "notifications/progress"]
    if not response.content:
        return []
    try:
        return [response.json()]
    except ValueError:
        return [response.text]


def observed(response: httpx2.Response) -> dict[str, Any]:
    return {
        "status": response.status_code,
        "content-type": response.headers.get("content-type"),
        "www-authenticate": normalised(response.headers.get("www-authenticate")),
        "retry-after": "retry-after" in response.headers,
        "messages": normalised(messages(response)),
    }


@dataclass
class Side:
    hub: RunningHub
    token: str
    narrow_token: str


@asynccontextmanager
async def two_hubs(tmp_path: Path) -> AsyncGenerator[tuple[Side, Side]]:
    port = free_port()
    connectors = {
        "faults": fault_connector(call_timeout_seconds=2),
        "fs-modern": features_connectors(port)["fs-modern"],
    }
    # Pages end by bytes (page_max_bytes) before they reach page_size: the bound is cut alike on both paths.
    extra = approvals_toml() + ROOMY_BUCKETS + LOOP_RULE + "[catalog]\npage_size = 12\npage_max_bytes = 1024\n"
    sides: list[Side] = []
    with features_over_http(port):
        async with AsyncExitStack() as stack:
            for fast in (True, False):
                directory = tmp_path / ("fast" if fast else "sdk")
                directory.mkdir()
                config = write_config(
                    directory, connectors, extra + f"[hub]\nfast_path = {str(fast).lower()}\n", auth=True
                )
                hub = await stack.enter_async_context(running_hub(config))
                await hub.wait_ready("faults", "fs-modern")
                token = await client_credentials_token(
                    hub, await make_agent(hub, "agent", "tool:*", "prompt:*", "resource:*")
                )
                narrow = await client_credentials_token(hub, await make_agent(hub, "narrow", "tool:faults__echo"))
                sides.append(Side(hub, token, narrow))
            yield sides[0], sides[1]


def requests() -> list[tuple[str, Request, bool]]:
    """(case, request, whether the narrow agent sends it)."""
    echo = {"name": "faults__echo", "arguments": {"text": "hello"}}
    tasks_meta = envelope(**{"io.modelcontextprotocol/clientCapabilities": {"extensions": {TASKS: {}}}})
    held = {"name": "faults__echo", "arguments": {"text": "rm -rf /"}, "_meta": tasks_meta}
    return [
        ("tools/call", call("tools/call", echo), False),
        ("tools/list", call("tools/list", {}), False),
        ("tools/list filtered (T27)", call("tools/list", {}), True),
        ("prompts/list", call("prompts/list", {}), False),
        ("resources/list", call("resources/list", {}), False),
        ("resources/templates/list", call("resources/templates/list", {}), False),
        ("string id", call("tools/call", {**echo, "arguments": {"text": "id"}}, request_id="abc"), False),
        ("unknown tool", call("tools/call", {"name": "faults__nope"}), False),
        ("outside grants", call("tools/call", {"name": "faults__fail"}), True),
        ("isError", call("tools/call", {"name": "faults__fail"}), False),
        ("JSON-RPC error", call("tools/call", {"name": "faults__rpc_error", "arguments": {"code": -32050}}), False),
        ("downstream rejects", call("tools/call", {"name": "fs-modern__reject", "arguments": {"code": -32044}}), False),
        ("hung downstream", call("tools/call", {"name": "faults__hang"}), False),
        ("held as a task", call("tools/call", held), False),
        ("held, pending", call("tools/call", {"name": "faults__echo", "arguments": {"text": "rm -r /tmp/x"}}), False),
        ("wrong Accept", call("tools/call", echo, Accept="application/json"), False),
        ("no Accept", call("tools/call", {**echo, "arguments": {"text": "no accept"}}, Accept=None), False),
        ("wrong Content-Type", call("tools/call", echo, **{"Content-Type": "text/plain"}), False),
        ("bad Host (T12)", call("tools/call", echo, Host="evil.example"), False),
        ("bad Origin (T12)", call("tools/call", echo, Origin="http://evil.example"), False),
        ("no MCP-Protocol-Version", call("tools/call", echo, **{"MCP-Protocol-Version": None}), False),
        ("no Mcp-Method", call("tools/call", echo, **{"Mcp-Method": None}), False),
        ("Mcp-Method mismatch (T14)", call("tools/call", echo, **{"Mcp-Method": "tools/list"}), False),
        ("Mcp-Name mismatch (T14)", call("tools/call", echo, **{"Mcp-Name": "faults__fail"}), False),
        ("no Mcp-Name", call("tools/call", echo, **{"Mcp-Name": None}), False),
        (
            "version header vs _meta",
            call(
                "tools/call", {**echo, "_meta": {**envelope(), "io.modelcontextprotocol/protocolVersion": "2026-01-01"}}
            ),
            False,
        ),
        (
            "no clientCapabilities",
            call("tools/call", {**echo, "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}}),
            False,
        ),
        (
            "unsupported version",
            call(
                "tools/call",
                {**echo, "_meta": {**envelope(), "io.modelcontextprotocol/protocolVersion": "2099-01-01"}},
                **{"MCP-Protocol-Version": "2099-01-01"},
            ),
            False,
        ),
        ("name not a string", call("tools/call", {"name": 5}, name="5"), False),
        ("arguments not an object", call("tools/call", {"name": "faults__echo", "arguments": [1]}), False),
        ("cursor not a string", call("tools/list", {"cursor": 5}), False),
        ("bad cursor", call("tools/list", {"cursor": "not-a-cursor"}), False),
        ("bad progress token", call("tools/call", {**echo, "_meta": {**envelope(), "progressToken": True}}), False),
        (
            "bad clientInfo",
            call("tools/call", {**echo, "_meta": {**envelope(), "io.modelcontextprotocol/clientInfo": 5}}),
            False,
        ),
        ("unknown params field", call("tools/call", {**echo, "extra": 1}), False),
        ("malformed JSON", raw("{not json"), False),
        ("batch", raw(json.dumps([json.loads(call("tools/call", echo).body)])), False),
        (
            "notification",
            raw(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})),
            False,
        ),
        ("jsonrpc 1.0", raw(json.dumps({**json.loads(call("tools/call", echo).body), "jsonrpc": "1.0"})), False),
        ("boolean id", raw(json.dumps({**json.loads(call("tools/call", echo).body), "id": True})), False),
        ("no params", raw(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call"})), False),
        ("extra member", raw(json.dumps({**json.loads(call("tools/call", echo).body), "x": 1})), False),
        # The fast path remembers its verdict per set of transport headers: a refusal stays one after good requests.
        ("bad Host again (T12)", call("tools/call", echo, Host="evil.example"), False),
        ("bad Origin again (T12)", call("tools/call", echo, Origin="http://evil.example"), False),
        ("duplicate Mcp-Method", call("tools/call", echo), False),
        ("GET", Request(b"", {}, method="GET"), False),
        ("loop 1", call("tools/call", {"name": "faults__fail", "arguments": {"n": 1}}), False),
        ("loop 2", call("tools/call", {"name": "faults__fail", "arguments": {"n": 1}}), False),
        ("loop 3: 429", call("tools/call", {"name": "faults__fail", "arguments": {"n": 1}}), False),
        (
            "a log entry (SSE)",
            call(
                "tools/call",
                {
                    "name": "fs-modern__log",
                    "arguments": {"level": "error", "text": "x"},
                    "_meta": envelope(**{"io.modelcontextprotocol/logLevel": "info"}),
                },
            ),
            False,
        ),
        (
            "progress (SSE)",
            call(
                "tools/call",
                {"name": "faults__slow", "arguments": {"seconds": 0.2}, "_meta": envelope(progressToken="p1")},
            ),
            False,
        ),
    ]


FAST_CASES = {
    "tools/call",
    "tools/list",
    "tools/list filtered (T27)",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "string id",
    "unknown tool",
    "isError",
    "JSON-RPC error",
    "downstream rejects",
    "hung downstream",
    "held as a task",
    "held, pending",
    "bad cursor",
    "no Accept",  # the client's default Accept: */*
    "unknown params field",  # through the SDK's own validation, which lets it pass
    "loop 1",
    "loop 2",
    "a log entry (SSE)",
    "progress (SSE)",
}
"""The cases the fast path serves itself (the rest are refused before it: by the guard, or by the SDK)."""


async def test_the_fast_path_answers_as_the_sdk_path_does(tmp_path: Path) -> None:
    async with two_hubs(tmp_path) as (fast, sdk):
        assert fast.hub.hub.fast_path.served == 0
        differences: list[str] = []
        served_fast: set[str] = set()
        pages_from_cache: set[str] = set()
        async with httpx2.AsyncClient(timeout=30) as client:
            for case, request, narrow in requests():
                answers: list[dict[str, Any]] = []
                before = fast.hub.hub.fast_path.served
                pages_before = fast.hub.hub.fast_path.pages_written
                for side in (fast, sdk):
                    if case == "duplicate Mcp-Method":
                        response = await _with_duplicate_header(side, client, request)
                    else:
                        response = await send(
                            side.hub, side.narrow_token if narrow else side.token, request, client=client
                        )
                    answers.append(observed(response))
                if fast.hub.hub.fast_path.served > before:
                    served_fast.add(case)
                if fast.hub.hub.fast_path.pages_written > pages_before:
                    pages_from_cache.add(case)
                if answers[0] != answers[1]:
                    differences.append(f"{case}:\n  fast: {answers[0]}\n  sdk:  {answers[1]}")
            for paging in (_second_page, _input_required_round_trip, _on_a_profile):
                pair = [await paging(side, client) for side in (fast, sdk)]
                if pair[0] != pair[1]:
                    differences.append(f"{paging.__name__}:\n  fast: {pair[0]}\n  sdk:  {pair[1]}")
        assert not differences, "\n".join(differences)
        # Taken for what it serves, not for what it passes on to the SDK, never on the hub that has it off.
        assert served_fast == FAST_CASES
        # Lists are written from the page cache's JSON, not serialised again (issue 12 §1).
        assert pages_from_cache == {case for case in FAST_CASES if "/list" in case}
        assert sdk.hub.hub.fast_path.served == 0


@pytest.mark.parametrize("sent", ["Accept", "_meta"])
async def test_the_fast_path_keeps_nothing_large_it_was_sent(tmp_path: Path, sent: str) -> None:
    """Threat T26, our choice: the fast path remembers its transport verdict per set of header values and its
    validation of `_meta` per distinct `_meta`, but large ones (a head may have `[hub] max_header_bytes`, up to
    1 MiB; a body 4 MiB) are judged each time and not kept, so no client can make it hold up to a thousand of them.
    After calls with eight distinct 512 KiB Accept fields, or `_meta` objects, it holds none of that memory."""
    config = write_config(tmp_path, {"faults": fault_connector()}, "[hub]\nmax_header_bytes = 1048576\n")
    large = "x" * (1 << 19)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        tracemalloc.start()
        try:
            async with httpx2.AsyncClient(timeout=30) as client:
                for n in range(8):
                    meta = envelope(**({"x-large": f"{n}{large}"} if sent == "_meta" else {}))
                    echo = call("tools/call", {"name": "faults__echo", "arguments": {"text": "big"}, "_meta": meta})
                    accept = "application/json, text/event-stream" + (
                        f", text/x-{n}{large}" if sent == "Accept" else ""
                    )
                    headers = {**echo.headers, "Accept": accept, "Authorization": None}  # authentication is off
                    response = await send(hub, "", Request(echo.body, headers), client=client)
                    assert response.status_code == 200, response.text
            gc.collect()
            kept = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, fast_path.__file__)])
        finally:
            tracemalloc.stop()
        assert hub.hub.fast_path.served == 8
    assert sum(stat.size for stat in kept.statistics("filename")) < len(large)


async def _with_duplicate_header(side: Side, client: httpx2.AsyncClient, request: Request) -> httpx2.Response:
    headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", MODERN),
        ("Authorization", f"Bearer {side.token}"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "faults__echo"),
    ]
    return await client.post(side.hub.url, headers=headers, content=request.body)


async def _second_page(side: Side, client: httpx2.AsyncClient) -> dict[str, Any]:
    first = (await send(side.hub, side.token, call("tools/list", {}), client=client)).json()
    assert len(first["result"]["tools"]) < side.hub.hub.settings.catalog.page_size  # ended by page_max_bytes
    cursor = first["result"]["nextCursor"]
    return observed(await send(side.hub, side.token, call("tools/list", {"cursor": cursor}), client=client))


async def _on_a_profile(side: Side, client: httpx2.AsyncClient) -> list[dict[str, Any]]:
    """A connector's profile (`/mcp/s/<id>`, its own names) is the same server: the fast path serves it too."""
    served = side.hub.hub.fast_path.served
    profile = RunningHub(side.hub.hub, f"{side.hub.url}/s/faults", side.hub.base_url)
    answers = [
        observed(
            await send(
                profile, side.token, call("tools/call", {"name": "echo", "arguments": {"text": "p"}}), client=client
            )
        ),
        observed(await send(profile, side.token, call("tools/list", {}), client=client)),
    ]
    expected = 2 if side.hub.hub.settings.hub.fast_path else 0
    assert side.hub.hub.fast_path.served == served + expected
    return answers


async def _input_required_round_trip(side: Side, client: httpx2.AsyncClient) -> list[dict[str, Any]]:
    capabilities: dict[str, Any] = {"elicitation": {"form": {}}}
    meta = envelope(**{"io.modelcontextprotocol/clientCapabilities": capabilities})
    asked = {"name": "fs-modern__ask", "arguments": {"question": "colour?"}, "_meta": meta}
    first = await send(side.hub, side.token, call("tools/call", asked), client=client)
    result = first.json()["result"]
    assert result["resultType"] == "input_required", result
    (key,) = result["inputRequests"]
    retry = {
        **asked,
        "inputResponses": {key: {"action": "accept", "content": {"answer": "blue"}}},
        "requestState": result["requestState"],
    }
    second = await send(side.hub, side.token, call("tools/call", retry), client=client)
    replayed = await send(side.hub, side.token, call("tools/call", retry), client=client)
    return [observed(first), observed(second), observed(replayed)]


async def _cancelled_downstream(side: Side, key: str) -> str:
    """Disconnect during a slow call once its first progress arrived; what the downstream saw."""
    slow = {"name": "faults__slow", "arguments": {"seconds": 20, "key": key}, "_meta": envelope(progressToken=key)}
    request = call("tools/call", slow)
    async with httpx2.AsyncClient(timeout=30) as client:
        async with anyio.create_task_group() as tasks:

            async def stream() -> None:
                headers = {
                    "Content-Type": "application/json",
                    "Accept": "application/json, text/event-stream",
                    "MCP-Protocol-Version": MODERN,
                    "Authorization": f"Bearer {side.token}",
                    **{k: v for k, v in request.headers.items() if v is not None},
                }
                async with client.stream("POST", side.hub.url, headers=headers, content=request.body) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data:") and "notifications/progress" in line:
                            tasks.cancel_scope.cancel()

            tasks.start_soon(stream)
        waited = call("tools/call", {"name": "faults__wait_cancelled", "arguments": {"key": key}})
        with anyio.fail_after(10):
            response = await send(side.hub, side.token, waited, client=client)
    text: str = response.json()["result"]["content"][0]["text"]
    return text


async def test_a_client_that_goes_away_cancels_the_downstream_call_on_both_paths(tmp_path: Path) -> None:
    async with two_hubs(tmp_path) as (fast, sdk):
        served = fast.hub.hub.fast_path.served
        assert await _cancelled_downstream(fast, "fast") == "cancelled"
        assert await _cancelled_downstream(sdk, "sdk") == "cancelled"
        assert fast.hub.hub.fast_path.served == served + 2
