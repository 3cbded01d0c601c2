"""The hub's tables, as SQLAlchemy 2.x declarative models, grouped by the store that reads and writes them.

- `CatalogStore`: `connectors` (one row per configured downstream server, kept after it leaves the
  configuration), `catalog_tools` (every tool a connector has offered, with `removed_at` once it stops);
- `PinStore`: `catalog_pins` (every definition by SHA-256 and what an admin decided about it);
- `AuditStore`: `audit_calls` (one row per call or approval transition, deliberately without a foreign key, so
  the audit trail outlives the connector and the agent; hash-chained), `audit_checkpoints` (what retention
  pruned, `AuditChainStore`), `audit_seals` (each stored batch's HMAC under `[audit] seal_key`);
- `IdentityStore`: `agents`, `users`, `grants`;
- `SigningKeyStore`: `signing_keys`;
- `OAuthStore`: `refresh_families`, `refresh_tokens`, `authorization_codes`, `consent_requests`,
  `revoked_tokens`, `used_assertions`;
- `WebSessionStore`: `web_sessions`;
- `ApprovalStore`: `approval_actions`;
- `SealingStore`: `hub_secrets` (keys every replica shares), `used_request_states`.

The schema itself is owned by the Alembic migrations in `migrations/`; a test checks that these models and the
migrations agree.

Every timestamp is timezone-aware UTC (`UtcDateTime`): naive datetimes are refused when written, and
SQLite's naive values are read back as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can refer to them on every backend."""

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """`DateTime(timezone=True)` that only accepts aware datetimes and always returns UTC ones."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: use an aware UTC datetime")
        # SQLite stores the wall-clock digits only, so everything is normalised to UTC first: that keeps
        # the stored strings comparable and sortable.
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base bound to the hub's `metadata`."""

    metadata = metadata


