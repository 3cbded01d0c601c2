"""HTML pages: markup from escaped values, security headers, and form bodies.

Every value interpolated into a page goes through `html.escape` (HTML Living Standard §13.1: text and
quoted attribute values), unless it is already `Html` built the same way, so no caller can forget it.

Every response of a page route carries (OWASP Secure Headers; CSP Level 3; RFC 9111 §5.2.2.5):
- `Content-Security-Policy: default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self';
  frame-ancestors 'none'; base-uri 'none'`: no script at all, forms only to the hub, never framed
  (clickjacking of a consent button, threat T06). A page may widen `form-action` by setting its own header:
  browsers apply `form-action` to the redirect that follows a form post, so the consent page must allow the
  client's redirect URI.
- `X-Frame-Options: DENY` for browsers without `frame-ancestors`; `Referrer-Policy: no-referrer`, so no
  URL (with an authorization code or a `state`) leaks to another site; `X-Content-Type-Options: nosniff`;
  `Cache-Control: no-store`, so no session-bound page stays in a cache.
"""

from __future__ import annotations

import html as _html
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.bodies import FormRules, read_form
from mcp_hub.errors import InvalidRequestError

FORM_ACTION_SELF: Final = "'self'"


def content_security_policy(form_action: str = FORM_ACTION_SELF) -> str:
    """The pages' policy; `form_action` is a CSP source list (default: the hub only)."""
    return (
        "default-src 'none'; style-src 'self' 'unsafe-inline'; "
        f"form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    )


SECURITY_HEADERS: Final = {
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
}
PAGE_FORM: Final = FormRules(max_bytes=16 * 1024, max_fields=20, keep_blank=True)
"""What the hub's own pages post: small forms, no field twice."""


@dataclass(frozen=True, slots=True)
class Html:
    """Markup that is safe to send: literal template text with every value escaped."""

    text: str


HtmlValue = str | int | Html | Sequence[Html]


def _render(value: HtmlValue) -> str:
    if isinstance(value, Html):
        return value.text
    if isinstance(value, str):
        return _html.escape(value, quote=True)
    if isinstance(value, int):
        return str(value)
    return "".join(item.text for item in value)


def html(template: str, /, **values: HtmlValue) -> Html:
    """`template` (a literal in our code) with `{name}` fields filled by escaped `values`."""
    return Html(template.format(**{name: _render(value) for name, value in values.items()}))


_STYLE: Final = """
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; padding: 1rem; }
main { max-width: 32rem; margin: 2rem auto; }
h1 { font-size: 1.4rem; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input[type=text], input[type=password] { display: block; width: 100%; box-sizing: border-box;
  font-size: 1rem; padding: 0.6rem; margin-top: 0.25rem; }
button { font-size: 1rem; min-height: 2.75rem; padding: 0.5rem 1.25rem; margin: 1rem 0.5rem 0 0; }
.error { border-left: 0.25rem solid #c62828; padding: 0.5rem 0.75rem; }
.actions { display: flex; flex-wrap: wrap; }
code { overflow-wrap: anywhere; }
footer { margin-top: 2rem; font-size: 0.9rem; }
"""


def render_page(title: str, body: Html) -> Html:
    """A whole document: language, viewport for phone-width screens, the page's own small stylesheet."""
    return html(
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        "<title>{title} · mcp-hub</title>\n<style>{style}</style>\n</head>\n"
        "<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        title=title,
        style=Html(_STYLE),
        body=body,
    )


def page_response(title: str, body: Html, *, status: int = 200, form_action: str = FORM_ACTION_SELF) -> HTMLResponse:
    """An HTML page; its CSP allows forms to post to `form_action` (the hub itself unless told otherwise)."""
    response = HTMLResponse(render_page(title, body).text, status_code=status)
    response.headers["content-security-policy"] = content_security_policy(form_action)
    return response


def message_page(title: str, message: str, *, status: int) -> HTMLResponse:
    """A page that only says something (an error the user cannot fix by retrying the same request)."""
    return page_response(
        title, html('<h1>{title}</h1>\n<p role="alert">{message}</p>', title=title, message=message), status=status
    )


class SecurityHeaders:
    """Pure ASGI middleware: the headers of the module docstring on every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(SECURITY_HEADERS)
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = content_security_policy()
            await send(message)

        await self._app(scope, receive, send_with_headers)


def page_route(path: str, endpoint: Callable[[Request], Awaitable[Response]], methods: list[str]) -> Route:
    """A route whose every answer (pages and redirects alike) carries the security headers."""
    return Route(path, SecurityHeaders(request_response(endpoint)), methods=methods)


async def read_own_form(request: Request, *, same_origin: bool) -> dict[str, str] | HTMLResponse:
    """The posted form of one of the hub's own pages, or the refusal page to answer with instead."""
    if not same_origin:
        return message_page("Refused", "This form was sent from another site.", status=403)
    try:
        return (await read_form(request, PAGE_FORM)).as_dict()
    except InvalidRequestError as exc:
        return message_page("Bad request", str(exc), status=400)
