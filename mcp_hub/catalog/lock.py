"""The catalog lock file (issue 11 §4): the approved definitions, by public name, with their SHA-256 pins.

`mcp-hub catalog export` writes it from the pins; it can be checked into version control. `mcp-hub catalog
verify FILE` compares it with the pins; with `[catalog] lock = "catalog.lock.json"` the hub offers nothing that
is not in it with exactly its digest. The format:

```json
{
  "format": "mcp-hub-catalog-lock/1",
  "pins": {"tool": {"time__get_current_time": "<sha256>"}, "prompt": {}, "resource_template": {}},
  "definitions": {"tool": {"time__get_current_time": {"connector": "time", "name": "get_current_time",
                                                      "sha256": "<sha256>", "definition": {...}}}}
}
```

`pins` is what is enforced; `definitions` is there to review in a diff, and each must hash to its pin.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

from mcp_hub.catalog.catalog import definition_sha256
from mcp_hub.db.pins import PinRecord
from mcp_hub.domain import CatalogKind
from mcp_hub.errors import ConfigError

LOCK_FORMAT: Final = "mcp-hub-catalog-lock/1"
_KIND_NAMES: Final = frozenset(kind.value for kind in CatalogKind)
PINNED_KINDS: Final = (CatalogKind.TOOL, CatalogKind.PROMPT, CatalogKind.RESOURCE_TEMPLATE)
"""What is pinned and reviewed. Listed resources are data, not instructions to the model: they pass unreviewed
(their descriptions are still escaped)."""


@dataclass(frozen=True, slots=True)
class CatalogLock:
    """The pins of a lock file: (kind, public name) → SHA-256."""

    pins: Mapping[tuple[CatalogKind, str], str]

    def digest(self, kind: CatalogKind, public_name: str) -> str | None:
        return self.pins.get((kind, public_name))


def lock_document(records: Iterable[PinRecord]) -> dict[str, Any]:
    """The lock file's JSON for these approved pins."""
    pins: dict[str, dict[str, str]] = {kind.value: {} for kind in PINNED_KINDS}
    definitions: dict[str, dict[str, Any]] = {kind.value: {} for kind in PINNED_KINDS}
    for record in sorted(records, key=lambda item: (item.kind, item.public_name)):
        pins.setdefault(record.kind.value, {})[record.public_name] = record.sha256
        definitions.setdefault(record.kind.value, {})[record.public_name] = {
            "connector": record.connector_id,
            "name": record.name,
            "sha256": record.sha256,
            "definition": record.definition,
        }
    return {"format": LOCK_FORMAT, "pins": pins, "definitions": definitions}


def parse_lock(document: Any, where: str) -> CatalogLock:
    """A lock from its JSON; `ConfigError` for anything malformed, or a definition that does not match its pin."""
    if not isinstance(document, Mapping) or cast("Mapping[str, Any]", document).get("format") != LOCK_FORMAT:
        raise ConfigError(where, "format", f"not a catalog lock file (expected format {LOCK_FORMAT!r})")
    body = cast("Mapping[str, Any]", document)
    raw_pins = body.get("pins")
    if not isinstance(raw_pins, Mapping):
        raise ConfigError(where, "pins", "missing")
    pins: dict[tuple[CatalogKind, str], str] = {}
    for kind_name, entries in cast("Mapping[str, Any]", raw_pins).items():
        try:
            kind = CatalogKind(kind_name)
        except ValueError:
            raise ConfigError(where, f"pins.{kind_name}", "unknown kind") from None
        if not isinstance(entries, Mapping):
            raise ConfigError(where, f"pins.{kind_name}", "expected an object of public name → SHA-256")
        for public_name, digest in cast("Mapping[str, Any]", entries).items():
            if not isinstance(digest, str) or len(digest) != 64:
                raise ConfigError(where, f"pins.{kind_name}.{public_name}", "expected a SHA-256 in hex")
            pins[(kind, public_name)] = digest
    definitions = body.get("definitions", {})
    for kind_name, entries in cast(
        "Mapping[str, Any]", definitions if isinstance(definitions, Mapping) else {}
    ).items():
        for public_name, entry in cast("Mapping[str, Any]", entries if isinstance(entries, Mapping) else {}).items():
            definition = cast("Mapping[str, Any]", entry).get("definition") if isinstance(entry, Mapping) else None
            pinned = pins.get((CatalogKind(kind_name), public_name)) if kind_name in _KIND_NAMES else None
            if (
                not isinstance(definition, Mapping)
                or definition_sha256(cast("Mapping[str, Any]", definition)) != pinned
            ):
                raise ConfigError(where, f"definitions.{kind_name}.{public_name}", "does not hash to its pin")
    return CatalogLock(pins=pins)


def read_lock(path: Path) -> CatalogLock:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the lock file: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(str(path), None, f"not JSON: {exc}") from None
    return parse_lock(document, str(path))


def lock_differences(expected: CatalogLock, actual: CatalogLock) -> list[str]:
    """What differs between a lock file (`expected`) and the pins (`actual`), one line each, sorted."""
    lines: list[str] = []
    for key in sorted(expected.pins.keys() | actual.pins.keys()):
        kind, name = key
        want, have = expected.pins.get(key), actual.pins.get(key)
        if have is None:
            lines.append(f"only in the file: {kind} {name} {want}")
        elif want is None:
            lines.append(f"not in the file:  {kind} {name} {have}")
        elif want != have:
            lines.append(f"digest differs:   {kind} {name} file {want[:12]} hub {have[:12]}")
    return lines
