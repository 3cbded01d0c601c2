"""A stdio downstream's stderr as the hub's own log lines, each naming its connector (`connector=<id>`,
`stream=stderr`), in the run's one format (`mcp_hub.logs`).

What a downstream writes there is untrusted and unbounded (threats T25, T30, log injection):
- a line is logged up to `MAX_LINE_BYTES` characters, marked `truncated` beyond (a line that goes on is logged
  once a few times that many bytes arrived, and the rest of it is read and dropped): at most one line is buffered;
- at most `BURST_LINES` lines at once, then `LINES_PER_SECOND`: the rest are counted, not logged, and one warning
  says how many were suppressed (as soon as a line is logged again, or after `SUPPRESSED_REPORT_SECONDS` of
  quiet, or at the end). A flood is dropped by counting newlines of whole chunks, and keeps being read, so the
  child never blocks on a full pipe;
- the connector's own secret values are scrubbed (then every registered one, by the log's own processors), and
  control characters are escaped (ANSI escape sequences, CR, NUL, bidi overrides);
- a line that looks like a warning or an error (`WARNING`, `ERROR`, `Traceback`, ...) is logged as a warning,
  every other as info.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from typing import Final

import anyio
import structlog
from anyio.abc import ByteReceiveStream

from mcp_hub.credentials import SecretValues
from mcp_hub.logs import escape_controls

MAX_LINE_BYTES: Final = 4096
BURST_LINES: Final = 200
LINES_PER_SECOND: Final = 50.0
SUPPRESSED_REPORT_SECONDS: Final = 1.0
_READ_CHUNK_BYTES: Final = 65536
_SCRUB_WINDOW_BYTES: Final = 2 * MAX_LINE_BYTES
"""Kept before the cut, so that a secret starting before the cap is scrubbed whole, never logged half."""
_TRUNCATED: Final = "…"

_WARNING_LINE: Final = re.compile(
    r"\b(?:WARN(?:ING)?|ERR(?:OR)?|FATAL|CRITICAL|PANIC|SEVERE)\b"
    r"|^Traceback \(most recent call last\)|^\w*(?:Error|Exception|Warning):"
)
_LEVEL_PREFIX_CHARS: Final = 48
"""A level word counts only near the start of the line (after a timestamp, a program name)."""

_log = structlog.get_logger(__name__)


class StderrLog:
    """One connection's stderr: bytes in (`feed`), log lines out; `close` at the end of the stream."""

    def __init__(
        self,
        connector: str,
        secrets: SecretValues,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        burst: int = BURST_LINES,
        per_second: float = LINES_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self._secrets = secrets
        self._max_line = max_line_bytes
        self._window = max_line_bytes + _SCRUB_WINDOW_BYTES
        self._burst = float(burst)
        self._per_second = per_second
        self._clock = clock
        self._tokens = float(burst)
        self._refilled_at = clock()
        self._parts: list[bytes] = []  # the unfinished line, in pieces, at most `_window` bytes
        self._size = 0
        self._skipping = False  # the rest of the current line is dropped (already logged cut, or suppressed)
        self.suppressed = 0
        """Lines dropped by the rate bound and not yet reported."""

    def feed(self, chunk: bytes) -> None:
        """Log the lines `chunk` completes (as the rate bound allows)."""
        if not self._parts and self._refill() < 1:
            self._drop(chunk)
            return
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(chunk[start:end], complete=True)
            start = end + 1
        if start < len(chunk):
            self._take(chunk[start:], complete=False)

    def close(self) -> None:
        """The stream ended: log its unfinished line and report what was suppressed."""
        if self._parts:
            self._line(b"".join(self._parts), truncated=False)
            self._parts, self._size = [], 0
        self.report_suppressed()

    def report_suppressed(self) -> None:
        if self.suppressed:
            _log.warning(
                f"suppressed {self.suppressed} lines of stderr (more than {self._per_second:g} a second)",
                connector=self.connector,
                stream="stderr",
                suppressed=self.suppressed,
            )
            self.suppressed = 0

    def _drop(self, chunk: bytes) -> None:
        """A flood: count the lines of `chunk` without splitting it (no line of it can be logged)."""
        newlines = chunk.count(b"\n")
        if newlines == 0:
            if not self._skipping:
                self.suppressed += 1
                self._skipping = True
            return
        self.suppressed += newlines - (1 if self._skipping else 0)
        self._skipping = not chunk.endswith(b"\n")
        if self._skipping:
            self.suppressed += 1

    def _take(self, piece: bytes, *, complete: bool) -> None:
        if self._skipping:
            self._skipping = not complete
            return
        room = self._window - self._size
        if len(piece) > room:
            self._parts.append(piece[:room])
            self._size = self._window
        elif piece:
            self._parts.append(piece)
            self._size += len(piece)
        if complete or self._size >= self._window:
            line = b"".join(self._parts)
            self._parts, self._size = [], 0
            self._skipping = not complete
            self._line(line, truncated=not complete)

    def _refill(self) -> float:
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled_at) * self._per_second)
        self._refilled_at = now
        return self._tokens

    def _line(self, line: bytes, *, truncated: bool) -> None:
        if not line.strip():
            return  # a blank line says nothing
        if self._refill() < 1:
            self.suppressed += 1
            return
        self._tokens -= 1
        self.report_suppressed()
        text = escape_controls(self._secrets.scrub(line.removesuffix(b"\r").decode("utf-8", errors="backslashreplace")))
        if len(text) > self._max_line:
            text, truncated = text[: self._max_line], True
        if truncated:
            text += _TRUNCATED
        fields = {"connector": self.connector, "stream": "stderr", **({"truncated": True} if truncated else {})}
        if _WARNING_LINE.search(text[:_LEVEL_PREFIX_CHARS]):
            _log.warning(text, **fields)
        else:
            _log.info(text, **fields)


async def log_stderr(stream: ByteReceiveStream, log: StderrLog) -> None:
    """Read `stream` to its end into `log` (then `log.close()`); suppressed lines reported after a quiet second."""
    try:
        while True:
            chunk: bytes | None = None
            with anyio.move_on_after(SUPPRESSED_REPORT_SECONDS if log.suppressed else math.inf):
                chunk = await stream.receive(_READ_CHUNK_BYTES)
            if chunk is None:
                log.report_suppressed()
            else:
                log.feed(chunk)
    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        pass
    finally:
        log.close()
