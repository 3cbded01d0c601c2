"""Connector files: `connectors/<id>.toml`, one downstream MCP server each.

A connector names its transport (`stdio`, `http` for Streamable HTTP, `sse` for the legacy HTTP+SSE
transport), how to reach the server, and the protocol era to speak (`auto` probes, `legacy` pins
2025-11-25, `2026-07-28` pins the stateless era). Secrets are never written in these files: values
of `env` and `headers` may reference the hub's environment as `${NAME}`, expanded only when the hub
connects, and any value whose key looks like a credential must be such a reference.

At start-up loading is all-or-nothing: the first bad file raises `ConfigError` and the hub does not start. While
the hub runs, `scan_connectors` loads each file on its own, with the same checks: a bad file is reported (its
error kept by file name) and the connector it names keeps its previous definition (`mcp_hub.downstream.reloading`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_hub.config._toml import read_toml, validate
from mcp_hub.domain import ConnectorId
from mcp_hub.errors import ConfigError

CONNECTOR_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""Lowercase letters, digits and `-`, at most 32 characters: no `_`, so `<id>__<tool>` splits uniquely."""

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CREDENTIAL_KEY = re.compile(r"(?i)(authorization|token|secret|password|passwd|api[-_]?key|cookie|credential)")

Transport = Literal["stdio", "http", "sse"]
ProtocolChoice = Literal["auto", "legacy", "2026-07-28"]


