"""Structured logging to stderr (stdout belongs to the MCP stdio transport), with secret redaction.

No secret reaches a log line at any level (threats T23, T29):
- structlog events: values under credential-named keys are blanked (`redact_secrets`);
- every line, structlog's and every library logger's (SQLAlchemy, the database drivers, uvicorn, the SDK):
  the hub's own secret values (`register_secret_values`) and the values of token-like URL query parameters are
  blanked; uvicorn's access log keeps query parameter names but none of their values;
- the loggers that would print SQL parameters or result rows (signing keys, CSRF tokens, stored arguments) are
  kept at WARNING whatever `--log-level` says, and the engines hide parameters from their error messages too
  (`mcp_hub.db.engine`).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, Final

import structlog

_SECRET_KEY = re.compile(r"(?i)(authorization|token|secret|password|passwd|api[-_]?key|cookie|credential)")
REDACTED = "[redacted]"

_SECRET_PARAMETER = re.compile(
    r"(?i)([?&;\s\"'](?:[a-z0-9_.-]*(?:token|secret|password|passwd|api[-_]?key|assertion|credential|csrf)"
    r"[a-z0-9_.-]*)=)[^&;#\s\"']+"
)
"""`name=value` in a URL or form whose name looks like a credential."""
_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"]*=)[^&#\s\"]*")
ACCESS_LOGGER: Final = "uvicorn.access"

_QUIET_LIBRARIES: Final = (
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


def register_secret_values(values: Iterable[str]) -> None:
    """Scrub these values (the hub's expanded connector secrets) from every log line from now on."""
    known = set(_secret_values) | {value for value in values if len(value) >= _MIN_SECRET_LENGTH}
    _secret_values[:] = sorted(known, key=len, reverse=True)


def scrub_text(text: str, *, access_line: bool = False) -> str:
    """`text` without the hub's secret values and token-like parameter values (any query value on an access line)."""
    for value in _secret_values:
        if value in text:
            text = text.replace(value, REDACTED)
    text = _SECRET_PARAMETER.sub(rf"\g<1>{REDACTED}", text)
    if access_line:
        text = _QUERY_VALUE.sub(rf"\g<1>{REDACTED}", text)
    return text


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank out values whose key names a credential."""
    for key in list(event):
        if key != "event" and _SECRET_KEY.search(key):
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
    """A handler filter: every record that reaches the handler, whichever library logged it, is scrubbed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None  # the traceback text is scrubbed below instead
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        record.msg = scrub_text(message, access_line=record.name == ACCESS_LOGGER)
        record.args = None
        return True


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
    for library in _QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(max(numeric, logging.WARNING))
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            scrub_values,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
