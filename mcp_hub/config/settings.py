"""The hub's own settings, read from `config.toml` (see the shipped file for every key).

Relative paths (the connectors directory, a SQLite file) are resolved against the directory of the
configuration file, so `mcp-hub serve --config /etc/mcp-hub/config.toml` works from any directory.
The environment variable `MCP_HUB_DATABASE_URL`, when set, replaces `database.url`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcp_hub.config._toml import read_toml, validate
from mcp_hub.errors import ConfigError

DATABASE_URL_ENV = "MCP_HUB_DATABASE_URL"
_SUPPORTED_DATABASE_PREFIXES = ("sqlite+aiosqlite://", "postgresql+asyncpg://")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSection(_Section):
    listen_host: str = "127.0.0.1"
    listen_port: Annotated[int, Field(ge=0, le=65535)] = 8420
    public_base_url: str | None = None
    mcp_path: str = "/mcp"
    connectors_dir: str = "connectors"
    allowed_hosts: list[str] = Field(default_factory=list[str])
    allowed_origins: list[str] = Field(default_factory=list[str])
    max_request_body_bytes: Annotated[int, Field(gt=0)] = 4 * 1024 * 1024
    max_legacy_sessions: Annotated[int, Field(gt=0)] = 1000

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
    page_size: Annotated[int, Field(gt=0, le=10_000)] = 500
    list_ttl_ms: Annotated[int, Field(ge=0)] = 60_000


class AuditSection(_Section):
    batch_size: Annotated[int, Field(gt=0)] = 200
    flush_interval_ms: Annotated[int, Field(gt=0)] = 200
    queue_size: Annotated[int, Field(gt=0)] = 10_000


class _SettingsFile(_Section):
    hub: HubSection = Field(default_factory=HubSection)
    database: DatabaseSection = Field(default_factory=DatabaseSection)
    timeouts: TimeoutsSection = Field(default_factory=TimeoutsSection)
    catalog: CatalogSection = Field(default_factory=CatalogSection)
    audit: AuditSection = Field(default_factory=AuditSection)


class HubSettings(BaseModel):
    """Every setting the hub runs with, paths resolved."""

    model_config = ConfigDict(frozen=True)

    config_path: Path
    hub: HubSection
    database: DatabaseSection
    timeouts: TimeoutsSection
    catalog: CatalogSection
    audit: AuditSection

    @property
    def connectors_dir(self) -> Path:
        return _resolve(self.config_path.parent, self.hub.connectors_dir)

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
        return self.model_copy(update={"hub": hub})


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
        except ValueError as exc:
            raise ConfigError(f"${DATABASE_URL_ENV}", None, str(exc)) from None
    database = DatabaseSection(url=_resolve_sqlite_url(database.url, path.parent))
    return HubSettings(
        config_path=path,
        hub=parsed.hub,
        database=database,
        timeouts=parsed.timeouts,
        catalog=parsed.catalog,
        audit=parsed.audit,
    )
