"""Metrics and traces (issue 13 §4, §5; docs/observability.md).

`/metrics` is scraped after known traffic from real SDK clients (both eras) through a real hub to the fault
fixture server: ok calls, calls refused by scope, a rate-limited call, a cache miss and hit, a held call a human
approves. Traces go to the in-memory exporter of the OpenTelemetry SDK; what reached the downstream is what the
fixture's `meta` tool (stdio: `_meta`) and `headers` tool (HTTP: the request's headers) report.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from mcp_hub.config.settings import load_settings
from mcp_hub.errors import ConfigError
from mcp_hub.telemetry.metrics import OTHER, HubMetrics
from mcp_hub.telemetry.tracing import Tracing
from tests.approvals.holding import approvals_toml, approver
from tests.approvals.test_hold import NewActions
from tests.authz.conftest import bearer, client_credentials_token, make_agent
from tests.conftest import (
    RunningHub,
    connector_toml,
    fault_connector,
    in_process_hub,
    running_hub,
    write_config,
)
from tests.test_http_downstream import free_port, http_fault_server

pytestmark = pytest.mark.anyio

TOKEN = "scrape-token-of-this-test-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"

METRICS_TOML = """
[metrics]
enabled = true
token_file = "metrics-token"
"""
TRAFFIC_TOML = """
[[limits.agents]]
agent = "limited"
per_agent = { rate = 0.001, burst = 1 }

