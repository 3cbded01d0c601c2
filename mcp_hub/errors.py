"""The one exception tree of mcp-hub.

    HubError
    ├── ConfigError                     a configuration file is wrong (names the file, the key, the problem)
    ├── InvalidInputError               input from an admin, a client or a file fails validation (a ValueError)
    │   ├── InvalidRequestError         an HTTP request body or query cannot be read (size, syntax, repeats)
    │   │   └── UnsupportedMediaTypeError   the body is not of the media type the endpoint reads
    │   ├── MissingCapabilityError      an MCP request needs a client capability it did not declare
    │   └── HeaderMismatchError         an MCP request's `Mcp-*` header disagrees with its body
    ├── NotFoundError                   an admin command names an agent, user or key that does not exist
    ├── ConflictError                   an admin command would create a duplicate
    ├── DatabaseError
    │   └── SchemaOutOfDateError        the database is not at the code's migration head
    ├── CatalogError
    │   ├── UnknownToolError            a public tool name that no connector serves
    │   ├── UnknownPromptError          a public prompt name that no connector serves
    │   ├── ResourceNotFoundError       a resource URI the hub did not hand out
    │   └── InvalidCursorError          a pagination cursor the catalog did not issue
    ├── DownstreamError                 something between the hub and a downstream server failed
    │   ├── ConnectorUnavailableError   the connector is not connected (connecting, down, disabled)
    │   │   ├── DownstreamUnreachableError  no connection to the downstream could be opened (refused, TLS, timeout)
    │   │   └── DownstreamClosedError       the downstream closed the connection before its answer ended
    │   ├── DownstreamTimeoutError      the downstream did not answer within the call timeout
    │   ├── DownstreamRejectedError     the downstream answered with a JSON-RPC error (its code is kept)
    │   ├── DownstreamProtocolError     the downstream answered with something that is not MCP
    │   └── DownstreamAuthError         the downstream's authorization server refused the hub's own credentials
    ├── QuestionRefusedError            a downstream's question cannot be put to the caller (`code` tells it why)
    ├── EgressRefusedError              the egress guard refused to fetch a URL (not public, not https, too big)
    ├── ApprovalError                   a pending action cannot be created or decided
    │   ├── TooManyPendingError         the caller already has `max_pending_per_caller` actions waiting
    │   ├── HeldRequestError            a held prompt get or resource read is pending, refused or failed
    │   ├── ActionNotFoundError         no such action
    │   ├── DecisionForbiddenError      this user may not decide this action (separation of duties)
    │   ├── DecisionConflictError       the action was decided already: decisions are final
    │   └── CallHistoryUnavailableError the callers' earlier calls cannot be told (a rule with `after` then holds)
    └── AuthError                       authentication or authorization refused a request
        ├── OAuthError                  an OAuth endpoint refuses (RFC 6749 §5.2 `error`, description, status)
        ├── InvalidTokenError           a bearer token is missing, malformed, expired, foreign or revoked
        │   └── InvalidDpopProofError   a DPoP proof (RFC 9449) is missing, malformed or does not fit its request
        ├── AccessDeniedError           an authenticated caller lacks the scope for a tool
        └── SigningKeyError             no signing key may sign now

Each surface maps the tree to its wire in one place, and nowhere else (each module's docstring has the table):

- MCP, JSON-RPC in both eras over HTTP and stdio: `mcp_hub.gateway.errors`. `UnknownToolError`,
  `InvalidCursorError`, `ActionNotFoundError` → -32602; `ResourceNotFoundError` → -32602 (`data.uri`);
  `AccessDeniedError` → -32003 (`data.error = insufficient_scope`, the scope); `InvalidTokenError` → -32003
  (`data.error = invalid_token`); `MissingCapabilityError` → -32021; `HeaderMismatchError` → -32020;
  `HeldRequestError`, and `TooManyPendingError` outside `tools/call` → -32003 (`data.error =
  approval_required`); in `tools/call`, every `DownstreamError` and `TooManyPendingError` → a tool result with
  `isError: true` that the model reads.
- OAuth endpoints and the resource server's challenges: `mcp_hub.authz.http`. `OAuthError` → RFC 6749 §5.2 JSON
  (`invalid_client` always 401 with `WWW-Authenticate: Basic`); `InvalidTokenError` → 401 and
  `AccessDeniedError` → 403, each with an RFC 6750 §3 `WWW-Authenticate: Bearer` challenge (`DPoP`, RFC 9449
  §7.1, for a DPoP refusal or when DPoP is required); `InvalidDpopProofError` at the token endpoint → 400
  `invalid_dpop_proof`.
- Web pages and the approvals JSON API: `mcp_hub.web.errors`. `InvalidInputError` → 400
  (`UnsupportedMediaTypeError` → 415 in the API); `ActionNotFoundError`, `NotFoundError` → 404;
  `DecisionForbiddenError` → 403; `DecisionConflictError`, `ConflictError` → 409.
- The admin JSON API: `mcp_hub.web.admin_api.framework.hub_error_response`, `mcp_hub.web.errors`'s statuses
  except that an `InvalidInputError` a service raises (not `InvalidRequestError`) is 422, as a model's is.
- The `mcp-hub` command: `mcp_hub.cli.main`. `ConfigError` and `InvalidInputError` → exit 2; every other
  `HubError` → exit 1, its message on stderr.

Not in the tree, on purpose: `ValueError` raised inside pydantic validators (pydantic's protocol; loading turns
it into `ConfigError`), and the guards against misuse of an internal API (a naive datetime, an audit writer used
outside `running()`): those are bugs, raise `ValueError`/`RuntimeError`, and never answer a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


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


class InvalidInputError(HubError, ValueError):
    """Input from an admin, a client or a file fails validation; the message says what is wrong."""


class InvalidRequestError(InvalidInputError):
    """An HTTP request's body or query cannot be read: too large, the wrong media type, a repeated field."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """The request body is not of the media type the endpoint reads (a form, or JSON)."""


