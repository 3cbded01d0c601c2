"""The hub's vocabulary: typed ids, and every closed set of values (statuses, roles, outcomes), each defined once.

Ids are `NewType`s over `str`, so an agent's id cannot be passed where a user's or an OAuth client id is
expected (they are all strings in the database). Enums are `StrEnum`s: their values are what the database
stores and what the wire shows, so `ActionStatus.PENDING == "pending"`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, NewType, TypeVar

AgentId = NewType("AgentId", str)
"""The primary key of an agent (an OAuth client of the hub)."""
UserId = NewType("UserId", str)
"""The primary key of a human user."""
ClientId = NewType("ClientId", str)
"""An agent's OAuth `client_id` (what tokens and client authentication name; not its primary key)."""
ConnectorId = NewType("ConnectorId", str)
"""A connector's id: its file name, the prefix of its public tool names."""
ActionId = NewType("ActionId", str)
"""A pending action's id (`apv_...`): also its approval link and its task id."""

Clock = Callable[[], datetime]
"""What components read the time from; tests pass one they can move."""


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (naive datetimes break token expiry and the database)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a call, as the audit trail names it: the principal's label with auth, else the client's own
    (self-reported) name and address; and the legacy session it came on, if any."""

    client: str
    session: str | None = None


EnumT = TypeVar("EnumT", bound=StrEnum)


def member_of(kind: type[EnumT], value: object, what: str) -> EnumT:
    """`value` as a member of `kind`; a `ValueError` naming `what` otherwise (a bug: never store a value that
    nobody can interpret)."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}: expected one of {sorted(kind)}") from None


class Role(StrEnum):
    """What a human user may do in the hub's pages."""

    ADMIN = "admin"
    APPROVER = "approver"


APPROVER_ROLES: Final = frozenset({Role.APPROVER, Role.ADMIN})
"""Roles that see the approval pages (an admin may decide wherever an approver may)."""


class AgentSource(StrEnum):
    """How an OAuth client came to exist."""

    ADMIN = "admin"
    """`mcp-hub agents create`: it has grants of its own."""
    DCR = "dcr"
    """RFC 7591 dynamic client registration: it acts only for a consenting user."""
    CIMD = "cimd"
    """A Client ID Metadata Document URL: it acts only for a consenting user."""


class ClientAuthMethod(StrEnum):
    """`token_endpoint_auth_method` values the hub supports (RFC 7591 §2)."""

    CLIENT_SECRET_BASIC = "client_secret_basic"  # noqa: S105 - a method name, not a secret
    CLIENT_SECRET_POST = "client_secret_post"  # noqa: S105 - a method name, not a secret
    PRIVATE_KEY_JWT = "private_key_jwt"
    NONE = "none"


SECRET_METHODS: Final = frozenset({ClientAuthMethod.CLIENT_SECRET_BASIC, ClientAuthMethod.CLIENT_SECRET_POST})
"""The methods that present a shared secret (either is accepted for a client registered with the other)."""


class GrantType(StrEnum):
    """The OAuth grant types of the token endpoint."""

    CLIENT_CREDENTIALS = "client_credentials"
    AUTHORIZATION_CODE = "authorization_code"
    REFRESH_TOKEN = "refresh_token"  # noqa: S105 - a grant type, not a secret


class CatalogKind(StrEnum):
    """What a downstream server offers that the hub federates, each under a public name or URI."""

    TOOL = "tool"
    PROMPT = "prompt"
    RESOURCE = "resource"
    RESOURCE_TEMPLATE = "resource_template"

    @property
    def scope_kind(self) -> str:
        """The kind of grant that covers it (`tool:`, `prompt:`, `resource:`): templates are resources."""
        return "resource" if self is CatalogKind.RESOURCE_TEMPLATE else self.value


class PinStatus(StrEnum):
    """What was decided about one pinned definition (issue 11 §1, `mcp_hub.db.pins`)."""

    PENDING = "pending"
    """Waits for an admin: neither listed nor callable."""
    APPROVED = "approved"
    """The pin: at most one per (connector, kind, name); offered while the downstream offers exactly this."""
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    """Approved once, replaced by a later approval; offered again only after a new approval."""
    REFUSED = "refused"
    """Never offered, never approvable: over a size cap, or a name with hidden characters."""


