"""The start page, `GET /`: it sends each user to where their role works (issue 13 §2).

Signed out → `/login` (which, without `next`, brings them back here once signed in); an approver →
`/approvals`; an admin → `/admin`, the console. The answer is a 303, so a reload after signing in or out asks
again; every answer carries the pages' security headers (`mcp_hub.web.pages.page_route`).
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mcp_hub.approvals.presentation import INBOX_PATH
from mcp_hub.domain import Role
from mcp_hub.web.pages import CONSOLE_PATH, page_route
from mcp_hub.web.sessions import LOGIN_PATH, WebSessions

HOME_PATH: Final = "/"
_WHERE_ROLES_WORK: Final = {Role.ADMIN: CONSOLE_PATH, Role.APPROVER: INBOX_PATH}


def home_routes(sessions: WebSessions) -> list[BaseRoute]:
    async def home(request: Request) -> Response:
        viewer = await sessions.current(request)
        target = LOGIN_PATH if viewer is None else _WHERE_ROLES_WORK.get(viewer.user.role, INBOX_PATH)
        return RedirectResponse(target, status_code=303)

    return [page_route(HOME_PATH, home, methods=["GET"])]