class MissingCapabilityError(InvalidInputError):
    """An MCP request needs a client capability (or extension) it did not declare; `required` names it."""

    def __init__(self, message: str, required: dict[str, Any]) -> None:
        self.required = required
        super().__init__(message)


class HeaderMismatchError(InvalidInputError):
    """An MCP request's `Mcp-*` header says something else than its body (threat T14)."""


class NotFoundError(HubError):
    """An admin operation names something that does not exist."""


class ConflictError(HubError):
    """An admin operation would create a duplicate."""


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


class UnknownPromptError(CatalogError):
    """No connector serves the requested public prompt name."""

    def __init__(self, public_name: str) -> None:
        self.public_name = public_name
        super().__init__(f"Unknown prompt: {public_name}")


class ResourceNotFoundError(CatalogError):
    """The URI is not one the hub handed out: no connector's listed resource or resource template."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        super().__init__(f"Resource not found: {uri[:300]}")


class InvalidCursorError(CatalogError):
    """A pagination cursor this catalog did not issue."""


class DownstreamError(HubError):
    """A call to a downstream server failed; `connector_id` names the server."""

    def __init__(self, connector_id: str, message: str) -> None:
        self.connector_id = connector_id
        super().__init__(message)


class ConnectorUnavailableError(DownstreamError):
    """The connector has no live connection right now."""


class DownstreamUnreachableError(ConnectorUnavailableError):
    """No connection to the downstream could be opened: refused, unresolvable, TLS refused, or the connect timeout."""


class DownstreamClosedError(ConnectorUnavailableError):
    """The downstream closed the connection (or it broke) before the answer to a request had ended."""


class DownstreamTimeoutError(DownstreamError):
    """The downstream did not answer within the connector's call timeout."""