class Connector(Base):
    """A downstream server as configured, and its last known health."""

    __tablename__ = "connectors"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    transport: Mapped[str] = mapped_column(String(16))
    protocol: Mapped[str] = mapped_column(String(16))
    """The configured choice: `auto`, `legacy` or `2026-07-28`."""
    era: Mapped[str | None] = mapped_column(String(16))
    """The protocol era actually negotiated, e.g. `2025-11-25`; NULL until connected."""
    enabled: Mapped[bool] = mapped_column(Boolean)
    config_sha256: Mapped[str] = mapped_column(String(64))
    health: Mapped[str] = mapped_column(String(16))
    health_detail: Mapped[str | None] = mapped_column(Text)
    tool_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    registered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_ready_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class CatalogTool(Base):
    """One tool a connector offers (or offered: `removed_at` is set once it disappears)."""

    __tablename__ = "catalog_tools"
    __table_args__ = (UniqueConstraint("connector_id", "downstream_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(String(32), ForeignKey("connectors.id", ondelete="CASCADE"))
    downstream_name: Mapped[str] = mapped_column(String(256))
    public_name: Mapped[str] = mapped_column(String(64), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 hex of the canonical JSON (RFC 8785) of `definition`, computed by the caller."""
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuditCall(Base):
    """One tool call through the hub, whatever its outcome.

    The string columns are unbounded on purpose: an audit row must never be refused for its length,
    since the writer keeps retrying a batch until it is stored.
    """

    __tablename__ = "audit_calls"
    __table_args__ = (
        Index(None, "at"),
        Index(None, "connector_id", "at"),
        Index(None, "client", "at"),
    )

    # BIGINT on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the autoincrementing rowid.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    client: Mapped[str] = mapped_column(Text)
    session: Mapped[str | None] = mapped_column(Text)
    public_name: Mapped[str] = mapped_column(Text)
    connector_id: Mapped[str | None] = mapped_column(Text)
    downstream_name: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(32))
    latency_ms: Mapped[float] = mapped_column(Float)
    detail: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(64), server_default="tools/call")
    """The MCP method: `tools/call`, `prompts/get`, `resources/read`, `completion/complete`, ..."""
    downstream_ms: Mapped[float | None] = mapped_column(Float)
    """The part of `latency_ms` spent waiting on the downstream server (NULL: none was called, or an older row)."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    """The `row_hash` of the row before this one in the chain (`mcp_hub.db.audit_chain`)."""
    row_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 hex over this row's columns and `prev_hash` (`mcp_hub.db.audit_chain.row_hash`)."""


class AuditCheckpoint(Base):
    """What a retention prune left behind: the last row it deleted (the anchor) and a hash chained over the
    previous checkpoint's. Append-only, like `audit_calls` (triggers of migration 0012)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    anchor_id: Mapped[int] = mapped_column(BigInteger)
    anchor_at: Mapped[datetime] = mapped_column(UtcDateTime())
    anchor_hash: Mapped[str] = mapped_column(String(64))
    pruned_rows: Mapped[int] = mapped_column(Integer)
    prev_hash: Mapped[str] = mapped_column(String(64))
    checkpoint_hash: Mapped[str] = mapped_column(String(64))
    mac_key_id: Mapped[str | None] = mapped_column(String(16))
    """With `[audit] seal_key`: the key whose HMAC `mac` is (`mcp_hub.db.audit_seal`); NULL: pruned without it."""
    mac: Mapped[str | None] = mapped_column(String(64))
    sealing_began: Mapped[bool | None] = mapped_column(Boolean)
    """Whether sealing had begun by the anchor (so every row after it is sealed); covered by `mac`."""


class AuditSeal(Base):
    """One stored batch of `audit_calls`, rows `first_id` to `last_id`, authenticated with `[audit] seal_key`
    (`mcp_hub.db.audit_seal`). Append-only; a prune with a MAC removes the seals it covers (migration 0014)."""

    __tablename__ = "audit_seals"
    __table_args__ = (Index(None, "last_id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    sealed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    first_id: Mapped[int] = mapped_column(BigInteger)
    last_id: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
    """The `row_hash` of row `last_id`."""
    key_id: Mapped[str] = mapped_column(String(16))
    mac: Mapped[str] = mapped_column(String(64))


# --- Identity and authorization (issue 3) ---------------------------------------------------------------
# Secrets are never stored: client secrets, refresh tokens, authorization codes and session ids are kept as
# SHA-256 digests of high-entropy random values; passwords as Argon2id hashes.


class Agent(Base):
    """An OAuth client: an agent the admin created, or a client registered by DCR or a metadata document."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(512), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # admin | dcr | cimd
    auth_method: Mapped[str] = mapped_column(String(32))  # client_secret_basic | ..._post | private_key_jwt | none
    secret_sha256: Mapped[str | None] = mapped_column(String(64))
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON)
    grant_types: Mapped[list[str]] = mapped_column(JSON)
    display_name: Mapped[str | None] = mapped_column(Text)
    client_uri: Mapped[str | None] = mapped_column(Text)
    owner_user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id", ondelete="SET NULL"))
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class User(Base):
    """A human who logs in to the hub's web pages: an admin or an approver."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | approver
    password_hash: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Grant(Base):
    """A scope pattern granted to an agent (client credentials) or to a user (tokens issued on their behalf)."""

    __tablename__ = "grants"
    __table_args__ = (
        UniqueConstraint("agent_id", "user_id", "pattern"),
        CheckConstraint("(agent_id IS NULL) <> (user_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    pattern: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SigningKey(Base):
    """A key pair that signs access tokens, published in the JWKS from `published_at` until `retires_at`."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    algorithm: Mapped[str] = mapped_column(String(16))
    private_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())
    signs_from: Mapped[datetime] = mapped_column(UtcDateTime())
    retires_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class RefreshFamily(Base):
    """One chain of rotated refresh tokens; revoking it kills every token of the chain (RFC 9700 §4.14.2)."""

    __tablename__ = "refresh_families"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    dpop_jkt: Mapped[str | None] = mapped_column(String(43))
    """The thumbprint of the DPoP key its refresh tokens are bound to (RFC 9449 §5: public clients); None: unbound."""


class RefreshToken(Base):
    """One refresh token of a family; `used_at` is set exactly once, by the refresh that rotates it."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "family_id"),)

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), ForeignKey("refresh_families.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AuthorizationCode(Base):
    """A single-use authorization code (RFC 6749 §4.1, PKCE RFC 7636), bound to client and redirect URI."""

    __tablename__ = "authorization_codes"

    code_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    family_id: Mapped[str | None] = mapped_column(String(36))


class RevokedToken(Base):
    """An access token revoked before its expiry (RFC 7009), kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"
    __table_args__ = (Index(None, "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    revoked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UsedAssertion(Base):
    """A client assertion that has been used (RFC 7523 §3 item 7), kept until it would have expired anyway."""

    __tablename__ = "used_assertions"
    __table_args__ = (Index(None, "expires_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    """A digest of the client id and the assertion's `jti` (so two clients' jtis never collide)."""
    used_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class UsedRequestState(Base):
    """A sealed `requestState` the hub handed out and a client has used (MCP 2026-07-28 multi-round-trip
    requests): each is single use, kept until it would have expired anyway."""

    __tablename__ = "used_request_states"
    __table_args__ = (Index(None, "expires_at"),)

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The state's random id (never the state itself)."""
    used_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class HubSecret(Base):
    """A symmetric key every replica shares (the first replica to need it creates it), e.g. the key that seals
    `requestState`. Stored as base64; rotated by adding a newer row under a new name."""

    __tablename__ = "hub_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class WebSession(Base):
    """A logged-in human's browser session (the cookie holds the random id; the row holds its digest)."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "user_id"),)

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AgentLimitOverride(Base):
    """One agent's own rate limits and quotas, set with `mcp-hub limits set` (issue 10 §1): the fields of
    `config.settings.AgentLimits` that are set, as JSON."""

    __tablename__ = "agent_limits"

    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    limits: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConsentRequest(Base):
    """An authorization request waiting for the user's consent; its id is single-use (T06)."""

    __tablename__ = "consent_requests"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


# --- Human approval of sensitive calls (issue 4) -----------------------------------------------------------


class ApprovalAction(Base):
    """A held tool call, prompt get or resource read: its exact arguments, the digest binding them, and where it
    is in its life.

    pending → approved → executing → done, or pending → denied | expired | withdrawn; `reported_at` is set
    when the outcome has been handed to the agent, which closes the action (a new identical call makes a
    new one). At most one action per (agent, user, digest) is open: two partial unique indexes, one for
    calls on behalf of a user and one for calls without (NULLs are distinct in a unique index, and SQLite
    cannot reflect an index over `coalesce(user_id, '')`).
    """

    __tablename__ = "approval_actions"
    __table_args__ = (
        Index(None, "agent_id", "digest"),
        Index(None, "status", "created_at"),
        Index(
            "uq_approval_actions_open_agent_user_digest",
            "agent_id",
            "user_id",
            "digest",
            unique=True,
            sqlite_where=text("reported_at IS NULL AND user_id IS NOT NULL"),
            postgresql_where=text("reported_at IS NULL AND user_id IS NOT NULL"),
        ),
        Index(
            "uq_approval_actions_open_agent_digest_no_user",
            "agent_id",
            "digest",
            unique=True,
            sqlite_where=text("reported_at IS NULL AND user_id IS NULL"),
            postgresql_where=text("reported_at IS NULL AND user_id IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(36), ForeignKey("agents.id", ondelete="CASCADE"))
    user_id: Mapped[str | None] = mapped_column(String(36), ForeignKey("users.id", ondelete="SET NULL"))
    agent_name: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(64), server_default="tools/call")
    """What is held: `tools/call`, `prompts/get` or `resources/read`."""
    public_name: Mapped[str] = mapped_column(Text)
    """The public tool or prompt name, or the public URI read."""
    connector_id: Mapped[str] = mapped_column(String(32))
    downstream_name: Mapped[str] = mapped_column(Text)
    definition_sha256: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    arguments: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(64))
    rules: Mapped[list[str]] = mapped_column(JSON)
    approvers: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reported_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    executing_replica: Mapped[str | None] = mapped_column(String(128))
    """The replica that runs it (`executing`): start-up recovery fails only its own or orphaned ones."""
    hold_reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
    """What held it, recorded when it was held: each rule with the parts of it that matched
    (`mcp_hub.approvals.reasons`, bounded). NULL for actions stored before migration 0013."""


class HubReplica(Base):
    """A hub replica's lease (issue 12 §4): renewed while it runs; one whose lease expired is gone, and the approved
    calls it was running are failed by whichever replica notices first."""

    __tablename__ = "hub_replicas"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CatalogPin(Base):
    """One definition (tool, prompt or resource template) a connector offered, pinned by its SHA-256, and what
    was decided about it (issue 11 §1): `pending` (waits for an admin), `approved` (at most one per name: the
    pin), `rejected`, `superseded` (approved once, replaced by a later approval), `refused` (over a size cap)."""

    __tablename__ = "catalog_pins"
    __table_args__ = (
        UniqueConstraint("connector_id", "kind", "name", "sha256"),
        Index(None, "status"),
        Index(
            "uq_catalog_pins_one_approved",
            "connector_id",
            "kind",
            "name",
            unique=True,
            sqlite_where=text("status = 'approved'"),
            postgresql_where=text("(status)::text = 'approved'::text"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(2048))
    """The downstream's own name (tools, prompts) or URI template."""
    public_name: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    """SHA-256 hex of the RFC 8785 canonical JSON of `definition`, the whole definition as the downstream sent it."""
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    flags: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64))
    """A user's name, or `auto` (the connector's trust), `lock` (the lock file), `hub` (a refusal)."""
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
