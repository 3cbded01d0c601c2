"""Reading a TOML file into a pydantic model, with errors that name the file, the key and the problem."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from mcp_hub.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse `path` as TOML, turning I/O and syntax errors into `ConfigError`."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(str(path), None, "file not found") from None
    except OSError as exc:
        raise ConfigError(str(path), None, f"cannot read the file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), None, f"not valid TOML: {exc}") from None


def validate(model: type[ModelT], data: dict[str, Any], path: Path) -> ModelT:
    """Validate `data` against `model`; the first problem becomes a `ConfigError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        problem = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            problem = "unknown key (check the spelling)"
        elif first["type"] == "missing":
            problem = "required key is missing"
        raise ConfigError(str(path), key, problem) from None
