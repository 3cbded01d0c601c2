"""HTML pages: Jinja2 templates, the security headers every page carries, and the forms pages post.

The pages are the templates of `mcp_hub/web/templates/` (one `base.html`, one stylesheet), rendered by
Jinja2 with autoescape on: every value a template prints is escaped (HTML Living Standard §13.1: text and
quoted attribute values) unless it is markup Jinja built itself (a macro's output). Nothing of ours marks
text safe. Pages link the stylesheet and the approver's script from `/static/` (`mcp_hub.web.assets`); no
page has an inline `<style>`, `<script>` or `style=` attribute.

Every response of a page route carries (OWASP Secure Headers; CSP Level 3; RFC 9111 §5.2.2.5):
- `Content-Security-Policy: default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none';
  base-uri 'none'`: the hub's own stylesheet, no script at all, forms only to the hub, never framed
  (clickjacking of a consent button, threat T06). A page may widen `form-action` by setting its own header:
  browsers apply `form-action` to the redirect that follows a form post, so the consent page must allow the
  client's redirect URI. The approver's pages add `script-src 'self'; connect-src 'self'` (`SCRIPTED_CSP`):
  the hub's own script, talking only to the hub.
- `X-Frame-Options: DENY` for browsers without `frame-ancestors`; `Referrer-Policy: no-referrer`, so no
  URL (with an authorization code or a `state`) leaks to another site; `X-Content-Type-Options: nosniff`;
  `Cache-Control: no-store`, so no session-bound page stays in a cache (static files set their own).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from re import Match as re_Match
from typing import Final, Protocol, cast

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, request_response
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.approvals.presentation import INBOX_PATH, duration, iso_seconds
from mcp_hub.approvals.states import run_of, verdict_of
from mcp_hub.bodies import FormRules, read_form
from mcp_hub.catalog.review import HIDDEN, escape_hidden
from mcp_hub.errors import InvalidRequestError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.sessions import LOGIN_PATH, LOGOUT_PATH, WebSession, login_url

FORM_ACTION_SELF: Final = "'self'"
CONSOLE_PATH: Final = "/admin"
"""The admin console (its pages are the console's); every page's nav links it for an admin."""


def content_security_policy(form_action: str = FORM_ACTION_SELF, *, scripts: bool = False) -> str:
    """The pages' policy; `form_action` is a CSP source list (default: the hub only); `scripts` allows the
    hub's own scripts and their requests back to the hub."""
    policy = f"default-src 'none'; style-src 'self'; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    return policy + "; script-src 'self'; connect-src 'self'" if scripts else policy


PAGE_CSP: Final = content_security_policy()
SCRIPTED_CSP: Final = content_security_policy(scripts=True)
SECURITY_HEADERS: Final = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}
PAGE_FORM: Final = FormRules(max_bytes=16 * 1024, max_fields=20, keep_blank=True)
"""What the hub's own pages post: small forms, no field twice."""
CROSS_SITE_FORM: Final = Problem(403, "Refused", "This form was sent from another site.")
EXPIRED_FORM: Final = Problem(403, "Refused", "This form has expired. Reload the page and try again.")

_BOX_AT: Final = 80
_JSON_MAX_DEPTH: Final = 12


class AssetUrls(Protocol):
    def url(self, name: str) -> str:
        """The URL a page links the static file `name` by."""
        ...


# --- what templates may call: filters and tests ---------------------------------------------------------------


def _visible(value: object) -> Markup:
    """`value` as HTML-escaped text in which every hidden or bidirectional character (U+202E, zero-width, tags...)
    is written out (`\\u202e`) and marked, so that what a human approves is what is there (threat T31)."""
    return Markup(HIDDEN.sub(_marked, str(escape(str(value)))))  # noqa: S704 - escaped first, then only our <mark>


def _marked(match: re_Match[str]) -> str:
    shown = escape_hidden(match.group())
    return f'<mark class="hidden-char" title="a hidden or bidirectional character">{shown}</mark>'


_CODE_SPAN: Final = re.compile(r"`([^`]+)`")


