"""Forwarding requests to the downstream that serves them, and auditing every one.

`tools/call`, `prompts/get`, `resources/read` and `completion/complete` go to the connector that owns the
tool, prompt, resource or template (https://modelcontextprotocol.io/specification/2026-07-28/server/tools,
.../server/prompts, .../server/resources, .../server/utilities/completion).

What crosses the hub: the downstream's own name or URI and the caller's arguments. What does not: the
caller's `_meta` (its protocol envelope, client info and progress token belong to its own connection; the hub
mints its own progress token, which is the downstream request id) and any credential of the caller. What
comes back is the downstream's result with the reserved `serverInfo` `_meta` key removed, so the hub, not the
downstream, identifies itself; with the hub's own secret values (the connectors' expanded `${VAR}` references)
replaced by `[redacted]` wherever a downstream quoted them (threat T30); and with every resource URI in it
(resource links, embedded resources, read contents) turned into its public form (`mcp_hub.catalog.names`), so
the client can read it through the hub.

Errors (issue 9 §5): a downstream's JSON-RPC error reaches the client as a JSON-RPC error with the same code
and a message naming the connector (`DownstreamRejectedError`). In `tools/call` only, transport failures,
timeouts and crashes become `isError` results the model reads; elsewhere they are JSON-RPC errors too. Error
texts are scrubbed of the hub's secret values like results, before they reach the caller or the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import SERVER_INFO_META_KEY

from mcp_hub.audit.writer import AuditWriter
from mcp_hub.authz.scopes import required_scope
from mcp_hub.catalog.catalog import Catalog, CatalogEntry, ResourceTarget
from mcp_hub.catalog.content import map_uris
from mcp_hub.catalog.names import public_uri
from mcp_hub.credentials import SecretValues
from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import AuditOutcome, Caller, CatalogKind, Clock, ConnectorId, utc_now
from mcp_hub.downstream.connection import CallTiming
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.downstream.relay import Relay
from mcp_hub.errors import (
    AccessDeniedError,
    ConnectorUnavailableError,
    DownstreamError,
    DownstreamProtocolError,
    DownstreamRejectedError,
    DownstreamTimeoutError,
    UnknownPromptError,
    UnknownToolError,
)
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.errors import tool_result_for
from mcp_hub.telemetry.tracing import Tracing, downstream_carrier
from mcp_hub.tool_results import hub_error_result

_FORWARDED_RESULT_TYPES: Final = {None, "complete", "input_required"}


@dataclass(frozen=True, slots=True)
class Target:
    """What a forwarded request is about: its public name or URI and where it lives downstream."""

    kind: CatalogKind | None
    public_name: str
    connector_id: ConnectorId
    downstream_name: str

    @classmethod
    def of(cls, entry: CatalogEntry) -> Target:
        return cls(entry.kind, entry.public_name, entry.connector_id, entry.downstream_name)

    @classmethod
    def of_resource(cls, resource: ResourceTarget) -> Target:
        return cls(CatalogKind.RESOURCE, resource.public_uri, resource.connector_id, resource.downstream_uri)


def _outcome_of(exc: DownstreamError) -> AuditOutcome:
    if isinstance(exc, DownstreamTimeoutError):
        return AuditOutcome.TIMEOUT
    if isinstance(exc, ConnectorUnavailableError):
        return AuditOutcome.UNAVAILABLE
    return AuditOutcome.DOWNSTREAM_ERROR


def _unsupported_result(method: str, target: Target, result_type: object) -> dict[str, Any]:
    """What a client gets for a result the hub cannot relay: a tool error in `tools/call`, else an error."""
    text = f"connector {target.connector_id!r} answered with resultType {result_type!r}"
    if method == "tools/call":
        return hub_error_result(f"{text}, which mcp-hub does not relay yet")
    raise DownstreamProtocolError(target.connector_id, text)


def _clean_result(result: dict[str, Any]) -> dict[str, Any]:
    # A 2025-11-25 downstream omits resultType; the SDK sieve drops it again for 2025-11-25 clients.
    result.setdefault("resultType", "complete")
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        result = {**result, "_meta": {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}}  # pyright: ignore[reportUnknownVariableType]
    return result


def _scrubbed(exc: DownstreamError, secrets: SecretValues) -> DownstreamError:
    """`exc` with the hub's secret values removed from its text (the same exception when there were none)."""
    if not secrets:
        return exc
    if isinstance(exc, DownstreamRejectedError):
        message, data = secrets.scrub(exc.downstream_message), secrets.scrub_json(exc.data)
        if message == exc.downstream_message and data is exc.data:
            return exc
        return DownstreamRejectedError(exc.connector_id, exc.code, message, data)
    text = str(exc)
    clean = secrets.scrub(text)
    return exc if clean == text else type(exc)(exc.connector_id, clean)


