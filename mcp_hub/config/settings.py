"""The hub's own settings, read from `config.toml` (see the shipped file for every key).

Relative paths (the connectors directory, a SQLite file) are resolved against the directory of the
configuration file, so `mcp-hub serve --config /etc/mcp-hub/config.toml` works from any directory.
The environment variable `MCP_HUB_DATABASE_URL`, when set, replaces `database.url`; `MCP_HUB_REPLICA_ID`
replaces `hub.replica_id`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcp_hub.config._toml import read_toml, validate
from mcp_hub.config.virtual import MetaToolsMode
from mcp_hub.credentials import seal_key_bytes
from mcp_hub.errors import ConfigError

DATABASE_URL_ENV = "MCP_HUB_DATABASE_URL"
REPLICA_ID_ENV = "MCP_HUB_REPLICA_ID"
_SUPPORTED_DATABASE_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")

PAGE_MAX_BYTES: Final = 512 * 1024
"""The default bound of a list page's JSON. The smallest cap a client is known to have is the MCP Python SDK's
1 MiB per SSE event (`mcp.client.streamable_http.DEFAULT_MAX_SSE_EVENT_SIZE`; a hub of hubs caps a downstream
message at 4 MiB, connectors' `max_message_bytes`): half of it leaves room for the JSON-RPC envelope, the
`serverInfo` stamp and SSE framing. 2,000 tools of typical size (~220 bytes each) are ~440 KB: the page size,
not this bound, ends their pages."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Section):
    listen_host: str = "127.0.0.1"
    listen_port: Annotated[int, Field(ge=0, le=65535)] = 8420
    public_base_url: str | None = None
    mcp_path: str = "/mcp"
    connectors_dir: str = "connectors"
    virtual_dir: str = "virtual"
    """Virtual servers (issue 11 §6): one `<name>.toml` each, served at `<mcp_path>/v/<name>`; may be absent."""
    connectors_poll_seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0
    """How often the running hub looks for added, changed or removed connector files (0: only on SIGHUP)."""
    allowed_hosts: list[str] = Field(default_factory=list[str])
    allowed_origins: list[str] = Field(default_factory=list[str])
    max_request_body_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    max_legacy_sessions: Annotated[int, Field(gt=0)] = 1000
    """2025-11-25 sessions open at once, per endpoint (`/mcp` and each profile)."""
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """A request's line and headers must arrive within this long, or the connection is closed."""
    max_header_bytes: Annotated[int, Field(ge=4096, le=1048576)] = 65536
    """A request's line and header fields together may be at most this long, or it is answered 431 and the
    connection closed (RFC 6585 §5)."""
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """A request's whole body must arrive within this long of the request, or it is answered 408."""
    keep_alive_seconds: Annotated[int, Field(ge=1, le=300)] = 5
    """An idle keep-alive connection is closed after this long."""
    max_legacy_sessions_per_principal: Annotated[int, Field(gt=0)] = 32
    """2025-11-25 sessions one principal (agent, and user) may have open at once, over all endpoints (T28)."""
    replica_id: Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9._:@-]*$")] = ""
    """This replica's stable id (issue 12 §4; `MCP_HUB_REPLICA_ID` overrides); empty: `<hostname>:<listen_port>`."""
    replica_lease_seconds: Annotated[float, Field(ge=3, le=3600)] = 30.0
    """A replica not heard of for this long is gone: the approved calls it was running are failed by another."""
    fast_path: bool = True
    """2026-07-28 `tools/call` and list requests skip the SDK's server machinery (`mcp_hub.gateway.fast_path`);
    false forces every request through the SDK path (same answers, more CPU per call)."""

    @field_validator("mcp_path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") or value == "/":
            raise ValueError("must start with '/' and name a path, e.g. '/mcp'")
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/") if value else value


class DatabaseSection(_Section):
    url: str = "sqlite+aiosqlite:///.hub-data/hub.db"

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(_SUPPORTED_DATABASE_PREFIXES):
            raise ValueError(f"must start with one of {', '.join(_SUPPORTED_DATABASE_PREFIXES)}")
        return value


class TimeoutsSection(_Section):
    connect_seconds: Annotated[float, Field(gt=0)] = 30.0
    call_seconds: Annotated[float, Field(gt=0)] = 60.0
    shutdown_seconds: Annotated[float, Field(gt=0)] = 10.0
    reconnect_initial_seconds: Annotated[float, Field(gt=0)] = 0.5
    reconnect_max_seconds: Annotated[float, Field(gt=0)] = 30.0


