"""Structured logging to stderr (stdout belongs to the MCP stdio transport), with secret redaction."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_KEY = re.compile(r"(?i)(authorization|token|secret|password|passwd|api[-_]?key|cookie|credential)")
REDACTED = "[redacted]"


def redact_secrets(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: blank out values whose key names a credential."""
    for key in list(event):
        if key != "event" and _SECRET_KEY.search(key):
            event[key] = REDACTED
    return event


def configure_logging(level: str = "info", *, json: bool = False) -> None:
    numeric = logging.getLevelNamesMapping()[level.upper()]
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    # One line per outbound HTTP request is noise at info level (downstream calls, CLI health probes).
    logging.getLogger("httpx2").setLevel(max(numeric, logging.WARNING))
    # Alembic announces its context on every schema check (each command, each start).
    logging.getLogger("alembic").setLevel(max(numeric, logging.WARNING))
    renderer: Any = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
