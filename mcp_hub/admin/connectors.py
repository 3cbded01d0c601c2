"""Connector files written by an admin: `connectors/<id>.toml`, where the live reload picks them up (issue 11 §5).

A file is written only after the hub's own loader accepted it (`config.connectors.load_connector`, the checks of
start-up and of every reload): the new text goes to a staging directory inside the connectors directory, is
loaded from there, and is moved into place with one `os.replace` (atomic on one file system), so a reload never
reads half a file, and a refused definition never reaches the directory (an added file is linked into place
instead, which fails if the id exists). Then this process reloads at once (the
other replicas sharing the directory notice it on their next poll).

Secrets never pass through here: a connector names them as `${NAME}` references (the loader refuses a literal
credential), and what is shown of a connector masks every `env` and `headers` value that is not such a reference.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.config.connectors import ConnectorSpec, load_connector, scan_connectors
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.health import HealthState
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.errors import ConfigError, ConflictError, InvalidInputError, NotFoundError

MASK: Final = "********"
_REFERENCES_ONLY = re.compile(r"^(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+$")
_STAGING_PREFIX: Final = ".staging-"

Reload = Callable[[str], Awaitable[object]]


def toml_text(spec: ConnectorSpec) -> str:
    """The connector file of `spec`: every field that differs from its default, one `key = value` line each."""
    fields = spec.model_dump(mode="json", exclude_defaults=True)
    fields["id"] = spec.id
    fields["transport"] = spec.transport
    order = ["id", "transport", *(name for name in fields if name not in ("id", "transport"))]
    return "".join(f"{name} = {_toml_value(fields[name])}\n" for name in order)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
        return "[" + ", ".join(_toml_value(item) for item in items) + "]"
    if isinstance(value, dict):
        table: dict[str, Any] = value  # pyright: ignore[reportUnknownVariableType]
        return "{ " + ", ".join(f"{_toml_string(key)} = {_toml_value(item)}" for key, item in table.items()) + " }"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and every control character escaped (TOML 1.0 §String)."""
    escaped = "".join(
        "\\\\" if char == "\\" else '\\"' if char == '"' else f"\\u{ord(char):04x}" if _control(char) else char
        for char in text
    )
    return f'"{escaped}"'


def _control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F


def shown(spec: ConnectorSpec) -> dict[str, Any]:
    """The connector as an admin may see it: `env` and `headers` values other than `${NAME}` references masked."""
    fields = spec.model_dump(mode="json")
    for name in ("env", "headers"):
        values: dict[str, str] = fields[name]
        fields[name] = {key: value if _REFERENCES_ONLY.match(value) else MASK for key, value in values.items()}
    return fields


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """A connector file and what the running hub makes of it (None: not running in this process)."""

    id: ConnectorId
    spec: ConnectorSpec | None
    file_error: str | None
    health: Mapping[str, Any] | None
    calls: Mapping[str, Any] | None


class ConnectorAdmin:
    """Read the connectors directory with the pool's health; add, replace, switch and remove connector files."""

    def __init__(self, directory: Path, pool: DownstreamPool, reload: Reload, audit: AdminAudit) -> None:
        self._directory = directory
        self._pool = pool
        self._reload = reload
        self._audit = audit

    def list(self) -> list[ConnectorState]:
        """Every connector file (a bad one with its error) and every connector the pool runs, sorted by id."""
        files = scan_connectors(self._directory)
        health = self._pool.health()
        calls = self._pool.calls()
        errors = {ConnectorId(name.removesuffix(".toml")): error for name, error in files.errors.items()}
        ids = sorted({*files.specs, *errors, *(ConnectorId(connector_id) for connector_id in health)})
        return [
            ConnectorState(
                id=connector_id,
                spec=files.specs.get(connector_id),
                file_error=errors.get(connector_id),
                health=_health_json(health[connector_id]) if connector_id in health else None,
                calls=calls.get(connector_id),
            )
            for connector_id in ids
        ]

    def get(self, connector_id: str) -> ConnectorState:
        for state in self.list():
            if state.id == connector_id:
                return state
        raise NotFoundError(f"no connector {connector_id!r}")

    async def add(self, actor: Actor, spec: ConnectorSpec) -> ConnectorSpec:
        """Write a new connector file; `ConflictError` if one with that id exists."""
        async with self._audit.change(actor, "connectors.add", spec.id) as change:
            written = await self._write(spec, exclusive=True)
            change.detail = _summary(written)
            return written

    async def replace(self, actor: Actor, spec: ConnectorSpec) -> ConnectorSpec:
        """Replace an existing connector file (the pool restarts that connector, letting calls in flight end)."""
        async with self._audit.change(actor, "connectors.edit", spec.id) as change:
            self._existing(spec.id)
            written = await self._write(spec)
            change.detail = _summary(written)
            return written

    async def set_enabled(self, actor: Actor, connector_id: str, enabled: bool) -> ConnectorSpec:
        verb = "connectors.enable" if enabled else "connectors.disable"
        async with self._audit.change(actor, verb, connector_id):
            spec = self._existing(connector_id)
            return await self._write(spec.model_copy(update={"enabled": enabled}))

    async def remove(self, actor: Actor, connector_id: str) -> None:
        """Delete the connector file; the pool retires the connector and its tools leave the catalog."""
        async with self._audit.change(actor, "connectors.remove", connector_id):
            path = self._path(connector_id)
            if not path.exists():
                raise NotFoundError(f"no connector file {path.name}")
            path.unlink()
            await self._reload("admin api")

    def _path(self, connector_id: str) -> Path:
        return self._directory / f"{connector_id}.toml"

    def _existing(self, connector_id: str) -> ConnectorSpec:
        path = self._path(connector_id)
        if not path.exists():
            raise NotFoundError(f"no connector file {path.name}")
        try:
            return load_connector(path)
        except ConfigError as exc:
            raise ConflictError(f"the file {path.name} does not load ({exc}): replace it with PUT") from None

    async def _write(self, spec: ConnectorSpec, *, exclusive: bool = False) -> ConnectorSpec:
        """Stage, load, and move into place; `exclusive`: only if no file of that id exists (one `os.link`, so
        two admins adding the same id at once cannot both succeed)."""
        staging = self._directory / f"{_STAGING_PREFIX}{secrets.token_hex(8)}"
        staging.mkdir()
        try:
            staged = staging / f"{spec.id}.toml"
            staged.write_text(toml_text(spec), encoding="utf-8")
            try:
                loaded = load_connector(staged)
            except ConfigError as exc:
                raise InvalidInputError(str(exc).replace(str(staged), f"{spec.id}.toml")) from None
            if loaded != spec:
                raise InvalidInputError("the connector does not survive its own file (a value TOML cannot hold)")
            if exclusive:
                try:
                    os.link(staged, self._path(spec.id))
                except FileExistsError:
                    raise ConflictError(f"connector {spec.id!r} exists: replace it with PUT") from None
            else:
                os.replace(staged, self._path(spec.id))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        await self._reload("admin api")
        return loaded


def _health_json(state: HealthState) -> dict[str, Any]:
    return {
        "state": state.state.value,
        "since": state.since.isoformat(),
        "era": state.era,
        "tools": state.tool_count,
        "detail": state.detail,
        "attempts": state.attempts,
    }


def _summary(spec: ConnectorSpec) -> str:
    where = spec.url if spec.transport != "stdio" else spec.command
    return f"{spec.transport} {where}; enabled={spec.enabled}; trust={spec.trust}; protocol={spec.protocol}"
