"""Who may use a page or API route: one check in front of every route that needs a signed-in user of some role.

`RequireRole(sessions, roles, refusals)` decorates an endpoint that takes the viewer's `WebSession` besides
the request. The endpoint runs only for a live session of an enabled user whose role is in `roles`; anyone
else gets what `refusals` answers: pages send a browser without a session to `/login?next=<path and query>`
and show a user of another role a 403 page; the JSON API answers 401 and 403 (`mcp_hub.web.errors`).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Set
from typing import Protocol

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.domain import Role
from mcp_hub.web.sessions import WebSession, WebSessions

Endpoint = Callable[[Request], Awaitable[Response]]
ViewerEndpoint = Callable[[Request, WebSession], Awaitable[Response]]


class Refusals(Protocol):
    """How one kind of route turns away whom it does not serve."""

    def signed_out(self, request: Request) -> Response:
        """The answer to a request without a session."""
        ...

    def wrong_role(self, request: Request, viewer: WebSession) -> Response:
        """The answer to a signed-in user whose role does not let them in."""
        ...


class RequireRole:
    """A decorator: `endpoint(request, viewer)` for the users of `roles`, `refusals` for everyone else."""

    def __init__(self, sessions: WebSessions, roles: Set[Role], refusals: Refusals) -> None:
        self._sessions = sessions
        self._roles = frozenset(roles)
        self._refusals = refusals

    def __call__(self, endpoint: ViewerEndpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            viewer = await self._sessions.current(request)
            if viewer is None:
                return self._refusals.signed_out(request)
            if viewer.user.role not in self._roles:
                return self._refusals.wrong_role(request, viewer)
            return await endpoint(request, viewer)

        return guarded