class CatalogSection(_Section):
    page_size: Annotated[int, Field(gt=0, le=10_000)] = 2000
    """Entries per list page at most: 2,000 makes a walk of 10,000 tools 5 requests, not 20 (docs/benchmarks.md);
    `page_max_bytes` keeps a page of large definitions within what clients read."""
    page_max_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = PAGE_MAX_BYTES
    """A list page's JSON (the result object) at most: a page ends at `page_size` entries or before the entry
    that would take it past this, whichever comes first. A single entry larger than this is served alone."""
    list_ttl_ms: Annotated[int, Field(ge=0)] = 60_000
    # Issue 11 §7: the search meta-tools on /mcp itself (a virtual server sets its own in its file).
    meta_tools: MetaToolsMode = "off"
    search_results: Annotated[int, Field(gt=0, le=200)] = 20
    """The most tools one `search_tools` answer lists."""
    # --- pinning and review (issue 11 §1-§4: `mcp_hub.catalog.review`, `mcp_hub.catalog.sync`) ---
    relist_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300.0
    """Every connector is listed again this often (0: only on announcements and reconnects): a silent change
    of a definition is caught within this period."""
    review_poll_seconds: Annotated[float, Field(gt=0, le=3600)] = 2.0
    """How often the hub looks for review decisions made elsewhere (`mcp-hub catalog approve`, another replica)."""
    max_description_bytes: Annotated[int, Field(ge=256, le=16 * 1024 * 1024)] = 32 * 1024
    """A definition whose description (UTF-8) is longer is refused, never truncated."""
    max_schema_bytes: Annotated[int, Field(ge=256, le=64 * 1024 * 1024)] = 256 * 1024
    """A tool's input or output schema (or a prompt's arguments) longer than this, as JSON, is refused."""
    lock: str | None = None
    """A lock file (`mcp-hub catalog export`): when set, nothing that is not in it is offered."""


class StreamsSection(_Section):
    """Resumable 2025-11-25 SSE streams (`mcp_hub.gateway.event_store`): what a session's streams carried is kept
    within these bounds, so a client that reconnects with `Last-Event-ID` is sent what it missed."""

    retry_ms: Annotated[int, Field(ge=100, le=600_000)] = 1000
    """The SSE `retry` field: how long a client waits before it reconnects a stream the hub closed."""
    max_events: Annotated[int, Field(gt=0)] = 50_000
    max_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    max_events_per_session: Annotated[int, Field(gt=0)] = 2_000
    max_events_per_stream: Annotated[int, Field(gt=0)] = 1_000
    max_age_seconds: Annotated[float, Field(gt=0, le=86_400)] = 300.0

    @model_validator(mode="after")
    def _bounds_nest(self) -> StreamsSection:
        if not self.max_events_per_stream <= self.max_events_per_session <= self.max_events:
            raise ValueError("expected max_events_per_stream <= max_events_per_session <= max_events")
        if self.max_age_seconds * 1000 <= self.retry_ms:
            raise ValueError("max_age_seconds must outlast retry_ms, or no event survives a client's reconnect")
        return self


_LOOPBACK_HTTP = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")
_SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")


class AuditWebhookSink(_Section):
    """`[audit.webhook]`: every stored audit record POSTed as JSON, HMAC-signed (docs/audit.md)."""

    url: str
    secret: str
    """A `${VAR}` reference: the HMAC key that signs deliveries."""
    batch_size: Annotated[int, Field(gt=0, le=1000)] = 100
    """Records per POST at most."""
    queue_size: Annotated[int, Field(gt=0)] = 10_000
    """Records waiting for delivery at most; beyond, new records are dropped (and logged)."""
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_seconds: Annotated[float, Field(gt=0, le=60)] = 0.5
    """The first retry's delay; doubled for each further one."""

    @field_validator("url")
    @classmethod
    def _url_is_https(cls, value: str) -> str:
        if not value.startswith("https://") and not _LOOPBACK_HTTP.match(value):
            raise ValueError("url must be https:// (plain http only to a loopback receiver)")
        return value

    @field_validator("secret")
    @classmethod
    def _secret_is_reference(cls, value: str) -> str:
        if not _SECRET_REFERENCE.fullmatch(value):
            raise ValueError('write the secret as a reference such as "${AUDIT_WEBHOOK_SECRET}"')
        return value


