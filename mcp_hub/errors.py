"""The one exception tree of mcp-hub.

    HubError
    ├── ConfigError                 a configuration file is wrong (names the file, the key, the problem)
    ├── DatabaseError
    │   └── SchemaOutOfDateError    the database is not at the code's migration head
    ├── CatalogError
    │   └── UnknownToolError        a public tool name that no connector serves
    ├── DownstreamError             something between the hub and a downstream server failed
    │   ├── ConnectorUnavailableError   the connector is not connected (connecting, down, disabled)
    │   ├── DownstreamTimeoutError      the downstream did not answer within the call timeout
    │   └── DownstreamProtocolError     the downstream answered with a JSON-RPC error or garbage
    ├── NotFoundError               an admin command names an agent, user or key that does not exist
    ├── ConflictError               an admin command would create a duplicate
    ├── ApprovalError               a pending action cannot be created or decided (`kind`: too_many_pending,
    │                               not_found, forbidden, conflict)
    └── AuthError                   authentication or authorization refused a request
        ├── OAuthError              an OAuth endpoint refuses (RFC 6749 §5.2 `error`, description, status)
        ├── InvalidTokenError       a bearer token is missing, malformed, expired, foreign or revoked (401)
        └── AccessDeniedError       an authenticated caller lacks the scope (403 insufficient_scope)

The mapping to the wire lives in one place per surface: `mcp_hub.gateway.errors` for MCP (unknown tools
become JSON-RPC -32602, every `DownstreamError` a `CallToolResult` with `isError: true` naming the
connector, `AccessDeniedError` the hub's JSON-RPC error -32003), `mcp_hub.authz.http` for OAuth endpoints
and the resource server's 401/403 answers.
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


class NotFoundError(HubError):
    """An admin operation names something that does not exist."""


class ConflictError(HubError):
    """An admin operation would create a duplicate."""


class AuthError(HubError):
    """Authentication or authorization refused the request."""


class OAuthError(AuthError):
    """An OAuth endpoint refuses the request (RFC 6749 §5.2)."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        self.error = error
        self.description = description
        self.status = status
        super().__init__(f"{error}: {description}")


class InvalidTokenError(AuthError):
    """No usable bearer token (RFC 6750 §3.1 `invalid_token`, or no token at all when `error` is None)."""

    def __init__(self, description: str, *, error: str | None = "invalid_token") -> None:
        self.error = error
        self.description = description
        super().__init__(description)


class AccessDeniedError(AuthError):
    """The caller is authenticated but its grants do not cover the request (RFC 6750 `insufficient_scope`)."""

    def __init__(self, description: str, required_scope: str) -> None:
        self.required_scope = required_scope
        super().__init__(description)


class ApprovalError(HubError):
    """A pending action cannot be created or decided; `kind` says why (mapped to 429/404/403/409)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)
