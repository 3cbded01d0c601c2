"""`Tracing`: OpenTelemetry spans of a request through the hub, and W3C trace context in and out.

Spans (docs/observability.md), all children of one SERVER span per MCP request (`tools/call <name>`, ...):
- `hub.auth`: the bearer token's verification and the caller's access decision (timed by the HTTP guard,
  which runs before the request's trace context is known, and recorded with those times);
- `hub.policy`: limits, grants and whether an approval rule holds the call;
- `hub.approval_wait`: a held call waiting for a human's decision;
- `hub.downstream`: the request forwarded to its downstream server (a CLIENT span).

Trace context in: `traceparent`/`tracestate` from the request's `params._meta` (the MCP spec's place, SEP-414,
https://modelcontextprotocol.io/specification/2026-07-28/basic/index#meta), else from the HTTP headers (W3C Trace
Context, https://www.w3.org/TR/trace-context/). Out: the `hub.downstream` span's context in the downstream
request's `_meta` (every transport) and, over HTTP, its headers (`downstream_carrier`).

Off (the default), there is nothing: no middleware, no span objects, no context attached; `Tracing.span` hands
back one shared null context manager. The hub has its own `TracerProvider` (never the process-wide one), so two
hubs in one process trace apart; the SDK's own `OpenTelemetryMiddleware` is taken out of the hub's servers
(`mcp_hub.gateway.server`), as it costs CPU on every request even with no provider.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, Final, cast

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.requests import Request

AUTH_TIMES_KEY: Final = "mcp_hub.auth_ns"
"""ASGI scope key: (start, end) in `time.time_ns()` of the guard's token check and access decision."""
POLICY_TIMES_KEY: Final = "mcp_hub.policy_ns"
"""ASGI scope key: (start, end) of the guard's grant and limits check of a 2026-07-28 `tools/call`."""
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_W3C: Final = TraceContextTextMapPropagator()
_OFF: Final = nullcontext(None)
_NAMED: Final = frozenset({"tools/call", "prompts/get"})


class Tracing:
    """The hub's tracer; `Tracing.off()` when `[tracing]` is off."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer("mcp-hub") if provider is not None else None
        self.enabled = provider is not None

    @classmethod
    def off(cls) -> Tracing:
        return cls(None)

    @classmethod
    def exporting(cls, processor: SpanProcessor, *, service_name: str, version: str, sampling_ratio: float) -> Tracing:
        """Spans handed to `processor` (the OTLP exporter's batches; the tests' in-memory exporter)."""
        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(sampling_ratio)),
            resource=Resource.create({SERVICE_NAME: service_name, SERVICE_VERSION: version}),
        )
        provider.add_span_processor(processor)
        return cls(provider)

    @classmethod
    def otlp(cls, endpoint: str, *, service_name: str, version: str, sampling_ratio: float) -> Tracing:
        """Spans exported in batches to an OTLP/HTTP collector at `endpoint` (`[tracing]`)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # only when tracing

        return cls.exporting(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)),
            service_name=service_name,
            version=version,
            sampling_ratio=sampling_ratio,
        )

    def shutdown(self) -> None:
        """Export what is buffered and stop (the hub's shutdown)."""
        if self._provider is not None:
            self._provider.shutdown()

    def span(
        self, name: str, attributes: Mapping[str, str] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
    ) -> AbstractContextManager[Span | None]:
        """A child of the current span, current while open; off: a shared null context (None)."""
        tracer = self._tracer
        if tracer is None:
            return _OFF
        return tracer.start_as_current_span(name, kind=kind, attributes=attributes)

    def downstream(self, method: str, connector_id: str) -> AbstractContextManager[Span | None]:
        """The CLIENT span of a request forwarded to a connector (`downstream_carrier` names it downstream)."""
        tracer = self._tracer
        if tracer is None:
            return _OFF
        return tracer.start_as_current_span(
            "hub.downstream",
            kind=SpanKind.CLIENT,
            attributes={"mcp.method.name": method, "mcp_hub.connector": connector_id},
        )

    def record(self, name: str, times: tuple[int, int], attributes: Mapping[str, str] | None = None) -> None:
        """A child of the current span that ran from `times[0]` to `times[1]` (ns since the epoch)."""
        if self._tracer is not None:
            self._tracer.start_span(name, start_time=times[0], attributes=attributes).end(end_time=times[1])

    @contextmanager
    def request(self, ctx: ServerRequestContext[Any, Any]) -> Generator[Span | None]:
        """The SERVER span of one MCP request, under the caller's trace context; the guard's spans recorded in it."""
        tracer = self._tracer
        if tracer is None:
            yield None
            return
        request: object = ctx.request
        scope: Mapping[str, Any] = cast("Request", request).scope if isinstance(request, Request) else {}
        auth: tuple[int, int] | None = scope.get(AUTH_TIMES_KEY)
        policy: tuple[int, int] | None = scope.get(POLICY_TIMES_KEY)
        params = ctx.params or {}
        name = params.get("name") if ctx.method in _NAMED else None
        attributes = {"mcp.method.name": ctx.method}
        if isinstance(name, str):
            attributes["gen_ai.tool.name" if ctx.method == "tools/call" else "gen_ai.prompt.name"] = name
        with tracer.start_as_current_span(
            f"{ctx.method} {name}" if isinstance(name, str) else ctx.method,
            context=incoming_context(ctx.meta, scope),
            kind=SpanKind.SERVER,
            attributes=attributes,
            start_time=auth[0] if auth is not None else time.time_ns(),
        ) as span:
            if auth is not None:
                self.record("hub.auth", auth)
            if policy is not None:
                self.record("hub.policy", policy, {"mcp_hub.policy.at": "guard"})
            yield span

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware (`mcp.server.context.ServerMiddleware`): every request in its SERVER span."""
        if ctx.request_id is None:  # a notification
            return await call_next(ctx)
        with self.request(ctx) as span:
            try:
                result = await call_next(ctx)
            except Exception as exc:
                if span is not None:
                    span.set_attribute("error.type", type(exc).__qualname__)
                    span.set_status(StatusCode.ERROR, type(exc).__qualname__)
                raise
            if span is not None and isinstance(result, dict) and result.get("isError") is True:
                span.set_attribute("error.type", "tool_error")
                span.set_status(StatusCode.ERROR)
            return result


def incoming_context(meta: Mapping[str, Any] | None, scope: Mapping[str, Any]) -> Context | None:
    """The caller's W3C trace context: `params._meta`, else the HTTP `traceparent` header; None: a new trace."""
    if meta and isinstance(meta.get(TRACEPARENT), str):
        carrier = {key: value for key in (TRACEPARENT, TRACESTATE) if isinstance(value := meta.get(key), str)}
    else:
        carrier = {}
        for key, value in scope.get("headers", ()):
            if key in (b"traceparent", b"tracestate"):
                carrier[key.decode()] = value.decode("latin-1")
        if not carrier:
            return None
    context = _W3C.extract(carrier)
    if not trace.get_current_span(context).get_span_context().is_valid:
        return None
    return context


def downstream_carrier(span: Span | None) -> dict[str, str] | None:
    """`traceparent` (and `tracestate`) naming `span` as the parent, for a downstream request; None when off."""
    if span is None or not span.get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _W3C.inject(carrier, trace.set_span_in_context(span))
    return carrier or None