class Forwarder:
    """Forwards a resolved request to its connector, maps failures, writes the audit record."""

    def __init__(
        self,
        catalog: Catalog,
        pool: DownstreamPool,
        audit: AuditWriter,
        *,
        secrets: SecretValues | None = None,
        clock: Clock = utc_now,
        tracing: Tracing | None = None,
    ) -> None:
        """`secrets`: the hub's own secret values, scrubbed from every result and error text a downstream sends;
        `tracing`: each forwarded request in a `hub.downstream` span whose context the downstream receives."""
        self._tracing = tracing if tracing is not None else Tracing.off()
        self._catalog = catalog
        self._pool = pool
        self._audit = audit
        self._secrets = secrets if secrets is not None else SecretValues()
        self._clock = clock

    def era_of(self, connector_id: str) -> str | None:
        """The protocol era the connector speaks now (None before it first connected)."""
        return self._pool.get(connector_id).health.era

    async def require_grant(self, asking: Asking, public_name: str, kind: str, method: str) -> None:
        """Let the request on if the caller's grants cover `public_name` (a `kind`: tool, prompt, resource);
        otherwise record the refusal and raise `AccessDeniedError` naming the scope it would need."""
        if not asking.allows(public_name, kind):
            await self.audit_refusal(public_name, asking.caller, method)
            raise AccessDeniedError(public_name, required_scope(kind, public_name), kind)

    async def audit_refusal(self, public_name: str, caller: Caller, method: str = "tools/call") -> None:
        """Record a request the caller's grants refused before it reached any downstream."""
        await self._audit_unforwarded(
            method, public_name, caller, AuditOutcome.FORBIDDEN, "outside the caller's grants"
        )

    async def call_tool(
        self,
        public_name: str,
        arguments: Mapping[str, Any] | None,
        caller: Caller,
        *,
        on_progress: ProgressFnT | None = None,
        relay: Relay | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Forward one tool call (`extra`: answers for the downstream, `inputResponses` and `requestState`);
        `UnknownToolError` and a downstream's JSON-RPC error raise, every other failure is a result with
        `isError: true`."""
        try:
            tool = self._catalog.resolve(public_name)
        except UnknownToolError:
            await self._audit_unforwarded("tools/call", public_name, caller, AuditOutcome.UNKNOWN_TOOL, None)
            raise
        params: dict[str, Any] = {"name": tool.downstream_name, **(extra or {})}
        if arguments is not None:
            params["arguments"] = arguments
        try:
            return await self.forward(
                "tools/call", Target.of(tool), params, caller, on_progress=on_progress, relay=relay
            )
        except DownstreamRejectedError:
            raise
        except DownstreamError as exc:
            return tool_result_for(exc)

    async def forward(
        self,
        method: str,
        target: Target,
        params: Mapping[str, Any],
        caller: Caller,
        *,
        on_progress: ProgressFnT | None = None,
        relay: Relay | None = None,
    ) -> dict[str, Any]:
        """Send `method` with `params` (already in the downstream's names) to the target's connector; what the
        downstream sends meanwhile (log entries, questions) goes through `relay` to the caller.

        Returns the cleaned result with public URIs; raises `DownstreamError` (audited) on failure.
        """
        started = time.perf_counter()
        outcome = AuditOutcome.CANCELLED
        detail: str | None = None
        timing = CallTiming()
        try:
            try:
                connection = self._pool.get(target.connector_id)
                with self._tracing.downstream(method, target.connector_id) as span:
                    result = await connection.request(
                        method,
                        params,
                        on_progress=on_progress,
                        relay=relay,
                        trace=downstream_carrier(span),
                        timing=timing,
                    )
            except DownstreamError as exc:
                clean = _scrubbed(exc, self._secrets)
                outcome, detail = _outcome_of(clean), str(clean)
                if clean is not exc:
                    raise clean from None
                raise
            result = self._secrets.scrub_json(result)
            result_type = result.get("resultType")
            if result_type not in _FORWARDED_RESULT_TYPES:
                outcome, detail = AuditOutcome.DOWNSTREAM_ERROR, f"unsupported resultType {result_type!r}"
                return _unsupported_result(method, target, result_type)
            if result_type == "input_required":
                outcome = AuditOutcome.INPUT_REQUIRED
                return result
            outcome = AuditOutcome.TOOL_ERROR if result.get("isError") else AuditOutcome.OK
            return map_uris(method, _clean_result(result), partial(public_uri, target.connector_id))
        except Exception as exc:
            if outcome is AuditOutcome.CANCELLED:
                # Cancellation is not an Exception: a cancelled call keeps the outcome "cancelled".
                outcome, detail = AuditOutcome.INTERNAL_ERROR, self._secrets.scrub(repr(exc))
            raise
        finally:
            await self._record(
                AuditEvent(
                    at=self._clock(),
                    client=caller.client,
                    session=caller.session,
                    public_name=target.public_name,
                    connector_id=target.connector_id,
                    downstream_name=target.downstream_name,
                    outcome=outcome,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    detail=detail,
                    method=method,
                    downstream_ms=None if timing.seconds is None else timing.seconds * 1000,
                )
            )

    async def run_approved(
        self, method: str, public_name: str, arguments: Mapping[str, Any] | None, caller: Caller
    ) -> dict[str, Any]:
        """Run an approved tool call, prompt get or resource read (`approvals.service.Forward`); the result has
        public URIs, which the caller's request turns into its view's form."""
        if method == "tools/call":
            return await self.call_tool(public_name, arguments, caller)
        if method == "prompts/get":
            prompt = self._catalog.prompts.get(public_name)
            if prompt is None:
                raise UnknownPromptError(public_name)
            params: dict[str, Any] = {"name": prompt.downstream_name}
            if arguments:
                params["arguments"] = dict(arguments)
            return await self.forward(method, Target.of(prompt), params, caller)
        resource = self._catalog.resolve_resource(public_name)
        return await self.forward(method, Target.of_resource(resource), {"uri": resource.downstream_uri}, caller)

    async def audit_limited(self, public_name: str, caller: Caller, outcome: AuditOutcome, reason: str) -> None:
        """Record a call a rate limit, quota or loop rule refused before it reached any downstream."""
        await self._audit_unforwarded("tools/call", public_name, caller, outcome, reason[:500])

    async def audit_served(self, public_name: str, caller: Caller, result: Mapping[str, Any], served: str) -> None:
        """Record a call answered without a downstream call of its own: from the cache (`cached`), or with the
        answer of an identical call in flight (`coalesced`)."""
        outcome = AuditOutcome.TOOL_ERROR if result.get("isError") else AuditOutcome.OK
        await self._audit_unforwarded("tools/call", public_name, caller, outcome, served)

    async def _audit_unforwarded(
        self, method: str, public_name: str, caller: Caller, outcome: AuditOutcome, detail: str | None
    ) -> None:
        """A row for a request that reached no downstream (refused, limited, unknown, or answered by the cache)."""
        entry = self._catalog.tools.get(public_name) if method == "tools/call" else None
        await self._record(
            AuditEvent(
                at=self._clock(),
                client=caller.client,
                session=caller.session,
                public_name=public_name,
                connector_id=entry.connector_id if entry is not None else None,
                downstream_name=entry.downstream_name if entry is not None else None,
                outcome=outcome,
                latency_ms=0.0,
                detail=detail,
                method=method,
            )
        )

    async def audit_not_found(self, method: str, public_name: str, caller: Caller) -> None:
        """Record a call, get or read of something the hub never handed out."""
        outcome = AuditOutcome.UNKNOWN_TOOL if method == "tools/call" else AuditOutcome.NOT_FOUND
        await self._audit_unforwarded(method, public_name, caller, outcome, None)

    async def _record(self, event: AuditEvent) -> None:
        if self._audit.has_room:
            self._audit.record_nowait(event)
            return
        # Shielded: a cancelled request is still recorded.
        with anyio.CancelScope(shield=True):
            await self._audit.record(event)
