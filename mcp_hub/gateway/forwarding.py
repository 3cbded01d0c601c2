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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
from mcp.shared.dispatcher import ProgressFnT
from mcp_types import SERVER_INFO_META_KEY

from mcp_hub.audit import AuditWriter
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.db import AuditEvent
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import (
    ConnectorUnavailableError,
    DownstreamError,
    DownstreamTimeoutError,
    UnknownToolError,
)
from mcp_hub.gateway.errors import downstream_error_result, tool_error_result

_FORWARDED_RESULT_TYPES = {None, "complete"}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a call, as far as the hub can tell (self-reported until authentication lands)."""

    client: str
    session: str | None = None


def _outcome_of(exc: DownstreamError) -> str:
    if isinstance(exc, DownstreamTimeoutError):
        return "timeout"
    if isinstance(exc, ConnectorUnavailableError):
        return "unavailable"
    return "downstream_error"


def _clean_result(result: dict[str, Any]) -> dict[str, Any]:
    # A 2025-11-25 downstream omits resultType; the SDK sieve drops it again for 2025-11-25 clients.
    result.setdefault("resultType", "complete")
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        result = {**result, "_meta": {k: v for k, v in meta.items() if k != SERVER_INFO_META_KEY}}  # pyright: ignore[reportUnknownVariableType]
    return result


class Forwarder:
    """Resolves a public tool name, forwards the call, maps failures, writes the audit record."""

    def __init__(self, catalog: Catalog, pool: DownstreamPool, audit: AuditWriter) -> None:
        self._catalog = catalog
        self._pool = pool
        self._audit = audit

    async def audit_refusal(self, public_name: str, caller: Caller) -> None:
        """Record a call the caller's grants refused before it reached any downstream."""
        tool = self._catalog.tools_by_name().get(public_name)
        event = AuditEvent(
            at=datetime.now(UTC),
            client=caller.client,
            session=caller.session,
            public_name=public_name,
            connector_id=tool.connector_id if tool is not None else None,
            downstream_name=tool.downstream_name if tool is not None else None,
            outcome="forbidden",
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
        connector_id: str | None = None
        downstream_name: str | None = None
        outcome = "cancelled"
        detail: str | None = None
        try:
            try:
                tool = self._catalog.resolve(public_name)
            except UnknownToolError:
                outcome = "unknown_tool"
                raise
            connector_id, downstream_name = tool.connector_id, tool.downstream_name
            params: dict[str, Any] = {"name": downstream_name}
            if arguments is not None:
                params["arguments"] = arguments
            try:
                result = await self._pool.get(connector_id).request("tools/call", params, on_progress=on_progress)
            except DownstreamError as exc:
                outcome, detail = _outcome_of(exc), str(exc)
                return downstream_error_result(exc)
            result_type = result.get("resultType")
            if result_type not in _FORWARDED_RESULT_TYPES:
                outcome, detail = "downstream_error", f"unsupported resultType {result_type!r}"
                return tool_error_result(
                    f"[mcp-hub] connector {connector_id!r} answered with resultType {result_type!r}, "
                    "which mcp-hub does not relay yet"
                )
            outcome = "tool_error" if result.get("isError") else "ok"
            return _clean_result(result)
        except UnknownToolError:
            raise
        except Exception as exc:
            # Cancellation is not an Exception: a cancelled call keeps the outcome "cancelled".
            outcome, detail = "internal_error", repr(exc)
            raise
        finally:
            event = AuditEvent(
                at=datetime.now(UTC),
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