class AuditSyslogSink(_Section):
    """`[audit.syslog]`: every stored audit record as an RFC 5424 message over UDP (RFC 5426) or TCP (RFC 6587)."""

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 514
    transport: Literal["udp", "tcp"] = "udp"
    facility: Annotated[int, Field(ge=0, le=23)] = 13
    """RFC 5424 §6.2.1: 13 is "log audit"."""
    app_name: Annotated[str, Field(pattern=r"^[!-~]{1,48}$")] = "mcp-hub"
    queue_size: Annotated[int, Field(gt=0)] = 10_000
    max_message_bytes: Annotated[int, Field(ge=480, le=65_000)] = 8_192
    """A longer message has its JSON's `detail` shortened (UDP datagrams and receivers have limits)."""


class AuditSection(_Section):
    batch_size: Annotated[int, Field(gt=0)] = 200
    flush_interval_ms: Annotated[int, Field(gt=0)] = 200
    queue_size: Annotated[int, Field(gt=0)] = 10_000
    retention_days: Annotated[int, Field(ge=0)] = 0
    """Rows older than this many days are pruned behind a checkpoint (docs/audit.md); 0 keeps them forever."""
    prune_interval_seconds: Annotated[float, Field(ge=1, le=86_400)] = 3600.0
    """How often the retention prune runs (with `retention_days` set)."""
    seal_key: str | None = None
    """A `${VAR}` reference: the key (base64 of at least 32 random bytes) that seals each stored batch and each
    checkpoint with an HMAC (docs/audit.md, trust model); unset, nothing is sealed."""
    webhook: AuditWebhookSink | None = None
    syslog: AuditSyslogSink | None = None

    @field_validator("seal_key")
    @classmethod
    def _seal_key_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not _SECRET_REFERENCE.fullmatch(value):
            raise ValueError('write the key as a reference such as "${AUDIT_SEAL_KEY}"')
        return value


class LoggingSection(_Section):
    """`[logging]`: one format for every line on stderr (docs/observability.md); `--log-json` and `--log-level`
    override `format` and `level`."""

    format: Literal["console", "json"] = "console"
    level: Literal["debug", "info", "warning", "error"] = "info"
    call_lines: bool = True
    """A line per audited event (tool call, prompt get, resource read, completion, approval transition)."""
    call_line_level: Literal["debug", "info", "warning"] = "info"


class AuthSection(_Section):
    """The hub as OAuth 2.1 authorization server and resource server (issue 3)."""

    enabled: bool = True
    # RFC 9068 access tokens: minutes, never more than an hour.
    access_token_ttl_seconds: Annotated[int, Field(ge=30, le=3600)] = 300
    refresh_token_ttl_seconds: Annotated[int, Field(gt=0)] = 30 * 24 * 3600
    authorization_code_ttl_seconds: Annotated[int, Field(ge=10, le=600)] = 60
    # How long a stored decision (agent enabled, grants) may be served from memory: the bound on how late a
    # revoked grant or a disabled agent takes effect.
    decision_cache_seconds: Annotated[float, Field(ge=0, le=30)] = 2.0
    # A rotated-in signing key is published this long before it signs, so caches of the JWKS can learn it.
    key_publish_ahead_seconds: Annotated[int, Field(ge=0, le=86_400)] = 60
    clock_skew_seconds: Annotated[int, Field(ge=0, le=300)] = 30
    web_session_ttl_seconds: Annotated[int, Field(ge=60)] = 8 * 3600
    dynamic_client_registration: bool = True
    client_id_metadata_documents: bool = True
    # DPoP (RFC 9449, docs/oauth.md): "optional" binds a token to a key when its client sends a proof; "required"
    # also refuses Bearer tokens on the MCP endpoints.
    dpop: Literal["optional", "required"] = "optional"
    dpop_proof_max_age_seconds: Annotated[int, Field(ge=5, le=600)] = 60
    """How old a proof's `iat` may be; its `jti` is remembered this long (plus the skew)."""
    dpop_clock_skew_seconds: Annotated[int, Field(ge=0, le=60)] = 5
    """How far in the future a proof's `iat` may be."""
    dpop_max_proof_bytes: Annotated[int, Field(ge=512, le=16_384)] = 4096
    """The longest `DPoP` header accepted (an RSA-4096 proof is about 1.5 KiB)."""
    dpop_max_header_bytes: Annotated[int, Field(ge=256, le=8192)] = 2048
    """The longest JOSE header (with its `jwk`) accepted in a proof, decoded."""
    dpop_replay_cache_entries: Annotated[int, Field(ge=1000, le=10_000_000)] = 100_000
    """The proofs one process remembers without Redis (full of live proofs: new ones are refused, fail closed)."""