class DownstreamOAuth(BaseModel):
    """OAuth client credentials the hub uses to authenticate to an HTTP downstream (RFC 6749 §4.4).

    The hub obtains the token itself and refreshes it before expiry; agents never see it, and their own
    tokens are never sent downstream.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_url: str
    client_id: str
    client_secret: str
    scope: str | None = None
    resource: str | None = None
    """RFC 8707 resource indicator; defaults to the connector's `url`."""
    auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"

    @field_validator("token_url")
    @classmethod
    def _token_url_shape(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("client_secret")
    @classmethod
    def _secret_is_reference(cls, value: str) -> str:
        if not _ENV_REFERENCE.search(value):
            raise ValueError('write the secret as a reference such as "${MY_CLIENT_SECRET}"')
        return value


class ConnectorSpec(BaseModel):
    """One downstream server as the operator declared it (secrets still as `${NAME}` references)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ConnectorId
    transport: Transport
    protocol: ProtocolChoice = "auto"
    enabled: bool = True
    description: str = ""
    call_timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    max_concurrent_calls: Annotated[int, Field(gt=0, le=10_000)] = 32
    max_queued_calls: Annotated[int, Field(ge=0, le=100_000)] = 64
    """Calls waiting for one of the `max_concurrent_calls` slots; one more is refused at once (connector busy)."""
    max_message_bytes: Annotated[int, Field(ge=1024, le=1024**3)] = 4 * 1024 * 1024
    """The largest message (a stdio line, an HTTP JSON body, one SSE event) read from the downstream."""
    breaker_failures: Annotated[int, Field(ge=1, le=10_000)] = 5
    """Consecutive failed calls (timeouts, transport errors, oversized answers) that open the circuit breaker."""
    breaker_cooldown_seconds: Annotated[float, Field(gt=0, le=86_400)] = 30.0
    """How long an open breaker refuses calls before it lets one probe call through (half-open)."""
    progress_interval_ms: Annotated[int, Field(ge=0, le=60_000)] = 50
    """At most one progress notification per request per interval is relayed (the newest; 0: every one)."""
    lean_forwarding: bool = True
    """2026-07-28 only: forward calls, gets and reads with the lean client (`mcp_hub.downstream.lean`) rather than
    the SDK client's session (false: the SDK's, e.g. to compare the two)."""
    # stdio
    command: str | None = None
    args: list[str] = Field(default_factory=list[str])
    env: dict[str, str] = Field(default_factory=dict[str, str])
    cwd: str | None = None
    # http / sse
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict[str, str])
    oauth: DownstreamOAuth | None = None
    sensitive_tools: list[str] = Field(default_factory=list[str])
    """Globs over this connector's own tool names whose calls always need a human's approval (issue 4)."""
    trust: Literal["review", "auto"] = "review"
    """`review`: each new or changed definition waits for an admin (`mcp-hub catalog review`); `auto`: accepted
    and recorded, unless flagged as suspicious (issue 11 §1, §3)."""

    @field_validator("id")
    @classmethod
    def _id_shape(cls, value: str) -> ConnectorId:
        if not CONNECTOR_ID_PATTERN.fullmatch(value):
            raise ValueError("must be 1-32 lowercase letters, digits or '-', not starting or ending with '-'")
        return ConnectorId(value)

    @field_validator("url")
    @classmethod
    def _url_shape(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("env", "headers")
    @classmethod
    def _secrets_are_references(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if _CREDENTIAL_KEY.search(key) and not _ENV_REFERENCE.search(item):
                raise ValueError(f'{key!r} looks like a credential: write it as a reference such as "${{MY_TOKEN}}"')
        return value

    @model_validator(mode="after")
    def _transport_fields(self) -> ConnectorSpec:
        if self.transport == "stdio":
            if not self.command:
                raise ValueError("a stdio connector needs 'command'")
            if self.url is not None or self.headers or self.oauth is not None:
                raise ValueError("'url', 'headers' and 'oauth' are for http and sse connectors, not stdio")
        else:
            if not self.url:
                raise ValueError(f"an {self.transport} connector needs 'url'")
            if self.command is not None or self.args or self.env or self.cwd is not None:
                raise ValueError("'command', 'args', 'env' and 'cwd' are for stdio connectors")
        if self.transport == "sse" and self.protocol == "2026-07-28":
            raise ValueError("the legacy HTTP+SSE transport only speaks the 2025-11-25 era: use protocol = 'legacy'")
        return self

    @property
    def referenced_env_vars(self) -> set[str]:
        values = [*self.env.values(), *self.headers.values()]
        if self.oauth is not None:
            values += [self.oauth.client_id, self.oauth.client_secret]
        return {name for value in values for name in _ENV_REFERENCE.findall(value)}

    def secret_values(self) -> set[str]:
        """The values the `${NAME}` references expand to now: what the hub scrubs from downstream text."""
        return {os.environ[name] for name in self.referenced_env_vars if os.environ.get(name)}

    def resolved_env(self) -> dict[str, str]:
        """`env` with references expanded from the hub's environment (call only when connecting)."""
        return {key: _expand(value) for key, value in self.env.items()}

    def resolved_headers(self) -> dict[str, str]:
        """`headers` with references expanded from the hub's environment (call only when connecting)."""
        return {key: _expand(value) for key, value in self.headers.items()}

    def resolved_oauth(self) -> DownstreamOAuth | None:
        """`oauth` with references expanded (call only when connecting)."""
        if self.oauth is None:
            return None
        return self.oauth.model_copy(
            update={"client_id": _expand(self.oauth.client_id), "client_secret": _expand(self.oauth.client_secret)}
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the declaration (references unexpanded), to notice a changed connector file."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _expand(value: str) -> str:
    return _ENV_REFERENCE.sub(lambda match: os.environ.get(match.group(1), ""), value)


def load_connector(path: Path, *, require_secrets: bool = True) -> ConnectorSpec:
    """Load and check one connector file; `require_secrets=False` for a reader that never connects (the
    `${NAME}` references of an enabled connector need not be set in this environment)."""
    spec = validate(ConnectorSpec, read_toml(path), path)
    if spec.id != path.stem:
        raise ConfigError(str(path), "id", f"{spec.id!r} must equal the file name {path.stem!r}")
    missing = sorted(name for name in spec.referenced_env_vars if name not in os.environ)
    if missing and spec.enabled and require_secrets:
        raise ConfigError(str(path), "env/headers", f"environment variable(s) not set: {', '.join(missing)}")
    return spec


def load_connectors(directory: Path) -> list[ConnectorSpec]:
    """Load every `*.toml` in `directory`, sorted by id; any bad file raises `ConfigError`."""
    if not directory.is_dir():
        raise ConfigError(str(directory), None, "connectors directory not found")
    return [load_connector(path) for path in sorted(directory.glob("*.toml"))]


RELOAD_REQUEST_FILE = ".reload-request"
"""Written into the connectors directory by `mcp-hub connectors reload`; a running hub that sees it change reloads.
Whoever may write this directory may change connectors anyway, so the request needs no other authority."""
MAX_CONNECTOR_FILES = 1_000
"""A directory with more `*.toml` files than this is refused as a whole (every file is read on each reload)."""


@dataclass(frozen=True, slots=True)
class ConnectorFiles:
    """One reading of the connectors directory: the good files' specs by id, each bad file's error by file name."""

    specs: dict[ConnectorId, ConnectorSpec] = field(default_factory=dict[ConnectorId, ConnectorSpec])
    errors: dict[str, str] = field(default_factory=dict[str, str])


def scan_connectors(directory: Path, *, require_secrets: bool = True) -> ConnectorFiles:
    """Load every `*.toml` in `directory` on its own (the checks of `load_connector`, `require_secrets` passed on);
    nothing is raised for one bad file, its error is kept instead. A missing or unreadable directory raises
    `ConfigError`."""
    if not directory.is_dir():
        raise ConfigError(str(directory), None, "connectors directory not found")
    paths = sorted(directory.glob("*.toml"))
    if len(paths) > MAX_CONNECTOR_FILES:
        raise ConfigError(str(directory), None, f"more than {MAX_CONNECTOR_FILES} connector files")
    found = ConnectorFiles()
    for path in paths:
        try:
            spec = load_connector(path, require_secrets=require_secrets)
        except ConfigError as exc:
            found.errors[path.name] = str(exc)
        else:
            found.specs[spec.id] = spec
    return found


def directory_signature(directory: Path) -> tuple[tuple[str, int, int, int], ...]:
    """What a cheap poll compares: name, modification time (ns), size and inode of each `*.toml` and of the reload
    request. An edit that keeps all four (rare: same size within the file system's time resolution) is caught by
    `mcp-hub connectors reload` or SIGHUP instead."""
    entries: list[tuple[str, int, int, int]] = []
    try:
        paths = [*directory.glob("*.toml"), directory / RELOAD_REQUEST_FILE]
        for path in sorted(paths)[: MAX_CONNECTOR_FILES + 2]:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append((path.name, stat.st_mtime_ns, stat.st_size, stat.st_ino))
    except OSError:
        return ()
    return tuple(entries)


def read_reload_request(directory: Path) -> str | None:
    """The token `mcp-hub connectors reload` wrote (hex, at most 64 characters), if any."""
    try:
        text = (directory / RELOAD_REQUEST_FILE).read_text(encoding="ascii", errors="replace")[:65].strip()
    except OSError:
        return None
    return text if re.fullmatch(r"[0-9a-f]{1,64}", text) else None
