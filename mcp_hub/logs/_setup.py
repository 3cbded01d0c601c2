"""One log format per run, for every line the process writes to stderr.

structlog renders and writes the hub's own events itself (no `logging` record per event: the line per call is on
every call's path); every library's `logging` records (uvicorn's error and access logs, the SDK's, httpx2's,
aiohttp's, SQLAlchemy's, Alembic's, `warnings`) go through the root logger's one handler, whose
`ProcessorFormatter` runs them through the same processors and the same renderer: console lines (human-readable,
coloured only on a terminal) or JSON objects, one a line, each with `timestamp`, `level`, `event` and `logger`.
uvicorn is run without a log configuration of its own (`mcp_hub.runtime.server_config`), so its loggers have no
handlers and propagate to that root handler.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from types import TracebackType
from typing import Any, Final, Literal, TextIO

import structlog
from structlog.typing import Processor

from mcp_hub.logs._escaping import escape_values
from mcp_hub.logs._redaction import ACCESS_FIELDS, QUIET_LIBRARIES, RedactingFilter, redact_secrets, scrub_values

LogFormat = Literal["console", "json"]
LEVELS: Final = ("debug", "info", "warning", "error")


class _NamedWriter(structlog.WriteLogger):
    """structlog's line writer, knowing its logger's name (`add_logger_name` reads it)."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriters:
    """The logger factory: `structlog.get_logger(__name__)` writes to `file` as logger `__name__`."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriter:
        return _NamedWriter(self._file, str(args[0]) if args else "mcp_hub")


class _HubHandler(logging.StreamHandler[TextIO]):
    """The root logger's handler of this configuration (replaced, never stacked, by a later `configure_logging`)."""


def _record_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A library record's traceback (scrubbed by `RedactingFilter`), without the trailing newline some add."""
    record: logging.LogRecord = event["_record"]
    event["event"] = str(event["event"]).rstrip("\r\n")
    if record.exc_text:
        event["exception"] = record.exc_text
    if record.stack_info:
        event["stack"] = record.stack_info
    return event


def _access_fields(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """JSON only (the console line says the same): an access line's request as fields."""
    access: dict[str, Any] | None = event["_record"].__dict__.get(ACCESS_FIELDS)
    if access is not None:
        event.update(access)
    return event


def _connector_prefix(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Console only: a downstream's stderr line reads `<connector>| <line>`, as `docker compose` prefixes a service's
    output (JSON keeps the line as it was, beside its `connector` field)."""
    if event.get("stream") == "stderr" and "connector" in event:
        event["event"] = f"{event['connector']}| {event['event']}"
    return event


_FIRST: Final = ("timestamp", "level", "logger", "event")


def _essentials_first(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    """JSON lines read alike: the four keys every line has come first, in one order."""
    ordered = {key: event.pop(key) for key in _FIRST if key in event}
    ordered.update(event)
    return ordered


def _wants_colour(stream: TextIO) -> bool:
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    return stream.isatty() and not os.environ.get("NO_COLOR")


def configure_logging(level: str = "info", *, json: bool = False, stream: TextIO | None = None) -> None:
    """Log at `level` and above to `stream` (stderr), as JSON lines or console lines, every logger included."""
    output: TextIO = sys.stderr if stream is None else stream
    numeric = logging.getLevelNamesMapping()[level.upper()]
    rendering: list[Processor] = (
        [_essentials_first, structlog.processors.JSONRenderer()]
        if json
        else [_connector_prefix, structlog.dev.ConsoleRenderer(colors=_wants_colour(output), pad_event_to=30)]
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = _HubHandler(output)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, _record_fields, *([_access_fields] if json else []), scrub_values],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, escape_values, *rendering],
        )
    )
    root = logging.getLogger()
    for previous in [existing for existing in root.handlers if isinstance(existing, _HubHandler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(numeric)
    # A handler someone else put on the root (a test harness) is scrubbed too.
    for other in root.handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in other.filters):
            other.addFilter(RedactingFilter())
    for library in QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            *shared,
            redact_secrets,
            structlog.processors.format_exc_info,
            scrub_values,
            escape_values,
            *rendering,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_NamedWriters(output),
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _log_uncaught


_uncaught = structlog.get_logger("mcp_hub")


def _log_uncaught(kind: type[BaseException], value: BaseException, traceback: TracebackType | None) -> None:
    """A crash's traceback as one log line in the run's format (scrubbed), not Python's raw print."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, value, traceback)
        return
    _uncaught.critical("unhandled exception", exc_info=(kind, value, traceback))