@dataclass(frozen=True, slots=True)
class ConnectorListing:
    """Everything one downstream server listed, as wire dicts, and the capabilities it declared."""

    tools: tuple[Mapping[str, Any], ...] = ()
    prompts: tuple[Mapping[str, Any], ...] = ()
    resources: tuple[Mapping[str, Any], ...] = ()
    resource_templates: tuple[Mapping[str, Any], ...] = ()
    capabilities: Mapping[str, Any] = field(default_factory=dict[str, Any])
    """The downstream's `ServerCapabilities` (wire form): which lists exist, subscribe, completions, logging."""

    def of(self, kind: CatalogKind) -> tuple[Mapping[str, Any], ...]:
        return {
            CatalogKind.TOOL: self.tools,
            CatalogKind.PROMPT: self.prompts,
            CatalogKind.RESOURCE: self.resources,
            CatalogKind.RESOURCE_TEMPLATE: self.resource_templates,
        }[kind]


class HubPhase(StrEnum):
    """Where the hub is in its life, as `/healthz` and `/readyz` show it."""

    STARTING = "starting"
    """Connectors are making their first attempt; lists wait for them (within `timeouts.connect_seconds`)."""
    READY = "ready"
    STOPPING = "stopping"


class Health(StrEnum):
    """A connector's state, as `/healthz`, the database and `mcp-hub connectors list` show it."""

    CONNECTING = "connecting"
    """Starting, or reconnecting after a loss; no calls are forwarded."""
    READY = "ready"
    """Connected, tools listed, calls forwarded."""
    DEGRADED = "degraded"
    """Connected, but recent calls failed at the transport (the connector is being checked)."""
    DOWN = "down"
    """The last connection attempt failed; the hub retries with backoff."""
    DISABLED = "disabled"
    """`enabled = false` in the connector file, or no longer configured."""


class AuditOutcome(StrEnum):
    """The outcome column of the audit trail: one per call, and one per approval transition."""

    OK = "ok"
    TOOL_ERROR = "tool_error"
    INPUT_REQUIRED = "input_required"
    """The downstream asked the user something first (2026-07-28 `input_required`); the retry is its own row."""
    UNKNOWN_TOOL = "unknown_tool"
    NOT_FOUND = "not_found"
    """A prompt or resource the hub never handed out."""
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    DOWNSTREAM_ERROR = "downstream_error"
    CANCELLED = "cancelled"
    INTERNAL_ERROR = "internal_error"
    FORBIDDEN = "forbidden"
    RATE_LIMITED = "rate_limited"
    """A bucket of the agent, of the agent and connector, or of the agent and tool was empty (issue 10 §1)."""
    QUOTA_EXCEEDED = "quota_exceeded"
    LOOP_STOPPED = "loop_stopped"
    """The same call (tool and arguments) repeated beyond its loop rule (issue 10 §3)."""
    APPROVAL_REQUESTED = "approval_requested"
    APPROVAL_APPROVED = "approval_approved"
    APPROVAL_DENIED = "approval_denied"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_WITHDRAWN = "approval_withdrawn"
    APPROVAL_EXECUTED = "approval_executed"
    APPROVAL_RETURNED = "approval_returned"
    APPROVAL_REFUSED = "approval_refused"
    # Review of downstream definitions (issue 11 §1-§4, `mcp_hub.catalog.review`): one row per decision.
    DEFINITION_QUARANTINED = "definition_quarantined"
    """A new or changed definition waits for an admin (not listed, not callable)."""
    DEFINITION_ACCEPTED = "definition_accepted"
    """Accepted without an admin: the connector's `trust = "auto"`, or the lock file names it."""
    DEFINITION_APPROVED = "definition_approved"
    DEFINITION_REJECTED = "definition_rejected"
    DEFINITION_REFUSED = "definition_refused"
    """Never offered: over a size cap, or hidden characters in its name."""
    # Admin changes (the admin API and console, `mcp_hub.admin.changes`): one row per change asked for.
    ADMIN_REFUSED = "admin_refused"
    """An admin change that was refused (unknown target, invalid value, conflict): nothing changed."""