[[cache.rules]]
tools = ["faults__counted"]
ttl_seconds = 60
"""


def metrics_config(directory: Path, extra: str = "", **connectors: str) -> Path:
    (directory / "metrics-token").write_text(TOKEN + "\n")
    return write_config(directory, connectors or {"faults": fault_connector()}, METRICS_TOML + extra, auth=True)


async def scrape(hub: RunningHub) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of `/metrics`, by sample name: (labels, value)."""
    async with httpx2.AsyncClient(timeout=30) as client:
        response = await client.get(f"{hub.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    """The one sample `name` whose labels include `labels` (0 when there is none)."""
    matching = [v for found, v in samples.get(name, []) if labels.items() <= found.items()]
    assert len(matching) <= 1, f"{name}{labels} matches {len(matching)} samples"
    return matching[0] if matching else 0.0


async def call(hub: RunningHub, token: str, era: str, tool: str, arguments: dict[str, Any]) -> types.CallToolResult:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        return await client.call_tool(tool, arguments)


async def refused_call(hub: RunningHub, token: str, era: str, tool: str) -> None:
    async with bearer(token) as http, Client(streamable_http_client(hub.url, http_client=http), mode=era) as client:
        with pytest.raises(MCPError):
            await client.call_tool(tool, {})


async def call_approved(hub: RunningHub, token: str, arguments: dict[str, Any]) -> types.CallToolResult:
    """A held call (legacy era, waiting) that an approver approves as soon as it is pending."""
    actions = NewActions(hub)
    alice = await approver(hub)
    answers: list[types.CallToolResult] = []

    async def held() -> None:
        answers.append(await call(hub, token, "legacy", "faults__echo", arguments))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(held)
        await hub.hub.approvals.decide((await actions.next()).id, alice, approve=True, reason=None)
    return answers[0]


@pytest.fixture
async def metrics_hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    config = metrics_config(tmp_path, approvals_toml(hold_seconds=20) + TRAFFIC_TOML)
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        yield hub


async def test_a_scrape_after_known_traffic_shows_exactly_that_traffic(metrics_hub: RunningHub) -> None:
    """Issue 13 §4 (our choice of names and labels, docs/observability.md): calls by connector, tool, agent and
    outcome; scope refusals; a rate-limited call; a cache miss and hit; an approval requested, approved and timed;
    tokens by grant type; hub-added and downstream histograms observed once per forwarded call. Threats T10, T21."""
    hub = metrics_hub
    worker = await make_agent(hub, "worker", "tool:faults__echo", "tool:faults__counted")
    limited = await make_agent(hub, "limited", "tool:faults__echo")
    worker_token = await client_credentials_token(hub, worker)
    limited_token = await client_credentials_token(hub, limited)

    for era in ("2026-07-28", "2026-07-28", "2026-07-28", "legacy", "legacy"):
        assert not (await call(hub, worker_token, era, "faults__echo", {"text": "hello"})).is_error
    for era in ("2026-07-28", "legacy"):  # outside the worker's grants
        await refused_call(hub, worker_token, era, "faults__pid")
    assert not (await call(hub, limited_token, "legacy", "faults__echo", {"text": "one"})).is_error
    assert (await call(hub, limited_token, "legacy", "faults__echo", {"text": "two"})).is_error  # the bucket is empty
    first = await call(hub, worker_token, "legacy", "faults__counted", {"key": "k"})
    again = await call(hub, worker_token, "legacy", "faults__counted", {"key": "k"})
    assert first.content == again.content  # the second answered from the cache
    approved = await call_approved(hub, worker_token, {"text": "rm -rf /srv"})
    assert not approved.is_error

    await hub.hub.audit.flush()
    samples = await scrape(hub)
    calls = "mcp_hub_calls_total"
    echo = {"method": "tools/call", "connector": "faults", "tool": "faults__echo"}
    assert value(samples, calls, **echo, agent="worker", outcome="ok") == 5 + 1  # and the approved one
    assert value(samples, calls, tool="faults__pid", agent="worker", outcome="forbidden") == 2
    assert value(samples, calls, **echo, agent="limited", outcome="ok") == 1
    assert value(samples, calls, **echo, agent="limited", outcome="rate_limited") == 1
    assert value(samples, calls, tool="faults__counted", agent="worker", outcome="ok") == 2
    assert sum(v for _, v in samples[calls]) == 6 + 2 + 1 + 1 + 2
    assert value(samples, "mcp_hub_limit_refusals_total", limit="rate_limited") == 1
    assert value(samples, "mcp_hub_cache_requests_total", result="miss") == 1
    assert value(samples, "mcp_hub_cache_requests_total", result="hit") == 1
    assert value(samples, "mcp_hub_tokens_issued_total", grant_type="client_credentials") == 2
    assert value(samples, "mcp_hub_approvals_requested_total") == 1
    assert value(samples, "mcp_hub_approvals_decided_total", decision="approved") == 1
    assert value(samples, "mcp_hub_approval_decision_seconds_count") == 1
    assert value(samples, "mcp_hub_approvals_pending") == 0
    forwarded = 6 + 1 + 1  # echo by worker (with the approved one), by limited, the cache's one miss
    where = {"method": "tools/call", "connector": "faults"}
    assert value(samples, "mcp_hub_call_downstream_seconds_count", **where) == forwarded
    assert value(samples, "mcp_hub_call_hub_seconds_count", **where) == forwarded
    assert value(samples, "mcp_hub_call_downstream_seconds_sum", **where) > 0
    assert value(samples, "mcp_hub_connector_health", connector="faults", state="ready") == 1
    assert value(samples, "mcp_hub_connector_breaker", connector="faults", state="closed") == 1
    assert value(samples, "mcp_hub_audit_queue_depth") == 0
    assert value(samples, "process_cpu_seconds_total") > 0

    events = await hub.hub.stores.audit.recent_audit(limit=100)
    timed = [event for event in events if event.downstream_ms is not None]
    assert len(timed) == forwarded
    assert all(0 < (event.downstream_ms or 0) <= event.latency_ms for event in timed)


async def test_metrics_are_refused_without_the_token_or_with_a_wrong_one(tmp_path: Path) -> None:
    """Our choice (issue 13 §4): `/metrics` wants `Authorization: Bearer <token>`; anything else is 401 with a
    bearer challenge (RFC 6750 §3) and no metric in the body. Threat T23 (nothing of the hub's state leaks)."""
    async with in_process_hub(metrics_config(tmp_path)) as hub, hub.client() as client:
        refused = [
            await client.get("/metrics"),
            await client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
            await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}x"}),
            await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}),
            await client.get("/metrics", headers={"Authorization": TOKEN}),
        ]
        accepted = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    for response in refused:
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "mcp_hub" not in response.text
    assert accepted.status_code == 200
    assert "mcp_hub_calls_total" in accepted.text or "# TYPE mcp_hub_calls counter" in accepted.text