class ApprovalCondition(_Section):
    """A condition on one argument: `field` is a dotted path into the arguments object."""

    field: Annotated[str, Field(min_length=1, max_length=200)]
    op: Literal[">", ">=", "<", "<=", "==", "!=", "matches", "exists"]
    value: float | int | str | bool | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> ApprovalCondition:
        if self.op in (">", ">=", "<", "<=") and (
            not isinstance(self.value, int | float) or isinstance(self.value, bool)
        ):
            raise ValueError(f"'{self.op}' compares numbers: give a numeric value")
        if self.op == "matches":
            if not isinstance(self.value, str):
                raise ValueError("'matches' needs a regular expression as value")
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return self


MAX_AFTER_GLOBS: Final = 8
"""Globs one rule's `after` may name (each is looked up in the caller's history at every call the rule matches)."""
MAX_WITHIN_SECONDS: Final = 86_400
"""The longest window of `after` (a day): the history of every caller is kept that long (`limits.redis_url`)."""


class ApprovalRule(_Section):
    """Which calls need a human's approval, and who may give it (issue 4 §1)."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    tools: list[str] = Field(default_factory=list[str])
    """Globs over public tool names (`*`, `?`), e.g. `git__git_push` or `*__delete_*`."""
    prompts: list[str] = Field(default_factory=list[str])
    """Globs over public prompt names: a matching `prompts/get` is held like a tool call."""
    resources: list[str] = Field(default_factory=list[str])
    """Globs over public resource URIs (`mcp-hub://<connector>/...`): a matching `resources/read` is held."""
    connectors: list[str] = Field(default_factory=list[str])
    agents: list[str] = Field(default_factory=list[str])
    when: list[ApprovalCondition] = Field(default_factory=list[ApprovalCondition])
    """All must hold (AND); empty: every call of a matching tool."""
    after: Annotated[list[str], Field(max_length=MAX_AFTER_GLOBS)] = Field(default_factory=list[str])
    """Globs over public tool names that must each have been called before, by the same caller (agent and user),
    within `within_seconds`: a sequence such as untrusted content, then private data, then this sink (threat T18;
    `mcp_hub.approvals.history`)."""
    within_seconds: Annotated[int | None, Field(ge=1, le=MAX_WITHIN_SECONDS)] = None
    """How far back `after` looks; required with `after`, and only with it."""
    approvers: list[str] = Field(default_factory=lambda: ["role:approver"])
    """`role:approver`, `role:admin` or `user:NAME`."""
    webhook_url: str | None = None
    webhook_secret: str | None = None
    """A `${VAR}` reference: the HMAC key that signs webhook deliveries."""

    @field_validator("approvers")
    @classmethod
    def _approvers_shape(cls, value: list[str]) -> list[str]:
        for item in value:
            if not re.fullmatch(r"role:(approver|admin)|user:[a-z0-9][a-z0-9_.-]{0,63}", item):
                raise ValueError(f"{item!r}: expected role:approver, role:admin or user:NAME")
        if not value:
            raise ValueError("name at least one approver")
        return value

    @model_validator(mode="after")
    def _names_something(self) -> ApprovalRule:
        if not (self.tools or self.prompts or self.resources):
            raise ValueError("name at least one glob in tools, prompts or resources")
        return self

    @model_validator(mode="after")
    def _sequence_is_bounded(self) -> ApprovalRule:
        if self.after and self.within_seconds is None:
            raise ValueError(f"`after` needs `within_seconds` (1..{MAX_WITHIN_SECONDS}): how far back it looks")
        if self.within_seconds is not None and not self.after:
            raise ValueError("`within_seconds` bounds `after`: name the tools that must have been called before")
        if any(not glob.strip() for glob in self.after):
            raise ValueError("`after` globs may not be empty")
        return self

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> ApprovalRule:
        if self.webhook_url is not None:
            if self.webhook_secret is None:
                raise ValueError("a webhook_url needs a webhook_secret: receivers must be able to verify deliveries")
            loopback = re.match(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/", self.webhook_url)
            if not self.webhook_url.startswith("https://") and not loopback:
                raise ValueError("webhook_url must be https:// (plain http only to a loopback receiver)")
        return self

    @field_validator("webhook_secret")
    @classmethod
    def _secret_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value):
            raise ValueError('write the secret as a reference such as "${APPROVAL_WEBHOOK_SECRET}"')
        return value


class ApprovalsSection(_Section):
    """Human approval of sensitive calls (issue 4)."""

    hold_seconds: Annotated[float, Field(ge=0, le=600)] = 60.0
    """How long a caller without the Tasks extension is held waiting for a decision."""
    pending_ttl_seconds: Annotated[int, Field(ge=10, le=7 * 24 * 3600)] = 900
    """No decision by then = denied; an approval, once given, is good for as long again."""
    collect_again_seconds: Annotated[float, Field(ge=0, le=3600)] = 120.0
    """After an outcome was returned, the same call gets it again for this long (its response may have been lost)."""
    max_pending_per_caller: Annotated[
        int, Field(ge=1, le=10_000, validation_alias=AliasChoices("max_pending_per_caller", "max_pending_per_agent"))
    ] = 10
    """Actions one caller, an (agent, user) pair, may have waiting: every user of a shared public client has their
    own (threat T28). `max_pending_per_agent` is its former name, still accepted."""
    progress_interval_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    max_event_streams_per_session: Annotated[int, Field(ge=1, le=1000)] = 8
    """`/approvals/events` streams one web session may hold open at once (a few tabs; T28)."""
    rules: list[ApprovalRule] = Field(default_factory=list[ApprovalRule])


class QuestionsSection(_Section):
    """Questions downstreams ask the user (elicitation, sampling) during a request (issue 9 §4)."""

    answer_seconds: Annotated[float, Field(gt=0, le=3600)] = 300.0
    """How long a question waits for its answer: a 2026-07-28 client's retry, or a 2025-11-25 client's reply."""
    max_rounds: Annotated[int, Field(ge=1, le=100)] = 10
    """`input_required` rounds the hub drives for a 2025-11-25 client before it gives up."""
    max_open: Annotated[int, Field(ge=1, le=100_000)] = 1000
    """Requests of this replica that wait, all together, for a 2026-07-28 client's answer."""
    max_open_per_principal: Annotated[int, Field(ge=1, le=10_000)] = 16
    """The same, per agent (and user): one caller cannot hold every slot (threat T28)."""


