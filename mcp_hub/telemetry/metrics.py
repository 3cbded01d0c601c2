"""`HubMetrics`: the hub's Prometheus metrics, one registry per hub (never the process-wide default registry, so
two hubs in one process, as in the tests, never share counts). docs/observability.md lists every metric.

Counting is on the hot path of every call, so it is plain Python arithmetic: no lock (everything that counts, and
the scrape that reads, runs on the hub's one event loop thread), no `prometheus_client` metric objects (their
`labels()` and `inc()` take a lock and validate labels on every call), and each label set resolved once: an
audit event's raw fields map to a `_CallSeries` through a bounded dictionary, and the series holds its histograms.
The registry reads the counts only when scraped (`HubMetrics.collect`).

Label cardinality is bounded: the first `max_agent_labels` agents and `max_tool_labels` tools seen by this
process get their own label value, every later one is counted as `other`; connectors are the operator's own,
methods and outcomes closed sets. Values that only come from a scrape (connector health, the audit queue, pending
approvals) are read then, from the callables the composition root gives (`watch_*`).
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

import anyio
import structlog
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mcp_hub.domain import ADMIN_METHOD_PREFIX, NOT_CALL_OUTCOMES

_log = structlog.get_logger(__name__)

OTHER: Final = "other"
"""The label value of every agent or tool beyond the caps."""
UNAUTHENTICATED: Final = "unauthenticated"
"""The agent label of a call made without auth (a loopback hub with `[auth] enabled = false`)."""

HUB_SECONDS_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
DOWNSTREAM_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DECISION_SECONDS_BUCKETS: Final = (5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)

_RAW_KEYS_KEPT: Final = 10_000
"""Raw (method, connector, name, client, outcome) keys remembered; beyond, labels are resolved on every call."""
_SCRAPE_REFRESH_SECONDS: Final = 2.0

_LIMIT_OUTCOMES: Final = frozenset({"rate_limited", "quota_exceeded", "loop_stopped"})
_NAMED_METHODS: Final = frozenset({"tools/call", "prompts/get"})
"""Methods whose target name is a label (a resource URI or a completion's reference is not: unbounded)."""
_DECIDED: Final = {
    "approval_approved": "approved",
    "approval_denied": "denied",
    "approval_expired": "expired",
    "approval_withdrawn": "withdrawn",
}


class AuditedRequest(Protocol):
    """What the metrics read of an audit event (`mcp_hub.db.audit.AuditEvent`, a layer above this one)."""

    @property
    def method(self) -> str: ...
    @property
    def client(self) -> str: ...
    @property
    def public_name(self) -> str: ...
    @property
    def connector_id(self) -> str | None: ...
    @property
    def outcome(self) -> str: ...
    @property
    def latency_ms(self) -> float: ...
    @property
    def downstream_ms(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class ConnectorSnapshot:
    """A connector as a scrape sees it (`mcp_hub.downstream.connection.DownstreamConnection`)."""

    connector: str
    health: str
    breaker: str
    running: int
    queued: int
    breaker_opened: int


HEALTH_STATES: Final = ("connecting", "ready", "degraded", "down", "disabled")
BREAKER_STATES: Final = ("closed", "open", "half_open")


class _Histogram:
    """Bucket counts (not cumulative) and a sum, kept in the unit observed (milliseconds for latencies, so that
    the hot path divides nothing); cumulated and scaled to seconds when scraped."""

    __slots__ = ("bounds", "counts", "scale", "total")

    def __init__(self, bounds_seconds: Sequence[float], *, scale: float = 1000.0) -> None:
        self.scale = scale
        self.bounds = tuple(bound * scale for bound in bounds_seconds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = 0
        out: list[tuple[str, float]] = []
        labels = [repr(float(bound / self.scale)) for bound in self.bounds] + ["+Inf"]
        for label, count in zip(labels, self.counts, strict=True):
            cumulative += count
            out.append((label, cumulative))
        return out

    @property
    def sum_seconds(self) -> float:
        return self.total / self.scale


class _CallSeries:
    """One label set of `mcp_hub_calls_total`, with the latency histograms of its method and connector."""

    __slots__ = ("count", "downstream", "hub", "labels")

    def __init__(self, labels: tuple[str, str, str, str, str], hub: _Histogram, downstream: _Histogram) -> None:
        self.labels = labels
        self.count = 0
        self.hub = hub
        self.downstream = downstream


class _Capped:
    """Label values kept as they are up to a cap, then `other` (first come, first kept, for the process's life)."""

    __slots__ = ("_cap", "_kept")

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._kept: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._kept:
            return value
        if len(self._kept) < self._cap:
            self._kept.add(value)
            return value
        return OTHER


def agent_of(client: str) -> str:
    """The agent's name in an audit row's client (`agent:NAME` or `agent:NAME for user:ID`)."""
    if not client.startswith("agent:"):
        return UNAUTHENTICATED
    return client[6:].split(" for ", 1)[0]


class HubMetrics(Collector):
    """The counters, histograms and gauges of one hub, and the registry that exposes them."""

    def __init__(
        self,
        *,
        max_agent_labels: int = 100,
        max_tool_labels: int = 500,
        process: bool = True,
        version: str = "",
    ) -> None:
        """`process`: also the process, platform and garbage-collector metrics (one hub per process in production;
        tests building several hubs may leave them out)."""
        self._agents = _Capped(max_agent_labels)
        self._tools = _Capped(max_tool_labels)
        self._version = version
        self._raw: dict[tuple[str, str | None, str, str, str], _CallSeries] = {}
        self._series: dict[tuple[str, str, str, str, str], _CallSeries] = {}
        self._hub_seconds: dict[tuple[str, str], _Histogram] = {}
        self._downstream_seconds: dict[tuple[str, str], _Histogram] = {}
        self._endpoint_refusals: dict[str, int] = {}
        self._endpoints = _Capped(32)
        self._approvals_requested = 0
        self._approvals_decided: dict[str, int] = {}
        self._decision_seconds = _Histogram(DECISION_SECONDS_BUCKETS, scale=1.0)
        self._cache: dict[str, int] = {"hit": 0, "miss": 0, "coalesced": 0}
        self._tokens: dict[str, int] = {}
        self._approvals_pending: float = float("nan")
        self._connectors: Callable[[], Iterable[ConnectorSnapshot]] = lambda: ()
        self._audit_queue: Callable[[], int] | None = None
        self._sink_dropped: Callable[[], Mapping[str, int]] = dict
        self._count_pending: Callable[[], Awaitable[int]] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        if process:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    # --- what the composition root wires ------------------------------------------------------------------------

    def watch_connectors(self, snapshot: Callable[[], Iterable[ConnectorSnapshot]]) -> None:
        """Read each connector's health, breaker and calls when scraped."""
        self._connectors = snapshot

    def watch_audit_queue(self, depth: Callable[[], int]) -> None:
        self._audit_queue = depth

    def watch_audit_sinks(self, dropped: Callable[[], Mapping[str, int]]) -> None:
        """Read the records each audit sink dropped (by sink name, never decreasing) when scraped."""
        self._sink_dropped = dropped

    def watch_pending_approvals(self, count: Callable[[], Awaitable[int]]) -> None:
        """Count the pending approvals (a database read) before each scrape."""
        self._count_pending = count

    # --- counting (the hot path: no lock, no allocation once a label set is known) ------------------------------

    def observe_audit(self, event: AuditedRequest) -> None:
        """The audit writer's observer: every call, refusal and approval transition the hub records."""
        key = (event.method, event.connector_id, event.public_name, event.client, event.outcome)
        series = self._raw.get(key)
        if series is None:
            series = self._series_of(key)
            if series is None:  # not a call: counted elsewhere
                return
        series.count += 1
        downstream_ms = event.downstream_ms
        if downstream_ms is not None:
            series.downstream.observe(downstream_ms)
            hub_ms = event.latency_ms - downstream_ms
            series.hub.observe(hub_ms if hub_ms > 0 else 0.0)

    def cache_served(self, served: str) -> None:
        """A call through the cache: `ran` (a miss), `cached` (a hit) or `coalesced`."""
        result = "hit" if served == "cached" else "miss" if served == "ran" else "coalesced"
        self._cache[result] += 1

    def token_issued(self, grant_type: str) -> None:
        self._tokens[grant_type] = self._tokens.get(grant_type, 0) + 1

    def approval_decided(self, waited_seconds: float) -> None:
        """A human decided an approval `waited_seconds` after it was requested."""
        self._decision_seconds.observe(max(0.0, waited_seconds))

    def _approval_transition(self, outcome: str) -> None:
        if outcome == "approval_requested":
            self._approvals_requested += 1
        elif (decision := _DECIDED.get(outcome)) is not None:
            self._approvals_decided[decision] = self._approvals_decided.get(decision, 0) + 1

    def _series_of(self, key: tuple[str, str | None, str, str, str]) -> _CallSeries | None:
        """The series of a call (kept for its raw key), or None for an event that is not a call (counted here)."""
        method, connector_id, public_name, client, outcome = key
        if outcome in NOT_CALL_OUTCOMES:
            self._approval_transition(outcome)
            return None
        if method.startswith(ADMIN_METHOD_PREFIX):  # an admin's change, not an MCP request
            return None
        if method == "http":  # an endpoint or sign-in throttle (`Hub.audit_throttled`)
            endpoint = self._endpoints(public_name)
            self._endpoint_refusals[endpoint] = self._endpoint_refusals.get(endpoint, 0) + 1
            return None
        connector = connector_id or ""
        tool = self._tools(public_name) if method in _NAMED_METHODS else ""
        labels = (method, connector, tool, self._agents(agent_of(client)), str(outcome))
        series = self._series.get(labels)
        if series is None:
            where = (method, connector)
            hub = self._hub_seconds.get(where)
            if hub is None:
                hub = self._hub_seconds[where] = _Histogram(HUB_SECONDS_BUCKETS)
            downstream = self._downstream_seconds.get(where)
            if downstream is None:
                downstream = self._downstream_seconds[where] = _Histogram(DOWNSTREAM_SECONDS_BUCKETS)
            series = self._series[labels] = _CallSeries(labels, hub, downstream)
        if len(self._raw) < _RAW_KEYS_KEPT:
            self._raw[key] = series
        return series

    # --- scraping ------------------------------------------------------------------------------------------------

    async def exposition(self) -> bytes:
        """The text exposition format of every metric, after reading what is read from the database."""
        count = self._count_pending
        if count is not None:
            started = time.perf_counter()
            with anyio.move_on_after(_SCRAPE_REFRESH_SECONDS):
                try:
                    self._approvals_pending = float(await count())
                except Exception:  # noqa: BLE001 - a scrape must answer; the gauge says it is unknown
                    _log.warning("counting pending approvals for /metrics failed", exc_info=True)
                    self._approvals_pending = float("nan")
            if time.perf_counter() - started >= _SCRAPE_REFRESH_SECONDS:
                self._approvals_pending = float("nan")
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """The registry's view of the counts (called by a scrape, on the event loop's thread)."""
        yield InfoMetricFamily("mcp_hub_build", "The hub's version.", value={"version": self._version})
        calls = CounterMetricFamily(
            "mcp_hub_calls",
            "Requests forwarded or refused by the hub: tools/call, prompts/get, resources/read, completion/complete.",
            labels=("method", "connector", "tool", "agent", "outcome"),
        )
        for series in self._series.values():
            calls.add_metric(series.labels, series.count)
        yield calls
        yield _histograms(
            "mcp_hub_call_hub_seconds",
            "The hub's own part of a forwarded request's latency (the audit latency minus the downstream's part).",
            self._hub_seconds,
        )
        yield _histograms(
            "mcp_hub_call_downstream_seconds",
            "Time a forwarded request waited on its downstream server.",
            self._downstream_seconds,
        )
        refusals: dict[str, int] = {}
        for series in self._series.values():
            if (outcome := series.labels[4]) in _LIMIT_OUTCOMES:
                refusals[outcome] = refusals.get(outcome, 0) + series.count
        yield _counters(
            "mcp_hub_limit_refusals", "Calls refused by a rate limit, a quota or loop breaking.", "limit", refusals
        )
        yield _counters(
            "mcp_hub_endpoint_refusals",
            "Requests refused by an endpoint or sign-in throttle.",
            "endpoint",
            self._endpoint_refusals,
        )
        yield _counters("mcp_hub_cache_requests", "Calls of cacheable tools, by result.", "result", self._cache)
        yield _counters("mcp_hub_tokens_issued", "Access tokens issued, by grant type.", "grant_type", self._tokens)
        yield CounterMetricFamily(
            "mcp_hub_approvals_requested", "Approvals requested (held calls).", value=self._approvals_requested
        )
        yield _counters(
            "mcp_hub_approvals_decided",
            "Approvals settled, by decision (approved, denied, expired, withdrawn).",
            "decision",
            self._approvals_decided,
        )
        decision = HistogramMetricFamily(
            "mcp_hub_approval_decision_seconds", "Time from an approval's request to a human's decision."
        )
        decision.add_metric([], self._decision_seconds.buckets(), self._decision_seconds.sum_seconds)
        yield decision
        yield GaugeMetricFamily(
            "mcp_hub_approvals_pending",
            "Approvals waiting for a decision (in the shared database: every replica reports the same number).",
            value=self._approvals_pending,
        )
        if self._audit_queue is not None:
            yield GaugeMetricFamily(
                "mcp_hub_audit_queue_depth", "Audit events recorded but not yet stored.", value=self._audit_queue()
            )
        yield _counters(
            "mcp_hub_audit_sink_dropped",
            "Stored audit records an [audit] sink dropped (its queue full, or delivery given up).",
            "sink",
            dict(self._sink_dropped()),
        )
        yield from self._connector_metrics()

    def _connector_metrics(self) -> Iterator[Metric]:
        health = GaugeMetricFamily(
            "mcp_hub_connector_health", "1 for the connector's current state.", labels=("connector", "state")
        )
        breaker = GaugeMetricFamily(
            "mcp_hub_connector_breaker", "1 for the circuit breaker's current state.", labels=("connector", "state")
        )
        opened = CounterMetricFamily(
            "mcp_hub_connector_breaker_opened", "Times the connector's circuit breaker opened.", labels=("connector",)
        )
        running = GaugeMetricFamily(
            "mcp_hub_connector_calls_running", "Calls running on the connector.", labels=("connector",)
        )
        queued = GaugeMetricFamily(
            "mcp_hub_connector_calls_queued",
            "Calls waiting for the connector's concurrency limit.",
            labels=("connector",),
        )
        for snapshot in self._connectors():
            for state in HEALTH_STATES:
                health.add_metric((snapshot.connector, state), 1.0 if snapshot.health == state else 0.0)
            for state in BREAKER_STATES:
                breaker.add_metric((snapshot.connector, state), 1.0 if snapshot.breaker == state else 0.0)
            opened.add_metric((snapshot.connector,), snapshot.breaker_opened)
            running.add_metric((snapshot.connector,), snapshot.running)
            queued.add_metric((snapshot.connector,), snapshot.queued)
        yield from (health, breaker, opened, running, queued)


def _counters(name: str, documentation: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=(label,))
    for value, count in counts.items():
        family.add_metric((value,), count)
    return family


def _histograms(name: str, documentation: str, histograms: dict[tuple[str, str], _Histogram]) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=("method", "connector"))
    for labels, histogram in histograms.items():
        family.add_metric(labels, histogram.buckets(), histogram.sum_seconds)
    return family