async def test_metrics_on_an_admin_listener_are_served_there_and_not_on_the_hubs(tmp_path: Path) -> None:
    """Our choice (issue 13 §4): `[metrics] listen_host` moves `/metrics` to a listener of its own (an admin
    address a scraper reaches and agents do not); the hub's own listener then has no `/metrics`."""
    listener = '\n[metrics]\nenabled = true\nlisten_host = "127.0.0.1"\nlisten_port = 0\n'
    config = write_config(tmp_path, {}, listener)
    async with in_process_hub(config) as hub, hub.client() as client:
        assert (await client.get("/metrics")).status_code == 404
        assert hub.hub.metrics_address is not None
        host, port = hub.hub.metrics_address
        async with httpx2.AsyncClient(timeout=10) as admin:
            scraped = await admin.get(f"http://{host}:{port}/metrics")
            # T26: bounded as the hub's own listener is (`[hub] max_header_bytes`, 64 KiB by default)
            oversized = await admin.get(f"http://{host}:{port}/metrics", headers={"X-Big": "a" * 100_000})
    assert scraped.status_code == 200
    assert "mcp_hub_audit_queue_depth" in scraped.text
    assert oversized.status_code == 431


async def test_metrics_without_a_token_are_refused_at_start_on_a_public_address(tmp_path: Path) -> None:
    """Our choice (fail closed, like auth off): an open `/metrics` only on loopback; with a token, or on a loopback
    admin listener, the same settings load."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[hub]\nlisten_host = "0.0.0.0"\n[metrics]\nenabled = true\ntoken_env = "MCP_HUB_TEST_UNSET_TOKEN"\n'
    )
    with pytest.raises(ConfigError, match=r"metrics\.enabled = true without a token"):
        load_settings(config)
    config.write_text(
        '[hub]\nlisten_host = "0.0.0.0"\n[metrics]\nenabled = true\ntoken_env = "MCP_HUB_TEST_UNSET_TOKEN"\n'
        'listen_host = "127.0.0.1"\n'
    )
    assert load_settings(config).metrics_host == "127.0.0.1"
    (tmp_path / "token").write_text("secret-scrape-token\n")
    config.write_text('[hub]\nlisten_host = "0.0.0.0"\n[metrics]\nenabled = true\ntoken_file = "token"\n')
    assert load_settings(config).metrics_token == "secret-scrape-token"


def test_agent_and_tool_labels_beyond_the_caps_are_counted_as_other() -> None:
    """Our choice (bounded cardinality, docs/observability.md): the first agents and tools keep their names,
    later ones share the label `other`; nothing is lost from the totals."""
    metrics = HubMetrics(max_agent_labels=2, max_tool_labels=3, process=False)
    for agent in ("a", "b", "c", "d"):
        for tool in ("t1", "t2", "t3", "t4", "t5"):
            metrics.observe_audit(_Event(client=f"agent:{agent} for user:u", public_name=tool))
    counts = {(s.labels["agent"], s.labels["tool"]): s.value for s in _samples(metrics, "mcp_hub_calls_total")}
    assert set(counts) == {(agent, tool) for agent in ("a", "b", OTHER) for tool in ("t1", "t2", "t3", OTHER)}
    assert counts["a", "t1"] == 1
    assert counts[OTHER, OTHER] == 2 * 2
    assert sum(counts.values()) == 20


def test_an_admins_change_is_not_counted_as_a_call() -> None:
    """Our choice (docs/observability.md: `mcp_hub_calls_total` counts MCP requests): the audit rows of admin
    changes (`admin/<resource>.<verb>`, by `user:<name>`) pass the same observer but are not calls."""
    metrics = HubMetrics(process=False)
    change = _Event(client="user:alice", public_name="agent-1")
    change.method = "admin/agents.create"
    metrics.observe_audit(change)
    metrics.observe_audit(_Event(client="agent:bot", public_name="t1"))
    calls = [(s.labels["method"], s.value) for s in _samples(metrics, "mcp_hub_calls_total")]
    assert calls == [("tools/call", 1)]


def test_records_an_audit_sink_dropped_are_a_counter_per_sink_read_at_scrape() -> None:
    """Our choice (docs/observability.md): a sink that drops stored records (queue full, delivery given up) is
    seen on /metrics, not only in one log line per episode."""
    metrics = HubMetrics(process=False)
    dropped = {"webhook": 0, "syslog": 0}
    metrics.watch_audit_sinks(lambda: dropped)
    dropped["webhook"] = 7
    counts = {s.labels["sink"]: s.value for s in _samples(metrics, "mcp_hub_audit_sink_dropped_total")}
    assert counts == {"webhook": 7, "syslog": 0}


def test_the_grafana_dashboard_asks_only_for_metrics_the_hub_exposes() -> None:
    """Our choice: docs/grafana-dashboard.json is built on the names of docs/observability.md; a renamed metric
    must not leave a dashboard panel empty."""
    metrics = HubMetrics(process=False)
    metrics.watch_audit_queue(lambda: 0)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}
    exposed = {family.name + suffix for family in metrics.collect() for suffix in suffixes[family.type]}
    dashboard = json.loads((Path(__file__).parents[1] / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    asked = {name for expression in expressions for name in re.findall(r"\bmcp_hub_[a-z_]+", expression)}
    assert asked
    assert asked <= exposed, asked - exposed


class _Event:
    """An audit event as the metrics read it (`mcp_hub.db.audit.AuditEvent` has these fields)."""

    def __init__(self, *, client: str, public_name: str) -> None:
        self.method = "tools/call"
        self.client = client
        self.public_name = public_name
        self.connector_id: str | None = "c"
        self.outcome = "ok"
        self.latency_ms = 2.0
        self.downstream_ms: float | None = 1.5


def _samples(metrics: HubMetrics, name: str) -> Iterable[Any]:
    return [sample for family in metrics.collect() for sample in family.samples if sample.name == name]


# --- traces ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """What the traced hub exported (each test clears it first)."""
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
async def traced_hub(
    tmp_path_factory: pytest.TempPathFactory, spans: InMemorySpanExporter
) -> AsyncGenerator[tuple[RunningHub, int]]:
    """A traced hub with the fault server over stdio (`faults`) and over HTTP in both eras (`web`, `web-legacy`)."""
    tmp_path = tmp_path_factory.mktemp("traced")
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    config = write_config(
        tmp_path,
        {
            "faults": fault_connector(),
            "web": connector_toml(id="web", transport="http", url=url, protocol="2026-07-28"),
            "web-legacy": connector_toml(id="web-legacy", transport="http", url=url, protocol="legacy"),
        },
        approvals_toml(hold_seconds=20),
        auth=True,
    )
    tracing = Tracing.exporting(SimpleSpanProcessor(spans), service_name="mcp-hub-test", version="0", sampling_ratio=1)
    with http_fault_server(port):
        async with running_hub(config, tracing=tracing) as hub:
            await hub.wait_ready()
            yield hub, port


async def modern_call(hub: RunningHub, token: str, tool: str, arguments: dict[str, Any], **trace: str) -> Any:
    """A raw 2026-07-28 `tools/call` whose `_meta` carries `trace` (`traceparent`, `tracestate`)."""
    meta: dict[str, Any] = {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        **trace,
    }
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments, "_meta": meta},
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
        "Authorization": f"Bearer {token}",
    }
    async with httpx2.AsyncClient(timeout=30) as client:
        response = await client.post(hub.url, headers=headers, content=json.dumps(body).encode())
    assert response.status_code == 200, response.text
    return response.json()["result"]


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name == name]


def hex_of(span_id: int) -> str:
    return format(span_id, "016x")


def trace_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return format(span.context.trace_id, "032x")


def id_of(span: ReadableSpan) -> str:
    assert span.context is not None
    return hex_of(span.context.span_id)


def parent_of(span: ReadableSpan) -> str:
    assert span.parent is not None
    return hex_of(span.parent.span_id)


async def test_a_held_call_is_one_trace_under_the_callers_traceparent_with_auth_policy_wait_and_downstream(
    traced_hub: tuple[RunningHub, int], spans: InMemorySpanExporter
) -> None:
    """Issue 13 §5; trace context from `params._meta` (MCP 2026-07-28, SEP-414) and W3C Trace Context: one SERVER
    span whose parent is the caller's span, in the caller's trace, and under it `hub.auth`, `hub.policy`,
    `hub.approval_wait` and `hub.downstream`; the downstream (stdio) gets a `traceparent` naming the downstream
    span in its `_meta`."""
    hub, _ = traced_hub
    agent = await make_agent(hub, "traced", "tool:faults__*")
    token = await client_credentials_token(hub, agent)
    actions = NewActions(hub)
    alice = await approver(hub)
    spans.clear()
    answers: list[Any] = []

    async def held() -> None:
        answers.append(await modern_call(hub, token, "faults__echo", {"text": "rm -rf /x"}, traceparent=TRACEPARENT))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(held)
        pending = await actions.next()
        await hub.hub.approvals.decide(pending.id, alice, approve=True, reason=None)
    assert answers[0]["content"][0]["text"] == "rm -rf /x"

    (server,) = named(spans, "tools/call faults__echo")
    assert server.kind is SpanKind.SERVER
    assert trace_of(server) == TRACE_ID
    assert parent_of(server) == PARENT_SPAN_ID
    for name in ("hub.auth", "hub.policy", "hub.approval_wait", "hub.downstream"):
        found = named(spans, name)
        assert found, f"no {name} span"
        for span in found:
            assert trace_of(span) == TRACE_ID
            assert parent_of(span) == id_of(server)
    (downstream,) = named(spans, "hub.downstream")
    assert downstream.kind is SpanKind.CLIENT
    (auth,) = named(spans, "hub.auth")
    assert auth.start_time == server.start_time  # the trace begins at the token check

    spans.clear()
    meta = json.loads(
        (await modern_call(hub, token, "faults__meta", {}, traceparent=TRACEPARENT, tracestate="vendor=1"))["content"][
            0
        ]["text"]
    )
    (downstream,) = named(spans, "hub.downstream")
    assert meta["traceparent"] == f"00-{TRACE_ID}-{id_of(downstream)}-01"
    assert meta["tracestate"] == "vendor=1"


@pytest.mark.parametrize("connector", ["web", "web-legacy"])
async def test_an_http_downstream_receives_the_traceparent_header_of_the_downstream_span(
    traced_hub: tuple[RunningHub, int], spans: InMemorySpanExporter, connector: str
) -> None:
    """W3C Trace Context over HTTP: the lean client (2026-07-28) and the SDK client (2025-11-25) send the
    `traceparent` header naming the hub's downstream span; a caller's header starts the trace when its `_meta`
    has none. Legacy-era calls through the SDK path are traced too."""
    hub, _ = traced_hub
    agent = await make_agent(hub, f"traced-{connector}", f"tool:{connector}__*")
    token = await client_credentials_token(hub, agent)
    spans.clear()
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}", "traceparent": TRACEPARENT}, timeout=30
        ) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool(f"{connector}__headers", {"region": "eu"})
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    seen = json.loads(first.text)
    (downstream,) = named(spans, "hub.downstream")
    assert trace_of(downstream) == TRACE_ID
    assert seen["traceparent"] == f"00-{TRACE_ID}-{id_of(downstream)}-01"


async def test_with_tracing_off_nothing_is_traced_and_nothing_is_propagated(tmp_path: Path) -> None:
    """Our choice (issue 12's cost budget): off, the hub makes no span (not even the SDK's middleware runs) and
    sends no trace context downstream, whatever the caller sent."""
    config = write_config(tmp_path, {"faults": fault_connector()})
    async with running_hub(config) as hub:
        await hub.wait_ready("faults")
        assert not hub.hub.tracing.enabled
        middleware = [type(m).__name__ for m in hub.hub.server.middleware]
        assert "OpenTelemetryMiddleware" not in middleware
        async with Client(hub.url, mode="2026-07-28") as client:
            result = await client.call_tool("faults__meta", {}, meta={"traceparent": TRACEPARENT})
    first = result.content[0]
    assert isinstance(first, types.TextContent)
    assert "traceparent" not in json.loads(first.text)