class Rate(_Section):
    """A token bucket: `rate` calls per second sustained, `burst` at once."""

    rate: Annotated[float, Field(gt=0, le=1_000_000)]
    burst: Annotated[int, Field(ge=1, le=1_000_000)]


class LoopRule(_Section):
    """The same agent making the same call (tool and arguments) more than `max_repeats` times within
    `window_seconds` is stopped; rules name tools by public-name globs (the first matching rule applies)."""

    tools: list[str] = Field(default_factory=lambda: ["*"])
    max_repeats: Annotated[int, Field(ge=1, le=1_000_000)] = 30
    window_seconds: Annotated[int, Field(ge=1, le=86_400)] = 60


class AgentLimits(_Section):
    """One agent's limits where they differ from the defaults (`[[limits.agents]]`)."""

    agent: Annotated[str, Field(min_length=1, max_length=64)]
    per_agent: Rate | None = None
    per_agent_connector: Rate | None = None
    per_agent_tool: Rate | None = None
    daily_calls: Annotated[int, Field(ge=0)] | None = None
    monthly_calls: Annotated[int, Field(ge=0)] | None = None


class EndpointLimits(_Section):
    """Limits of the OAuth endpoints and the sign-in page, per source address and per client (issue 10 §1)."""

    token_per_address: Rate | None = Rate(rate=10, burst=60)
    token_per_client: Rate | None = Rate(rate=2, burst=30)
    register_per_address: Rate | None = Rate(rate=0.1, burst=20)
    """Dynamic client registrations (RFC 7591): a few a minute from one address."""
    authorize_per_address: Rate | None = Rate(rate=5, burst=30)
    revoke_introspect_per_address: Rate | None = Rate(rate=10, burst=60)
    login_per_address: Rate | None = Rate(rate=1, burst=20)
    failed_sign_ins_per_name: Annotated[int, Field(ge=1)] = 5
    """Failed sign-ins for one user name within the window (or the one before), after which that name waits for the
    window's end."""
    failed_sign_ins_per_address: Annotated[int, Field(ge=1)] = 20
    failed_sign_in_window_seconds: Annotated[int, Field(ge=1, le=86_400)] = 300


