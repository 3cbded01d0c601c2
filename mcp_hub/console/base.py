"""What every console page shares: the admin-only check, rendering with the console's navigation, and forms.

- `NOT_AN_ADMIN`: what a signed-in user who is not an admin sees (`web.pages.PageRefusals`; a browser without
  a session goes to `/login?next=<the page>`).
- `ConsolePage.render`: a template of `templates/admin/` with the viewer and the current section (navigation).
- `ConsolePage.form`: a posted form of the console, or the problem to answer instead: from another site (403),
  unreadable (400), or without the session's CSRF token (403, "expired").
- `FieldErrors`: validation messages by field name, shown next to their field (`macros/fields.html`) with a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_hub.domain import utc_now
from mcp_hub.web.errors import Problem
from mcp_hub.web.pages import Pages, read_viewers_form
from mcp_hub.web.sessions import WebSession, WebSessions

ADMIN_PATH: Final = "/admin"
NOT_AN_ADMIN: Final = Problem(403, "Not an admin", "Only admins use the console.")

FieldErrors = dict[str, str]
"""Validation messages by form field name."""


class ConsolePage:
    """Rendering and form reading for the console's endpoints."""

    def __init__(self, pages: Pages, sessions: WebSessions) -> None:
        self.pages = pages
        self.sessions = sessions

    def render(
        self,
        request: Request,
        viewer: WebSession,
        template: str,
        context: Mapping[str, object],
        *,
        section: str,
        status: int = 200,
    ) -> Response:
        """`admin/<template>` for `viewer`; `section` marks the current entry of the navigation."""
        full = {"viewer": viewer, "console_section": section, "admin_path": ADMIN_PATH, "now": utc_now(), **context}
        return self.pages.render(request, f"admin/{template}", full, status=status)

    def problem(self, request: Request, viewer: WebSession, problem: Problem, *, back: str | None = None) -> Response:
        context = {"title": problem.title, "message": problem.message, "back": back}
        return self.render(request, viewer, "message.html", context, section="", status=problem.status)

    async def form(self, request: Request, viewer: WebSession) -> dict[str, str] | Problem:
        """The posted form (same origin, bounded, its CSRF token checked), or the problem to show instead."""
        return await read_viewers_form(request, viewer, same_origin=self.sessions.same_origin(request))


def see_other(path: str) -> Response:
    """The answer to a successful form: back to a page (Post/Redirect/Get)."""
    return RedirectResponse(path, status_code=303)
