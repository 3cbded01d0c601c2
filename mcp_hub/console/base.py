"""What every console page shares: the admin-only check, rendering with the console's navigation, and forms.

- `ConsoleRefusals`: a browser without a session goes to `/login?next=<the page>`; a signed-in user who is not
  an admin gets a 403 page.
- `ConsolePage.render`: a template of `templates/admin/` with the viewer and the current section (navigation).
- `ConsolePage.form`: a posted form of the console, or the problem to answer instead: from another site (403),
  unreadable (400), or without the session's CSRF token (403, "expired").
- `FieldErrors`: validation messages by field name, shown next to their field (`macros/fields.html`) with a 400.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from mcp_hub.web.errors import Problem
from mcp_hub.web.pages import EXPIRED_FORM, Pages, read_own_form
from mcp_hub.web.sessions import WebSession, WebSessions, login_url

ADMIN_PATH: Final = "/admin"
NOT_AN_ADMIN: Final = Problem(403, "Not an admin", "Only admins use the console.")

FieldErrors = dict[str, str]
"""Validation messages by form field name."""


def now() -> datetime:
    return datetime.now(UTC)


class ConsoleRefusals:
    """Signed out → sign in first (then back here); another role → a 403 page."""

    def __init__(self, pages: Pages) -> None:
        self._pages = pages

    def signed_out(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(target), status_code=303)

    def wrong_role(self, request: Request, viewer: WebSession) -> Response:
        # The message in the viewer's own layout: an approver keeps the way to their pages and to sign out.
        return self._pages.problem(request, NOT_AN_ADMIN, viewer=viewer)


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
        full = {"viewer": viewer, "console_section": section, "admin_path": ADMIN_PATH, "now": now(), **context}
        return self.pages.render(request, f"admin/{template}", full, status=status)

    def problem(self, request: Request, viewer: WebSession, problem: Problem, *, back: str | None = None) -> Response:
        context = {"title": problem.title, "message": problem.message, "back": back}
        return self.render(request, viewer, "message.html", context, section="", status=problem.status)

    async def form(self, request: Request, viewer: WebSession) -> dict[str, str] | Problem:
        """The posted form (same origin, bounded, its CSRF token checked), or the problem to show instead."""
        form = await read_own_form(request, same_origin=self.sessions.same_origin(request))
        if isinstance(form, Problem):
            return form
        if not viewer.csrf_ok(form.get("csrf")):
            return EXPIRED_FORM
        return form


def see_other(path: str) -> Response:
    """The answer to a successful form: back to a page (Post/Redirect/Get)."""
    return RedirectResponse(path, status_code=303)