class LimitsSection(_Section):
    """Rate limits, quotas and loop breaking for `tools/call`, keyed on the agent's identity (issue 10 §1, §3)."""

    redis_url: str = ""
    """`redis://host:port/db`: buckets, quotas and loop counters shared by every replica. Empty: this process."""
    redis_key_prefix: Annotated[str, Field(max_length=64)] = "mcp-hub:limits:"
    """Every key the hub writes in Redis starts with this (several hubs, or tests, sharing one Redis)."""
    on_backend_failure: Literal["open", "closed"] = "open"
    """Redis unreachable: let calls through (`open`) or refuse them (`closed`)."""
    quotas_on_backend_failure: Literal["open", "closed"] = "closed"
    per_agent: Rate | None = Rate(rate=50, burst=100)
    per_agent_connector: Rate | None = Rate(rate=20, burst=40)
    per_agent_tool: Rate | None = Rate(rate=10, burst=20)
    daily_calls: Annotated[int, Field(ge=0)] = 0
    """Per agent and UTC day; 0: no quota."""
    monthly_calls: Annotated[int, Field(ge=0)] = 0
    loops: list[LoopRule] = Field(default_factory=lambda: [LoopRule()])
    agents: list[AgentLimits] = Field(default_factory=list[AgentLimits])
    endpoints: EndpointLimits = Field(default_factory=EndpointLimits)

    @field_validator("redis_url")
    @classmethod
    def _redis_url_shape(cls, value: str) -> str:
        if value and not re.match(r"^rediss?://", value):
            raise ValueError("expected redis://host:port/db or rediss://...")
        return value


class CacheRule(_Section):
    """Results of the tools it names are cached for `ttl_seconds` (`[[cache.rules]]`): tools by public-name globs
    and/or connectors by id; a rule with both names the tools of those connectors matching a glob."""

    tools: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list[str])
    connectors: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list[str])
    ttl_seconds: Annotated[float, Field(gt=0, le=86_400)]

    @model_validator(mode="after")
    def _names_something(self) -> CacheRule:
        if not self.tools and not self.connectors:
            raise ValueError("a cache rule names tools (globs) or connectors, or both")
        return self


class CacheSection(_Section):
    """Caching and coalescing of `tools/call` results the admin marks cacheable (issue 10 §4).

    Keyed by public tool name, the tool's definition hash, the arguments' digest and the caller (agent and
    user): no result crosses agents or users. Shared through `[limits] redis_url` when set.
    """

    max_result_bytes: Annotated[int, Field(ge=1, le=64 * 1024 * 1024)] = 1024 * 1024
    """A larger result is answered but not cached."""
    max_entries: Annotated[int, Field(ge=1, le=10_000_000)] = 10_000
    """In this process (no `redis_url`): the oldest entries go first beyond it."""
    max_bytes: Annotated[int, Field(ge=1, le=16 * 1024 * 1024 * 1024)] = 64 * 1024 * 1024
    coalesce_wait_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """How long an identical call waits for the one running; then it runs itself."""
    rules: list[CacheRule] = Field(default_factory=list[CacheRule])


METRICS_TOKEN_ENV = "MCP_HUB_METRICS_TOKEN"  # noqa: S105 - the name of the variable, not a token


class MetricsSection(_Section):
    """Prometheus `/metrics` (docs/observability.md)."""

    enabled: bool = False
    path: str = "/metrics"
    token_env: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = METRICS_TOKEN_ENV
    """The environment variable holding the bearer token scrapers must send."""
    token_file: str | None = None
    """Or a file holding it (a container secret); relative to the configuration's directory."""
    listen_host: str | None = None
    """Serve `/metrics` on a listener of its own (an admin address) instead of the hub's."""
    listen_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    max_agent_labels: Annotated[int, Field(ge=1, le=10_000)] = 100
    """Agents with a label value of their own; later ones are counted as `other`."""
    max_tool_labels: Annotated[int, Field(ge=1, le=10_000)] = 500
    """Tools (and prompts) with a label value of their own; later ones are counted as `other`."""

    @field_validator("path")
    @classmethod
    def _path_is_absolute(cls, value: str) -> str:
        if not value.startswith("/") or value == "/":
            raise ValueError("must start with '/' and name a path, e.g. '/metrics'")
        return value


