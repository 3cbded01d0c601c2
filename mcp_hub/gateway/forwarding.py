"""Forwarding `tools/call` to the downstream that serves the tool, and auditing every call.

What crosses the hub: the downstream's original tool name and the caller's arguments. What does not:
the caller's `_meta` (its protocol envelope, client info and progress token belong to its own
connection; the hub mints its own progress token, which is the downstream request id) and any
credential of the caller. What comes back is the downstream's result with the reserved `serverInfo`
`_meta` key removed, so the hub, not the downstream, identifies itself to the client.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Final

import anyio
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import SERVER_INFO_META_KEY

from mcp_hub.audit.writer import AuditWriter
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import AuditOutcome, Caller, Clock, ConnectorId, utc_now
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import (
    ConnectorUnavailableError,
    DownstreamError,
    DownstreamTimeoutError,
    UnknownToolError,
)
from mcp_hub.gateway.errors import tool_result_for
from mcp_hub.tool_results import hub_error_result

_FORWARDED_RESULT_TYPES: Final = {None, "complete"}


def _outcome_of(exc: DownstreamError) -> AuditOutcome:
    if isinstance(exc, DownstreamTimeoutError):
        return AuditOutcome.TIMEOUT
    if isinstance(exc, ConnectorUnavailableError):
        return AuditOutcome.UNAVAILABLE
    return AuditOutcome.DOWNSTREAM_ERROR


def _clean_result(result: dict[str, Any]) -> dict[str, Any]:
    # A 2025-11-25 downstream omits resultType; the SDK sieve drops it again for 2025-11-25 clients.
    result.setdefault("resultType", "complete")
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        result = {**result, "_meta": {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}}  # pyright: ignore[reportUnknownVariableType]
    return result


class Forwarder:
    """Resolves a public tool name, forwards the call, maps failures, writes the audit record."""

    def __init__(self, catalog: Catalog, pool: DownstreamPool, audit: AuditWriter, *, clock: Clock = utc_now) -> None:
        self._catalog = catalog
        self._pool = pool
        self._audit = audit
        self._clock = clock

    async def audit_refusal(self, public_name: str, caller: Caller) -> None:
        """Record a call the caller's grants refused before it reached any downstream."""
        tool = self._catalog.tools_by_name().get(public_name)
        event = AuditEvent(
            at=self._clock(),
            client=caller.client,
            session=caller.session,
            public_name=public_name,
            connector_id=tool.connector_id if tool is not None else None,
            downstream_name=tool.downstream_name if tool is not None else None,
            outcome=AuditOutcome.FORBIDDEN,
            latency_ms=0.0,
            detail="outside the caller's grants",
        )
        with anyio.CancelScope(shield=True):
            await self._audit.record(event)

    async def call_tool(
        self,
        public_name: str,
        arguments: Mapping[str, Any] | None,
        caller: Caller,
        *,
        on_progress: ProgressFnT | None = None,
    ) -> dict[str, Any]:
        """Forward one call; raises `UnknownToolError` (a protocol error), else returns a result dict."""
        started = time.perf_counter()
        connector_id: ConnectorId | None = None
        downstream_name: str | None = None
        outcome = AuditOutcome.CANCELLED
        detail: str | None = None
        try:
            try:
                tool = self._catalog.resolve(public_name)
            except UnknownToolError:
                outcome = AuditOutcome.UNKNOWN_TOOL
                raise
            connector_id, downstream_name = tool.connector_id, tool.downstream_name
            params: dict[str, Any] = {"name": downstream_name}
            if arguments is not None:
                params["arguments"] = arguments
            try:
                result = await self._pool.get(connector_id).request("tools/call", params, on_progress=on_progress)
            except DownstreamError as exc:
                outcome, detail = _outcome_of(exc), str(exc)
                return tool_result_for(exc)
            result_type = result.get("resultType")
            if result_type not in _FORWARDED_RESULT_TYPES:
                outcome, detail = AuditOutcome.DOWNSTREAM_ERROR, f"unsupported resultType {result_type!r}"
                return hub_error_result(
                    f"connector {connector_id!r} answered with resultType {result_type!r}, "
                    "which mcp-hub does not relay yet"
                )
            outcome = AuditOutcome.TOOL_ERROR if result.get("isError") else AuditOutcome.OK
            return _clean_result(result)
        except UnknownToolError:
            raise
        except Exception as exc:
            # Cancellation is not an Exception: a cancelled call keeps the outcome "cancelled".
            outcome, detail = AuditOutcome.INTERNAL_ERROR, repr(exc)
            raise
        finally:
            event = AuditEvent(
                at=self._clock(),
                client=caller.client,
                session=caller.session,
                public_name=public_name,
                connector_id=connector_id,
                downstream_name=downstream_name,
                outcome=outcome,
                latency_ms=(time.perf_counter() - started) * 1000,
                detail=detail,
            )
            # Shielded: a cancelled call is still recorded.
            with anyio.CancelScope(shield=True):
                await self._audit.record(event)
