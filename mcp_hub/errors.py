"""The one exception tree of mcp-hub.

    HubError
    ├── ConfigError                 a configuration file is wrong (names the file, the key, the problem)
    ├── DatabaseError
    │   └── SchemaOutOfDateError    the database is not at the code's migration head
    ├── CatalogError
    │   └── UnknownToolError        a public tool name that no connector serves
    └── DownstreamError             something between the hub and a downstream server failed
        ├── ConnectorUnavailableError   the connector is not connected (connecting, down, disabled)
        ├── DownstreamTimeoutError      the downstream did not answer within the call timeout
        └── DownstreamProtocolError     the downstream answered with a JSON-RPC error or garbage

The mapping to the wire lives in one place, `mcp_hub.gateway.errors`: unknown tools become JSON-RPC
-32602, every `DownstreamError` becomes a `CallToolResult` with `isError: true` naming the connector.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error mcp-hub raises on purpose."""


class ConfigError(HubError):
    """A configuration file is invalid; the hub refuses to start on it."""

    def __init__(self, file: str, key: str | None, problem: str) -> None:
        self.file = file
        self.key = key
        self.problem = problem
        where = f"{file}: {key}: " if key else f"{file}: "
        super().__init__(where + problem)


class DatabaseError(HubError):
    """The database cannot be used as it is."""


class SchemaOutOfDateError(DatabaseError):
    """The database schema is older (or newer) than this code expects."""


class CatalogError(HubError):
    """The catalog cannot answer a request."""


class UnknownToolError(CatalogError):
    """No connector serves the requested public tool name."""

    def __init__(self, public_name: str) -> None:
        self.public_name = public_name
        super().__init__(f"Unknown tool: {public_name}")


class DownstreamError(HubError):
    """A call to a downstream server failed; `connector_id` names the server."""

    def __init__(self, connector_id: str, message: str) -> None:
        self.connector_id = connector_id
        super().__init__(message)


class ConnectorUnavailableError(DownstreamError):
    """The connector has no live connection right now."""


class DownstreamTimeoutError(DownstreamError):
    """The downstream did not answer within the connector's call timeout."""


class DownstreamProtocolError(DownstreamError):
    """The downstream answered with a JSON-RPC error, or with something that is not MCP."""

    def __init__(self, connector_id: str, message: str, code: int | None = None) -> None:
        self.code = code
        super().__init__(connector_id, message)
