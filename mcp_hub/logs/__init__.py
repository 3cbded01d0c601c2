"""The hub's logs: one format per run (console or JSON) for every line on stderr, and no secret in any of them.

stdout belongs to the MCP stdio transport; every log line goes to stderr:
- `configure_logging`: the hub's structlog events and every library logger's records through the same processors
  and renderer (`_setup.py`);
- redaction (threats T23, T29, T30): credential-named keys, the hub's secret values, token-like parameters, on
  every handler, library loggers included (`_redaction.py`);
- control characters escaped in every value (`_escaping.py`): a request path, a client's name or a downstream's
  stderr cannot forge a line or drive the terminal.

A stdio downstream's stderr is read and logged by `mcp_hub.downstream.stderr`; the line per audited call is
`mcp_hub.audit.log_lines`.
"""

from mcp_hub.logs._escaping import escape_controls, escape_values
from mcp_hub.logs._redaction import (
    ACCESS_LOGGER,
    REDACTED,
    RedactingFilter,
    redact_secrets,
    register_secret_values,
    scrub_text,
    scrub_values,
)
from mcp_hub.logs._setup import LEVELS, LogFormat, configure_logging

__all__ = [
    "ACCESS_LOGGER",
    "LEVELS",
    "REDACTED",
    "LogFormat",
    "RedactingFilter",
    "configure_logging",
    "escape_controls",
    "escape_values",
    "redact_secrets",
    "register_secret_values",
    "scrub_text",
    "scrub_values",
]