class TracingSection(_Section):
    """OpenTelemetry traces exported over OTLP/HTTP (docs/observability.md); off by default."""

    enabled: bool = False
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    service_name: Annotated[str, Field(min_length=1, max_length=128)] = "mcp-hub"
    sampling_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Of the traces the hub starts; a caller's sampled `traceparent` is followed (parent-based sampling)."""

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL (OTLP/HTTP), e.g. 'http://127.0.0.1:4318/v1/traces'")
        return value


class _SettingsFile(_Section):
    hub: HubSection = Field(default_factory=HubSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection)
    catalog: CatalogSection = Field(default_factory=CatalogSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    auth: AuthSection = Field(default_factory=AuthSection)
    approvals: ApprovalsSection = Field(default_factory=ApprovalsSection)
    questions: QuestionsSection = Field(default_factory=QuestionsSection)
    streams: StreamsSection = Field(default_factory=StreamsSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    tracing: TracingSection = Field(default_factory=TracingSection)


class HubSettings(BaseModel):
    """Every setting the hub runs with, paths resolved."""

    model_config = ConfigDict(frozen=True)

    config_path: Path
    hub: HubSection
    database: DatabaseSection
    timeouts: TimeoutsSection
    catalog: CatalogSection
    audit: AuditSection
    auth: AuthSection = Field(default_factory=AuthSection)
    approvals: ApprovalsSection = Field(default_factory=ApprovalsSection)
    questions: QuestionsSection = Field(default_factory=QuestionsSection)
    streams: StreamsSection = Field(default_factory=StreamsSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    cache: CacheSection = Field(default_factory=CacheSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    tracing: TracingSection = Field(default_factory=TracingSection)

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> HubSettings:
        if not self.auth.enabled and not is_loopback(self.hub.listen_host):
            raise ValueError(
                f"auth.enabled = false is only allowed when the hub listens on loopback, "
                f"not on {self.hub.listen_host!r}"
            )
        return self

    @model_validator(mode="after")
    def _open_metrics_only_on_loopback(self) -> HubSettings:
        metrics = self.metrics
        if metrics.enabled and self.metrics_token is None and not is_loopback(self.metrics_host):
            raise ValueError(
                f"metrics.enabled = true without a token is only allowed on a loopback address, not on "
                f"{self.metrics_host!r}: set the environment variable {metrics.token_env} (metrics.token_env) or "
                "metrics.token_file, or serve /metrics on a loopback admin listener (metrics.listen_host)"
            )
        return self

    @model_validator(mode="after")
    def _seal_key_is_set(self) -> HubSettings:
        self.audit_seal_secret  # noqa: B018 - raises when the variable is unset or not a usable key
        return self

    @property
    def audit_seal_secret(self) -> bytes | None:
        """The audit seal key `[audit] seal_key` names, from the environment; None when none is configured."""
        if self.audit.seal_key is None:
            return None
        variable = self.audit.seal_key.removeprefix("${").removesuffix("}")
        try:
            return seal_key_bytes(os.environ.get(variable, ""))
        except ValueError as exc:
            raise ValueError(f"audit.seal_key: the environment variable {variable} {exc}") from None

    @property
    def metrics_host(self) -> str:
        """Where `/metrics` listens: its own listener (`[metrics] listen_host`) or the hub's."""
        return self.metrics.listen_host or self.hub.listen_host

    @property
    def metrics_token(self) -> str | None:
        """The bearer token `/metrics` requires: `[metrics] token_file`'s content, else `$<token_env>`; None: none."""
        if self.metrics.token_file:
            path = _resolve(self.config_path.parent, self.metrics.token_file)
            try:
                token = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"metrics.token_file {str(path)!r} cannot be read: {exc.strerror}") from None
            if not token:
                raise ValueError(f"metrics.token_file {str(path)!r} is empty")
            return token
        return os.environ.get(self.metrics.token_env, "").strip() or None

    @property
    def mcp_resource_url(self) -> str:
        """The hub's canonical MCP resource URL (RFC 8707): the `aud` of every access token."""
        return self.public_base_url + self.hub.mcp_path

    @property
    def connectors_dir(self) -> Path:
        return _resolve(self.config_path.parent, self.hub.connectors_dir)

    @property
    def virtual_dir(self) -> Path:
        return _resolve(self.config_path.parent, self.hub.virtual_dir)

    def virtual_resource_url(self, name: str) -> str:
        """A virtual server's own MCP resource URL (RFC 8707): the `aud` of tokens issued for it alone."""
        return f"{self.mcp_resource_url}/v/{name}"

    @property
    def catalog_lock(self) -> Path | None:
        """`[catalog] lock`, resolved against the configuration's directory (issue 11 §4)."""
        return None if self.catalog.lock is None else _resolve(self.config_path.parent, self.catalog.lock)

    @property
    def replica_id(self) -> str:
        """This replica's id: `MCP_HUB_REPLICA_ID`, else `[hub] replica_id`, else `<hostname>:<listen_port>`."""
        named = os.environ.get(REPLICA_ID_ENV, "").strip()[:128] or self.hub.replica_id
        return named or f"{socket.gethostname()}:{self.hub.listen_port}"

    @property
    def replica_id_named(self) -> bool:
        """Was the replica id named on purpose (then responses carry it in `Mcp-Hub-Replica`)?"""
        return bool(os.environ.get(REPLICA_ID_ENV, "").strip() or self.hub.replica_id)

    @property
    def public_base_url(self) -> str:
        if self.hub.public_base_url:
            return self.hub.public_base_url
        host = self.hub.listen_host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.hub.listen_port}"

    def with_listen(self, host: str | None, port: int | None) -> HubSettings:
        """A copy with the listen address overridden (the `--host/--port` flags)."""
        hub = self.hub.model_copy(
            update={k: v for k, v in (("listen_host", host), ("listen_port", port)) if v is not None}
        )
        try:
            return HubSettings.model_validate({**dict(self), "hub": hub})
        except ValidationError as exc:
            problem = exc.errors(include_url=False, include_input=False)[0]["msg"].removeprefix("Value error, ")
            raise ConfigError("--host", None, problem) from None


def is_loopback(host: str) -> bool:
    """True for a listen address only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _resolve_sqlite_url(url: str, base: Path) -> str:
    prefix = "sqlite+aiosqlite:///"
    if not url.startswith(prefix):
        return url
    file_part = url.removeprefix(prefix)
    if file_part.startswith((":memory:", "/")):
        return url
    return prefix + str(_resolve(base, file_part))


def load_settings(path: Path) -> HubSettings:
    """Load `config.toml` at `path`; raise `ConfigError` naming the key and the problem."""
    path = path.expanduser().resolve()
    parsed = validate(_SettingsFile, read_toml(path), path)
    database = parsed.database
    if override := os.environ.get(DATABASE_URL_ENV):
        try:
            database = DatabaseSection(url=override)
        except ValidationError as exc:
            # Only the message: pydantic's full text repeats the input, and a URL may hold a password.
            problem = exc.errors(include_url=False, include_input=False)[0]["msg"].removeprefix("Value error, ")
            raise ConfigError(f"${DATABASE_URL_ENV}", None, problem) from None
    database = DatabaseSection(url=_resolve_sqlite_url(database.url, path.parent))
    try:
        return HubSettings(
            config_path=path,
            hub=parsed.hub,
            database=database,
            timeouts=parsed.timeouts,
            catalog=parsed.catalog,
            audit=parsed.audit,
            auth=parsed.auth,
            approvals=parsed.approvals,
            questions=parsed.questions,
            streams=parsed.streams,
            limits=parsed.limits,
            cache=parsed.cache,
            logging=parsed.logging,
            metrics=parsed.metrics,
            tracing=parsed.tracing,
        )
    except ValidationError as exc:
        problem = exc.errors(include_url=False, include_input=False)[0]["msg"].removeprefix("Value error, ")
        key = next((key for key in ("metrics", "audit.seal_key") if problem.startswith(key)), "auth.enabled")
        raise ConfigError(str(path), key, problem.removeprefix(f"{key}: ")) from None
