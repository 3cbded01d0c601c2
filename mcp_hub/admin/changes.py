"""Who changes what: every admin change is an audit row naming its admin (issue 13 §1).

`Actor` is the admin (`user:<name>` for a web session, `admin-client:<client_id>` for an admin token,
`cli:<login>` for an `mcp-hub` command run on the hub's host, named by the operating system's login).
`AdminAudit.change(actor, "agents.create", target)` wraps one change: the row is written through the hub's
`AuditWriter` (so the hash chain, the sinks and the per-call log line see admin changes too) with
`method="admin/agents.create"`, `client=<actor>`, `public_name=<target>`, the outcome (`ok`, or `admin_refused`
when a `HubError` refused it, `internal_error` for anything else) and a detail the service sets, which never
holds a secret (threat T23: a new client secret, a password, a connector's header values are never written).
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Final

import anyio

from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import ADMIN_METHOD_PREFIX, AuditOutcome, Clock, utc_now
from mcp_hub.errors import HubError

_MAX_DETAIL: Final = 1000


@dataclass(frozen=True, slots=True)
class Actor:
    """The admin making a change, as the audit trail names them."""

    label: str

    @classmethod
    def user(cls, name: str) -> Actor:
        return cls(f"user:{name}")

    @classmethod
    def client(cls, client_id: str) -> Actor:
        return cls(f"admin-client:{client_id}")

    @classmethod
    def command(cls, login: str) -> Actor:
        """Whoever runs an `mcp-hub` command on the hub's host (with its database), by their login."""
        return cls(f"cli:{login}")


@dataclass(slots=True)
class Change:
    """One change in progress: the service names what it did in `detail` (no secrets)."""

    detail: str | None = None


RecordAudit = Callable[[AuditEvent], Awaitable[None]]


class AdminAudit:
    """Writes the audit row of each admin change, refused ones included."""

    def __init__(self, record: RecordAudit, *, clock: Clock = utc_now) -> None:
        self._record = record
        self._clock = clock

    @asynccontextmanager
    async def change(self, actor: Actor, action: str, target: str) -> AsyncGenerator[Change]:
        """Audit the change made inside the block: `ok` when it ends, `admin_refused` (and re-raised) when a
        `HubError` ends it, `internal_error` for any other exception."""
        change = Change()
        started = time.perf_counter()
        outcome = AuditOutcome.INTERNAL_ERROR
        try:
            yield change
            outcome = AuditOutcome.OK
        except HubError as exc:
            outcome = AuditOutcome.ADMIN_REFUSED
            change.detail = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled request's change is still on the record
                await self._record(
                    AuditEvent(
                        at=self._clock(),
                        client=actor.label,
                        session=None,
                        public_name=target,
                        connector_id=None,
                        downstream_name=None,
                        outcome=outcome,
                        latency_ms=(time.perf_counter() - started) * 1000,
                        detail=None if change.detail is None else change.detail[:_MAX_DETAIL],
                        method=ADMIN_METHOD_PREFIX + action,
                    )
                )