class DownstreamRejectedError(DownstreamError):
    """The downstream answered with a JSON-RPC error: `code`, its own `message` and `data` are relayed."""

    def __init__(self, connector_id: str, code: int, message: str, data: Any = None) -> None:
        self.code = code
        self.downstream_message = message
        self.data = data
        super().__init__(connector_id, f"{connector_id}: {message}")


class DownstreamProtocolError(DownstreamError):
    """The downstream answered with something that is not MCP."""


class DownstreamAuthError(DownstreamError):
    """The downstream's authorization server refused the hub's own client credentials (never shows the secret)."""


class QuestionRefusedError(HubError):
    """A downstream's question (elicitation, sampling) cannot be put to the caller: the caller did not declare
    the capability, the question cannot be attributed to one caller, or the caller answered with an error.
    `code` is the JSON-RPC error the downstream gets."""

    def __init__(self, code: int, message: str) -> None:
        self.code = code
        super().__init__(message)


class EgressRefusedError(HubError):
    """The egress guard refused a URL or an address; the message says why."""


class ApprovalError(HubError):
    """A pending action cannot be created or decided; `reason` is the machine-readable kind."""

    reason: ClassVar[str] = "refused"


class TooManyPendingError(ApprovalError):
    """The caller (agent, and user) already has as many actions waiting for a decision as it may have."""

    reason: ClassVar[str] = "too_many_pending"


class HeldRequestError(ApprovalError):
    """A prompt get or resource read that a rule holds has no result for its caller (yet): pending, denied,
    expired, not run, or failed downstream. `approval` is the action's summary, when there is an action."""

    reason: ClassVar[str] = "held"

    def __init__(self, message: str, approval: Mapping[str, Any] | None = None) -> None:
        self.approval = approval
        super().__init__(message)


class ActionNotFoundError(ApprovalError):
    """No action has this id."""

    reason: ClassVar[str] = "not_found"


class DecisionForbiddenError(ApprovalError):
    """This user may not decide this action (disabled, the agent's owner, the user it acts for, not named)."""

    reason: ClassVar[str] = "forbidden"


class DecisionConflictError(ApprovalError):
    """The action is no longer pending: decisions are final."""

    reason: ClassVar[str] = "conflict"


class CallHistoryUnavailableError(ApprovalError):
    """The callers' earlier calls, which a rule with `after` reads, cannot be told (Redis unreachable, a call not
    recorded, callers forgotten): never on a wire, the rule holds the call and says why (threat T18)."""

    reason: ClassVar[str] = "history_unavailable"


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
    """No usable bearer token (RFC 6750 §3.1 `invalid_token`, or no token at all when `error` is None); `dpop`:
    the refusal is about DPoP (RFC 9449 §7.1), so its challenge uses the `DPoP` scheme."""

    def __init__(self, description: str, *, error: str | None = "invalid_token", dpop: bool = False) -> None:
        self.error = error
        self.description = description
        self.dpop = dpop
        super().__init__(description)


class InvalidDpopProofError(InvalidTokenError):
    """A DPoP proof is missing, malformed or does not fit the request or the token (RFC 9449 §4.3, §7.1
    `invalid_dpop_proof`); at the token endpoint it is the OAuth error of the same name (§5)."""

    def __init__(self, description: str) -> None:
        super().__init__(description, error="invalid_dpop_proof", dpop=True)


class AccessDeniedError(AuthError):
    """The caller is authenticated but its grants do not cover the tool, prompt or resource (RFC 6750
    `insufficient_scope`); `target` is its public name or URI."""

    _VERBS: ClassVar[dict[str, str]] = {"tool": "call", "prompt": "get the prompt", "resource": "read"}

    def __init__(self, target: str, required_scope: str, kind: str = "tool") -> None:
        self.target = target
        self.kind = kind
        self.required_scope = required_scope
        super().__init__(f"this agent may not {self._VERBS.get(kind, 'use')} {target} (needs scope {required_scope})")


class SigningKeyError(AuthError):
    """No signing key may sign now (all retired or not yet active)."""