def _with_code(value: object) -> Markup:
    """A sentence of ours that quotes names in backticks (`policy.RuleMatch`, risk cues), visible, with each quoted
    name set as code. The backticks come from our wording; a value quoted there is escaped before any of this."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(_visible(value))))  # noqa: S704 - escaped by _visible


def _hides_characters(value: object) -> bool:
    """Does `value` (a string, or JSON of any depth) contain a hidden or bidirectional character?"""
    return HIDDEN.search(json.dumps(value, ensure_ascii=False, default=str)) is not None


def _json_text(value: object) -> Markup:
    return _visible(json.dumps(value, ensure_ascii=False))


def _json_pretty(value: object) -> Markup:
    return _visible(json.dumps(value, ensure_ascii=False, indent=2))


def _long_text(value: object) -> bool:
    """Is `value` a string to show in its own box (long, or of several lines)? Shown whole all the same."""
    return isinstance(value, str) and (len(value) > _BOX_AT or "\n" in value)


_CALM_OUTCOMES: Final = {
    "ok": "ok",
    "approval_approved": "ok",
    "approval_executed": "ok",
    "approval_requested": "pending",
    "input_required": "info",
    "approval_returned": "unknown",
    "approval_expired": "unknown",
    "approval_withdrawn": "unknown",
    "cancelled": "unknown",
}


def _outcome_badge(outcome: str) -> str:
    """The badge class of an audit outcome: every outcome not known to be calm is shown as an error."""
    return _CALM_OUTCOMES.get(outcome, "error")


def _ago(moment: datetime, now: datetime) -> str:
    return duration((now - moment).total_seconds())


def _time_left(moment: datetime, now: datetime) -> str:
    left = (moment - now).total_seconds()
    return duration(left) if left > 0 else "expired"


def _environment(assets: AssetUrls) -> Environment:
    environment = Environment(
        loader=PackageLoader("mcp_hub.web", "templates"),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,  # a misspelt name fails the page instead of printing nothing
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Jinja leaves these dicts unannotated, so a type checker takes their types from the defaults in them.
    global_names = cast("dict[str, object]", environment.globals)
    filters = cast("dict[str, Callable[..., object]]", environment.filters)
    tests = cast("dict[str, Callable[..., bool]]", environment.tests)
    global_names.update(
        static_url=assets.url,
        login_path=LOGIN_PATH,
        logout_path=LOGOUT_PATH,
        inbox_path=INBOX_PATH,
        console_path=CONSOLE_PATH,
        json_max_depth=_JSON_MAX_DEPTH,
    )
    filters.update(
        iso=iso_seconds,
        ago=_ago,
        time_left=_time_left,
        json_text=_json_text,
        json_pretty=_json_pretty,
        visible=_visible,
        with_code=_with_code,
        written_out=escape_hidden,
        verdict=verdict_of,
        outcome_badge=_outcome_badge,
        run_of=run_of,
    )
    tests["long_text"] = _long_text
    tests["hiding_characters"] = _hides_characters
    return environment


class Pages:
    """The templates, rendered into page responses with their CSP."""

    def __init__(self, assets: AssetUrls) -> None:
        self._templates = Jinja2Templates(env=_environment(assets))

    def render(
        self,
        request: Request,
        template: str,
        context: Mapping[str, object],
        *,
        status: int = 200,
        csp: str = PAGE_CSP,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        """`template` (a path under `templates/`) with `context`; `csp` is the page's policy."""
        response = self._templates.TemplateResponse(request, template, dict(context), status, headers)
        response.headers["content-security-policy"] = csp
        return response

    def problem(
        self,
        request: Request,
        problem: Problem,
        *,
        csp: str = PAGE_CSP,
        viewer: WebSession | None = None,
        back: str | None = None,
    ) -> HTMLResponse:
        """A page that only says what went wrong: in the approver's layout for a `viewer`, with a link `back`."""
        context = {"title": problem.title, "message": problem.message, "viewer": viewer, "back": back}
        return self.render(request, "message.html", context, status=problem.status, csp=csp)


class SecurityHeaders:
    """Pure ASGI middleware: the headers of the module docstring on every response of the wrapped app.

    `cache_control=None` leaves `Cache-Control` to the app (static files); a page's own CSP is kept.
    """

    def __init__(self, app: ASGIApp, *, cache_control: str | None = "no-store") -> None:
        self._app = app
        self._cache_control = cache_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(SECURITY_HEADERS)
                if self._cache_control is not None:
                    headers["cache-control"] = self._cache_control
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = PAGE_CSP
            await send(message)

        await self._app(scope, receive, send_with_headers)


def page_route(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> Route:
    """A route whose every answer (pages and redirects alike) carries the security headers."""
    return Route(path, SecurityHeaders(request_response(endpoint)), methods=methods)


async def read_own_form(request: Request, *, same_origin: bool) -> dict[str, str] | Problem:
    """The posted form of one of the hub's own pages, or what to answer instead."""
    if not same_origin:
        return CROSS_SITE_FORM
    try:
        return (await read_form(request, PAGE_FORM)).as_dict()
    except InvalidRequestError as exc:
        return problem_for(exc)


async def read_viewers_form(request: Request, viewer: WebSession, *, same_origin: bool) -> dict[str, str] | Problem:
    """A form posted by one of the hub's own pages (`read_own_form`) carrying `viewer`'s CSRF token (the OWASP
    synchronizer token pattern; threat T06), or what to answer instead (`EXPIRED_FORM` without the token)."""
    form = await read_own_form(request, same_origin=same_origin)
    if isinstance(form, Problem):
        return form
    if not viewer.csrf_ok(form.get("csrf")):
        return EXPIRED_FORM
    return form


class PageRefusals:
    """How pages turn people away (`mcp_hub.web.access.Refusals`): a browser without a session goes to sign in
    first, then back to the page it asked for; a user of another role gets `not_allowed` in their own layout."""

    def __init__(self, pages: Pages, not_allowed: Problem, *, csp: str = PAGE_CSP) -> None:
        self._pages = pages
        self._not_allowed = not_allowed
        self._csp = csp

    def signed_out(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(login_url(target), status_code=303)

    def wrong_role(self, request: Request, viewer: WebSession) -> Response:
        return self._pages.problem(request, self._not_allowed, csp=self._csp, viewer=viewer)
