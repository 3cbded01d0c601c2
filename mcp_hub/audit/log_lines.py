"""One log line per audited event: every tool call, prompt get, resource read, completion and approval transition
(an observer on `AuditWriter`, so nothing audited escapes it).

The line names the request (`request_id`: the JSON-RPC id, bound for the request by
`mcp_hub.gateway.log_context`), the caller (`client`: the agent, or the client's own name without auth), `method`
(also the line's event),
`tool` (the public name), `connector`, `outcome`, `latency_ms` and `downstream_ms` (when a downstream was called);
never arguments, results or error details (they may carry what the caller or the downstream considers private),
nor the legacy session id (it authenticates the session). Values the caller chose are capped.

Cheap: when `[logging] call_lines` is off or its level is below the run's, no observer is registered at all.
"""

from __future__ import annotations

import logging
from typing import Final

import structlog

from mcp_hub.audit.writer import AuditWriter
from mcp_hub.config.settings import LoggingSection
from mcp_hub.db.audit import AuditEvent

LOGGER: Final = "mcp_hub.calls"
_MAX_FIELD_CHARS: Final = 256
"""A caller-chosen value (a client's self-reported name) is cut here: one call, one short line."""


def _capped(value: str) -> str:
    return value if len(value) <= _MAX_FIELD_CHARS else value[:_MAX_FIELD_CHARS] + "…"


class CallLines:
    """The observer: `event` in, one log line out at `level`."""

    def __init__(self, level: int) -> None:
        self._log = structlog.get_logger(LOGGER)
        self._level = level

    def __call__(self, event: AuditEvent) -> None:
        fields: dict[str, object] = {
            "method": event.method,
            "client": _capped(event.client),
            "tool": _capped(event.public_name),
            "connector": event.connector_id,
            "outcome": str(event.outcome),
            "latency_ms": round(event.latency_ms, 2),
        }
        if event.downstream_ms is not None:
            fields["downstream_ms"] = round(event.downstream_ms, 2)
        self._log.log(self._level, event.method, **fields)


def observe_calls(writer: AuditWriter, settings: LoggingSection) -> None:
    """Log every event `writer` records, as `settings` say (nothing at all when the lines would be filtered out)."""
    level = logging.getLevelNamesMapping()[settings.call_line_level.upper()]
    if settings.call_lines and logging.getLogger(LOGGER).isEnabledFor(level):
        writer.observe(CallLines(level))