ADMIN_METHOD_PREFIX: Final = "admin/"
"""The audit `method` of an admin change starts with this (`admin/agents.create`): its client is an admin."""

NOT_CALL_OUTCOMES: Final = frozenset(
    outcome for outcome in AuditOutcome if outcome.startswith(("approval_", "definition_"))
)
"""Audit outcomes of rows that record a transition (of an approval, of a definition's review), not a request:
usage and metrics count them apart from calls."""

FAILURE_OUTCOMES: Final = frozenset(
    {
        AuditOutcome.TOOL_ERROR,
        AuditOutcome.UNAVAILABLE,
        AuditOutcome.TIMEOUT,
        AuditOutcome.DOWNSTREAM_ERROR,
        AuditOutcome.INTERNAL_ERROR,
    }
)
"""Calls that failed at the tool, the downstream or the hub: the *errors* of the dashboard and of usage."""

REFUSAL_OUTCOMES: Final = frozenset(
    {
        AuditOutcome.UNKNOWN_TOOL,
        AuditOutcome.NOT_FOUND,
        AuditOutcome.FORBIDDEN,
        AuditOutcome.RATE_LIMITED,
        AuditOutcome.QUOTA_EXCEEDED,
        AuditOutcome.LOOP_STOPPED,
    }
)
"""Calls the hub turned away (unknown names, grants, limits, loops): the *refusals* of the dashboard and of usage,
counted apart from errors. A call's outcome is in at most one of the two; ok, input_required and cancelled (the
caller's choice) are in neither."""


class ActionStatus(StrEnum):
    """Where a held call is in its life: `pending → approved → executing → done | failed`, or
    `pending → denied | expired | withdrawn`; an approved action not run in time becomes `expired` too."""

    PENDING = "pending"
    APPROVED = "approved"
    EXECUTING = "executing"
    DONE = "done"
    FAILED = "failed"
    DENIED = "denied"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"

    @property
    def is_decided(self) -> bool:
        """Past `pending`: decided by a human, by the agent (withdrawn) or by the clock (expired)."""
        return self is not ActionStatus.PENDING

    @property
    def is_settled(self) -> bool:
        """It has an outcome the agent can be handed (nothing will change it any more)."""
        return self in SETTLED_STATUSES

    @property
    def is_running(self) -> bool:
        """Approved and not finished: a request may be about to run it, or running it."""
        return self in (ActionStatus.APPROVED, ActionStatus.EXECUTING)


ALL_STATUSES: Final = tuple(ActionStatus)
DECIDED_STATUSES: Final = tuple(status for status in ActionStatus if status.is_decided)
SETTLED_STATUSES: Final = frozenset(
    {ActionStatus.DONE, ActionStatus.FAILED, ActionStatus.DENIED, ActionStatus.EXPIRED, ActionStatus.WITHDRAWN}
)


class Consumption(StrEnum):
    """What consuming a single-use artefact (an authorization code, a refresh token) found."""

    FIRST_USE = "ok"
    """This caller consumed it: the one use it has."""
    REUSED = "reused"
    """It had been used before: a replay, and a sign that two parties hold it."""
    EXPIRED = "expired"
    REVOKED = "revoked"
    UNKNOWN = "unknown"


class Resumption(StrEnum):
    """What a session's event store found for the `Last-Event-ID` a 2025-11-25 client reconnected with."""

    RESUMABLE = "resumable"
    """An id of one of this session's streams, and every event after it is still held: the replay is whole."""
    LOST = "lost"
    """An id of one of this session's streams, but events after it were evicted: a replay would hide a gap."""
    UNKNOWN = "unknown"
    """Not an id of this session's streams: forged, another session's, or of a stream evicted entirely."""
