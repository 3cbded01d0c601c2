"""Fair shares of 2025-11-25 sessions: a cap per principal as well as in total, and no session outliving its
principal's right to it (threat T28).

A 2025-11-25 session (`Mcp-Session-Id`) holds a server task, its streams and their events until the client
deletes it or it idles out (`session_idle_timeout`, 30 minutes). The SDK's session manager caps them in total
(`[hub] max_legacy_sessions`, per endpoint); alone, that lets one agent opening sessions in a loop take every
slot from everyone. So every endpoint's manager here (`HubSessionManager`) also asks `LegacySessions`, shared
by all endpoints of the process, whether the session's principal (agent, and user) may open one more
(`[hub] max_legacy_sessions_per_principal`), and tells it when a session ends, however it ends.

A disabled agent or user keeps no session: `LegacySessions.sweep` (every few seconds while the hub runs, see
`running`) closes the sessions of every principal that is no longer enabled, so their slots are free at once
rather than after the idle timeout, and their ids answer 404 from then on. The bearer guard refuses a disabled
principal a new session and closes its sessions as soon as it calls (`mcp_hub.gateway.guard`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import anyio
import structlog
from mcp.server.auth.middleware.bearer_auth import AuthorizationContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import EventStore, StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from mcp_hub.domain import AgentId, UserId

logger = structlog.get_logger(__name__)


class Owner(NamedTuple):
    """Whose a session is: the agent, and the user it acts for (None: the agent itself)."""

    agent_id: AgentId
    user_id: UserId | None

    @classmethod
    def of(cls, context: AuthorizationContext) -> Owner:
        subject = context["subject"]
        return cls(AgentId(context["client_id"]), None if subject is None else UserId(subject))


class LegacySessions:
    """Every 2025-11-25 session of this process by owner, across the hub's endpoints (`/mcp` and the profiles)."""

    def __init__(self, *, per_principal: int) -> None:
        self.per_principal = per_principal
        self._by_owner: dict[Owner, dict[str, HubSessionManager]] = {}
        self._owner_of: dict[str, Owner] = {}
        self._changed = anyio.Event()

    def count(self, owner: Owner | None = None) -> int:
        """Open sessions of `owner`, or of everyone."""
        if owner is None:
            return len(self._owner_of)
        return len(self._by_owner.get(owner, {}))

    def admits(self, owner: Owner) -> bool:
        return self.count(owner) < self.per_principal

    def owners(self) -> list[Owner]:
        return list(self._by_owner)

    async def wait_for_change(self) -> None:
        """Return at the next session opened or ended (for tests and watchers: no polling)."""
        await self._changed.wait()

    def opened(self, owner: Owner, session_id: str, manager: HubSessionManager) -> None:
        self._by_owner.setdefault(owner, {})[session_id] = manager
        self._owner_of[session_id] = owner
        self._announce()

    def ended(self, session_id: str) -> None:
        owner = self._owner_of.pop(session_id, None)
        if owner is None:
            return
        sessions = self._by_owner.get(owner, {})
        sessions.pop(session_id, None)
        if not sessions:
            self._by_owner.pop(owner, None)
        self._announce()

    async def close(self, owner: Owner) -> int:
        """End every session of `owner`; how many were open."""
        sessions = dict(self._by_owner.get(owner, {}))
        for session_id, manager in sessions.items():
            await manager.close(session_id)
        if sessions:
            logger.info("legacy sessions closed", agent=owner.agent_id, user=owner.user_id, sessions=len(sessions))
        return len(sessions)

    async def sweep(self, is_enabled: Callable[[Owner], Awaitable[bool]]) -> int:
        """Close the sessions of every owner that is no longer enabled; how many were closed."""
        closed = 0
        for owner in self.owners():
            if not await is_enabled(owner):
                closed += await self.close(owner)
        return closed

    @asynccontextmanager
    async def running(
        self, is_enabled: Callable[[Owner], Awaitable[bool]], *, every_seconds: float
    ) -> AsyncGenerator[None]:
        """Sweep every `every_seconds` while the context is open."""

        async def sweeping() -> None:
            while True:
                await anyio.sleep(every_seconds)
                await self.sweep(is_enabled)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sweeping)
            try:
                yield
            finally:
                tasks.cancel_scope.cancel()

    def _announce(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()


class HubSessionManager(StreamableHTTPSessionManager):
    """The SDK's session manager, admitting a session only while its principal is under its share, and telling
    `LegacySessions` of every session that opens or ends."""

    def __init__(
        self,
        app: Server[Any],
        sessions: LegacySessions,
        *,
        event_store: EventStore,
        security_settings: TransportSecuritySettings,
        retry_interval: int,
        max_request_body_size: int,
        max_sessions: int,
    ) -> None:
        super().__init__(
            app,
            event_store=event_store,
            security_settings=security_settings,
            retry_interval=retry_interval,
            max_request_body_size=max_request_body_size,
            max_sessions=max_sessions,
        )
        self._sessions = sessions

    def _admit_session(self, requestor: AuthorizationContext | None) -> StreamableHTTPServerTransport | None:
        # Called under the manager's creation lock, with no await in between: the check and the registration
        # are one step, so simultaneous opens of one principal cannot overshoot its share.
        owner = None if requestor is None else Owner.of(requestor)
        if owner is not None and not self._sessions.admits(owner):
            logger.warning("legacy session refused: the principal has its share", agent=owner.agent_id)
            return None
        transport = super()._admit_session(requestor)
        if transport is not None and owner is not None and transport.mcp_session_id is not None:
            self._sessions.opened(owner, transport.mcp_session_id, self)
        return transport

    async def _discard_session(self, session_id: str, transport: StreamableHTTPServerTransport) -> None:
        self._sessions.ended(session_id)
        await super()._discard_session(session_id, transport)

    async def close(self, session_id: str) -> None:
        """End one session now (its id answers 404 from this moment)."""
        transport = self._server_instances.get(session_id)
        if transport is None:
            self._sessions.ended(session_id)
            return
        await self._discard_session(session_id, transport)
