"""Lean requests on a stdio downstream's pipes, beside the SDK session that shares them (issue 12 §1).

stdio frames each JSON-RPC message as one line (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports#stdio),
and answers are matched to requests by id only, so one child can serve two clients on its pipes as long as their
ids never collide and their lines never interleave. A `RawLane` is that second client: the connection writes a
2026-07-28 request as one orjson line under the transport's write lock (the SDK session's writer takes the same
lock), and the transport's reader (`mcp_hub.downstream._stdio`) hands the lane, before any pydantic parsing, every
line that answers one of the lane's requests or reports its progress. The lane's ids are the connection's
`hub-<n>` strings; the SDK session numbers its own requests, so they cannot collide. Everything else (log entries,
list changes, a legacy downstream's questions) still goes to the SDK session, which attributes it as before.

Cancellation on stdio is `notifications/cancelled` (https://modelcontextprotocol.io/specification/2026-07-28/basic/utilities/cancellation):
a request abandoned before its answer (the caller cancelled, or the call timed out) sends one, as the SDK does.
When the reader stops (the child exited, or broke the framing), every waiting request fails at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, cast

import anyio
import orjson
from anyio.abc import ByteSendStream
from mcp.shared.dispatcher import ProgressFnT

from mcp_hub.downstream.progress import report_progress

_ID_MARK: Final = b'"hub-'
"""Every lane request id starts `hub-`: a line without this mark cannot concern the lane (no parse needed)."""


@dataclass(slots=True)
class _Waiter:
    on_progress: ProgressFnT | None
    done: anyio.Event = field(default_factory=anyio.Event)
    answer: dict[str, Any] | None = None


class RawLane:
    """Raw, id-matched requests to a stdio child, sharing its pipes with the SDK session."""

    def __init__(self) -> None:
        self.write_lock = anyio.Lock()
        """Held while a whole line is written to the child's stdin (by the lane, or the SDK session's writer)."""
        self._stdin: ByteSendStream | None = None
        self._waiting: dict[str, _Waiter] = {}
        self.ended: str | None = None
        """Why the child's output ended, once it has (then every request fails)."""

    def attach(self, stdin: ByteSendStream) -> None:
        """The transport started the child: requests may be written to `stdin`."""
        self._stdin = stdin
        self.ended = None

    def end(self, reason: str) -> None:
        """The transport's reader stopped: fail every waiting request."""
        self.ended = reason
        self._stdin = None
        for waiter in self._waiting.values():
            waiter.done.set()

    async def take(self, line: bytes) -> bool:
        """Consume `line` if it answers, or reports the progress of, a waiting request (True); else leave it to
        the SDK session (False)."""
        if not self._waiting or _ID_MARK not in line:
            return False
        try:
            message: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            return False  # the transport's own parsing reports the broken framing
        if not isinstance(message, dict):
            return False
        fields = cast("dict[str, Any]", message)
        method = fields.get("method")
        if method is None:
            request_id = fields.get("id")
            waiter = self._waiting.get(request_id) if isinstance(request_id, str) else None
            if waiter is None:
                return False
            waiter.answer = fields
            waiter.done.set()
            return True
        if method != "notifications/progress":
            return False
        params = fields.get("params")
        token = cast("dict[str, Any]", params).get("progressToken") if isinstance(params, dict) else None
        waiter = self._waiting.get(token) if isinstance(token, str) else None
        if waiter is None:
            return False
        await report_progress(cast("dict[str, Any]", params), waiter.on_progress)
        return True

    async def request(self, message: dict[str, Any], on_progress: ProgressFnT | None) -> dict[str, Any] | None:
        """Write `message` (a request whose id is a `hub-` string) and return the child's answer (its whole
        JSON-RPC message), or None if the child's output ended first."""
        request_id = message["id"]
        waiter = _Waiter(on_progress)
        self._waiting[request_id] = waiter
        written = False
        try:
            if self.ended is not None or self._stdin is None:
                return None
            line = orjson.dumps(message) + b"\n"
            async with self.write_lock:
                written = True
                await self._stdin.send(line)
            await waiter.done.wait()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
        else:
            return waiter.answer
        finally:
            del self._waiting[request_id]
            if written and waiter.answer is None and self.ended is None:
                await self._cancel(request_id)

    async def _cancel(self, request_id: str) -> None:
        """Tell the child a request it was sent is abandoned (shielded: the caller is being cancelled)."""
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            stdin = self._stdin
            if stdin is None:
                return
            try:
                async with self.write_lock:
                    await stdin.send(orjson.dumps(notice) + b"\n")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return
