"""Redaction: no secret reaches a log line at any level (threats T23, T29, T30).

- structlog events: values under credential-named keys are blanked (`redact_secrets`);
- every line, structlog's and every library logger's (SQLAlchemy, the database drivers, uvicorn, the SDK) and
  every stdio downstream's stderr: the hub's own secret values (`register_secret_values`) and the values of
  token-like URL query parameters are blanked (`scrub_values`, `RedactingFilter`); uvicorn's access log keeps
  query parameter names but none of their values;
- the loggers that would print SQL parameters or result rows (signing keys, CSRF tokens, stored arguments) are
  kept at WARNING whatever the level says (`QUIET_LIBRARIES`), and the engines hide parameters from their error
  messages too (`mcp_hub.db.engine`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, MutableMapping
from functools import lru_cache
from typing import Any, Final

_SECRET_KEY = re.compile(r"(?i)(authorization|token|secret|password|passwd|api[-_]?key|cookie|credential)")
REDACTED = "[redacted]"

_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;\s\"'](?:[a-z0-9_.-]*(?:token|secret|password|passwd|api[-_]?key|assertion|credential|csrf)"
    r"[a-z0-9_.-]*)=)[^&;#\s\"']+"
)
"""`name=value` in a URL or form whose name looks like a credential."""
_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"]*=)[^&#\s\"]*")
ACCESS_LOGGER: Final = "uvicorn.access"
ACCESS_FIELDS: Final = "mcp_hub_access"
"""The record attribute holding an access line's request as fields."""
_ACCESS_ARGS: Final = 5  # uvicorn's access line: client, method, path with query, HTTP version, status

QUIET_LIBRARIES: Final = (
    # Their INFO/DEBUG records carry SQL parameters and result rows: private keys, CSRF tokens, arguments.
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    # One line per outbound HTTP request is noise at info level (downstream calls, CLI health probes).
    "httpx2",
    # Alembic announces its context on every schema check (each command, each start).
    "alembic",
)

_MIN_SECRET_LENGTH: Final = 8
_secret_values: list[str] = []
"""Process-wide, like logging itself: the values every line is scrubbed of, longest first."""


@lru_cache(maxsize=1024)  # keys are the code's own field names: a small set, asked on every line
def names_a_credential(key: str) -> bool:
    """Does this name (a field, a header, an environment variable) suggest its value is a credential?"""
    return _SECRET_KEY.search(key) is not None


def register_secret_values(values: Iterable[str]) -> None:
    """Scrub these values (the hub's expanded connector secrets) from every log line from now on."""
    known = set(_secret_values) | {value for value in values if len(value) >= _MIN_SECRET_LENGTH}
    _secret_values[:] = sorted(known, key=len, reverse=True)


def scrub_text(text: str, *, access_line: bool = False) -> str:
    """`text` without the hub's secret values and token-like parameter values (any query value on an access line)."""
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    if "=" not in text:  # both patterns below need one
        return text
    text = _SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    if access_line:
        text = _QUERY_VALUE.sub(rf"\g<1>{REDACTED}", text)
    return text


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank out values whose key names a credential."""
    for key in list(event):
        if key != "event" and names_a_credential(key):
            event[key] = REDACTED
    return event


def scrub_values(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: `scrub_text` over every string value (the event, fields, a formatted exception)."""
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = scrub_text(value)
        elif isinstance(value, (int, float, bool)) or value is None:
            continue
        else:
            shown = repr(value)
            scrubbed = scrub_text(shown)
            if scrubbed != shown:
                event[key] = scrubbed
    return event


class RedactingFilter(logging.Filter):
    """A handler filter: every record that reaches the handler, whichever library logged it, is scrubbed.

    A structlog event (its message a dict) was scrubbed by structlog's own chain and passes untouched. An access
    log line keeps its request as fields (`ACCESS_FIELDS`: client, method, path, status), the path scrubbed as the
    line is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            return True
        access_line = record.name == ACCESS_LOGGER
        if access_line and isinstance(record.args, tuple) and len(record.args) == _ACCESS_ARGS:
            client, method, path, _version, status = record.args
            record.__dict__[ACCESS_FIELDS] = {
                "client": str(client),
                "method": str(method),
                "path": scrub_text(str(path), access_line=True),
                "status": status,
            }
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the traceback text is scrubbed below instead
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        record.msg = scrub_text(message, access_line=access_line)
        record.args = None
        return True
