"""What a downstream may reach during one forwarded request: the caller's log stream and the caller's user.

Many callers share one downstream session, so whatever a downstream sends while serving a request (a
`notifications/message` log entry, an `elicitation/create`, `sampling/createMessage` or `roots/list` question)
must go to the caller of THAT request, and to nobody else
(https://modelcontextprotocol.io/specification/2025-11-25/client/elicitation, .../client/sampling,
.../client/roots, .../server/utilities/logging). Each forwarded request carries a `Relay` for its caller; the
connection finds it by the downstream request id the message is related to:

- Streamable HTTP downstreams send a request's messages on that request's own response stream; the hub tags each
  such message with the request id as it arrives (`mcp_hub.downstream.tagging`), under `RELATED_REQUEST_META_KEY`,
  and strips the key from anything else, so a downstream cannot forge it.
- stdio and legacy HTTP+SSE downstreams have one shared stream: a message is attributed only when exactly one
  forwarded request is in flight on the connection. Otherwise it is not attributable: a question is refused
  (the downstream gets an error), a log entry goes only to sessions that asked for the connector's logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

import anyio

from mcp_hub.domain import ConnectorId

RELATED_REQUEST_META_KEY: Final = "io.github.mcp-hub/related-request"
"""`_meta` key the hub puts on a downstream's message: the id of the hub's request it arrived with."""

LOG_LEVELS: Final = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
"""RFC 5424 severities, least severe first (https://modelcontextprotocol.io/specification/2025-11-25/server/utilities/logging)."""


def severity(level: object) -> int:
    """The rank of a log level (unknown levels rank as the least severe, so they are filtered, not shown)."""
    return LOG_LEVELS.index(level) if isinstance(level, str) and level in LOG_LEVELS else -1


def at_least(level: object, threshold: str | None) -> bool:
    """Is a message at `level` wanted by someone who asked for `threshold` and above (None: nothing)?"""
    return threshold is not None and severity(level) >= severity(threshold)


class Relay(Protocol):
    """One forwarded request's way back to its caller."""

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        """What the caller declared it can do (wire `ClientCapabilities`): only this may be asked of it."""
        ...

    @property
    def log_level(self) -> str | None:
        """The least severe level the caller wants log entries at, or None for none."""
        ...

    async def log(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        """Deliver a downstream's `notifications/message` params to the caller (if at its level)."""
        ...

    async def ask(self, connector_id: ConnectorId, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Put a downstream's question (`elicitation/create`, `sampling/createMessage`, `roots/list`) to the caller
        and return its answer; raises `QuestionRefusedError` when the caller cannot or will not answer."""
        ...


class LogSink(Protocol):
    """Where the pool's log traffic meets the hub's clients (`mcp_hub.gateway.relaying.LogLevels`)."""

    def wanted_level(self) -> str | None:
        """The level a shared 2025-11-25 downstream session should log at (None: leave it as it is)."""
        ...

    def level_changes(self) -> anyio.Event:
        """An event set at the next change of `wanted_level` (take it before reading the level)."""
        ...

    async def unsolicited(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        """A downstream's log entry that belongs to no forwarded request."""
        ...


class ResourceInterest(Protocol):
    """Which resources the hub's callers want updates of, and where the updates go
    (`mcp_hub.gateway.subscriptions.ResourceSubscriptions`)."""

    def wanted(self, connector_id: ConnectorId) -> frozenset[str]:
        """The connector's resource URIs (its own, not public) some caller subscribed to."""
        ...

    def interest_changes(self) -> anyio.Event:
        """An event set at the next change of `wanted` (take it before reading)."""
        ...

    async def updated(self, connector_id: ConnectorId, downstream_uri: str) -> None:
        """The downstream says this resource changed."""
        ...

    def applied(self, connector_id: ConnectorId, downstream_uris: frozenset[str]) -> None:
        """The connector is now subscribed to exactly these resources (the downstream acknowledged them)."""
        ...
