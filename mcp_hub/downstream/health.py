"""Health of a downstream connector, as `/healthz` and `mcp-hub connectors list` show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Health(StrEnum):
    CONNECTING = "connecting"
    """Starting, or reconnecting after a loss; no calls are forwarded."""
    READY = "ready"
    """Connected, tools listed, calls forwarded."""
    DEGRADED = "degraded"
    """Connected, but recent calls failed at the transport (the connector is being checked)."""
    DOWN = "down"
    """The last connection attempt failed; the hub retries with backoff."""
    DISABLED = "disabled"
    """`enabled = false` in the connector file."""


@dataclass(frozen=True, slots=True)
class HealthState:
    state: Health
    since: datetime
    detail: str | None = None
    era: str | None = None
    tool_count: int = 0
    attempts: int = 0
