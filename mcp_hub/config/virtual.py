"""Virtual server files: `virtual/<name>.toml`, one curated profile of the catalog each (issue 11 §6).

A virtual server is served at `/mcp/v/<name>` (beside a connector's profile at `/mcp/s/<connector>`). It picks
tools, prompts and resources out of the whole catalog by globs over their public names and URIs (the grant
pattern syntax, `mcp_hub.authz.scopes`), may rename tools and prompts and override their descriptions, and may
offer the catalog search meta-tools (`meta_tools`, `mcp_hub.gateway.meta_tools`):

```toml
name = "support"                      # must equal the file name
tools = ["tickets__*", "time__get_current_time"]
prompts = []                          # none unless listed
resources = []                        # public URIs (mcp-hub://<connector>/...), none unless listed
meta_tools = "off"                    # "off", "add" (search_tools + call_tool beside the list), "only"
[rename]                              # public name -> the name clients of this profile see
"time__get_current_time" = "now"
[descriptions]                        # public name -> the description clients of this profile see
"tickets__create" = "Open a support ticket for the customer."
```

The directory is `[hub] virtual_dir` (default `virtual`, beside `connectors/`); it may be absent (no virtual
servers). `mcp-hub virtual add|list|remove` writes and reads these files. Loading is all-or-nothing, as for
connectors; the hub reads them at start.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mcp_hub.config._toml import read_toml, validate
from mcp_hub.errors import ConfigError

VIRTUAL_NAME_PATTERN: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
"""The shape of connector ids: lowercase letters, digits and `-`, at most 32 characters."""
_TOOL_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
"""A name clients may see (the MCP tool name charset, at most 64 characters)."""
_GLOB: Final = re.compile(r"^[A-Za-z0-9_.*?-]{1,200}$")
_URI_GLOB: Final = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,240}$")
META_TOOL_NAMES: Final = ("search_tools", "call_tool")

MetaToolsMode = Literal["off", "add", "only"]
"""`off`: no meta-tools; `add`: `search_tools` and `call_tool` listed before the profile's tools; `only`: only the
two are listed (the profile's tools stay callable by name, directly or through `call_tool`)."""


class VirtualServerSpec(BaseModel):
    """One virtual server, as its file declares it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    tools: list[str] = Field(default_factory=list[str])
    prompts: list[str] = Field(default_factory=list[str])
    resources: list[str] = Field(default_factory=list[str])
    rename: dict[str, str] = Field(default_factory=dict[str, str])
    descriptions: dict[str, str] = Field(default_factory=dict[str, str])
    meta_tools: MetaToolsMode = "off"

    @field_validator("name")
    @classmethod
    def _name_shape(cls, value: str) -> str:
        if not VIRTUAL_NAME_PATTERN.match(value):
            raise ValueError("use 1-32 lowercase letters, digits and '-' (not at either end)")
        return value

    @field_validator("tools", "prompts")
    @classmethod
    def _globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if not _GLOB.match(glob):
                raise ValueError(f"{glob!r}: a glob of letters, digits, '_', '.', '-', '*', '?'")
        return value

    @field_validator("resources")
    @classmethod
    def _uri_globs(cls, value: list[str]) -> list[str]:
        for glob in value:
            if not _URI_GLOB.match(glob):
                raise ValueError(f"{glob!r}: a glob of printable ASCII without spaces, quotes or backslashes")
        return value

    @model_validator(mode="after")
    def _renames_are_names(self) -> VirtualServerSpec:
        targets = list(self.rename.values())
        for target in targets:
            if not _TOOL_NAME.match(target):
                raise ValueError(f"rename target {target!r}: 1-64 letters, digits, '_', '.', '-'")
        if len(set(targets)) != len(targets):
            raise ValueError("two entries are renamed to the same name")
        if self.meta_tools != "off" and set(targets) & set(META_TOOL_NAMES):
            raise ValueError(f"with meta_tools on, no entry may be renamed to {' or '.join(META_TOOL_NAMES)}")
        return self

    def to_toml(self) -> str:
        """The file `mcp-hub virtual add` writes (every field, so the file documents itself)."""

        def strings(values: list[str]) -> str:
            return "[" + ", ".join(_quote(value) for value in values) + "]"

        lines = [
            f"name = {_quote(self.name)}",
            f"description = {_quote(self.description)}",
            f"tools = {strings(self.tools)}",
            f"prompts = {strings(self.prompts)}",
            f"resources = {strings(self.resources)}",
            f"meta_tools = {_quote(self.meta_tools)}",
            "",
            "[rename]",
            *(f"{_quote(key)} = {_quote(value)}" for key, value in sorted(self.rename.items())),
            "",
            "[descriptions]",
            *(f"{_quote(key)} = {_quote(value)}" for key, value in sorted(self.descriptions.items())),
        ]
        text = "\n".join(lines) + "\n"
        tomllib.loads(text)  # what we write must read back
        return text


def _quote(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(char if char.isprintable() else f"\\u{ord(char):04x}" for char in escaped)
    return f'"{escaped}"'


def load_virtual_server(path: Path) -> VirtualServerSpec:
    """Load and check one virtual server file."""
    spec = validate(VirtualServerSpec, read_toml(path), path)
    if spec.name != path.stem:
        raise ConfigError(str(path), "name", f"{spec.name!r} must equal the file name {path.stem!r}")
    return spec


def load_virtual_servers(directory: Path) -> list[VirtualServerSpec]:
    """Every `*.toml` in `directory`, sorted by name; none when the directory does not exist."""
    if not directory.is_dir():
        return []
    return [load_virtual_server(path) for path in sorted(directory.glob("*.toml"))]
