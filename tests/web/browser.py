"""A headless browser for the hub's pages: real HTTP, a cookie jar, forms read from the served HTML."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qsl, urlsplit

import httpx2


def hidden_field(page: str, name: str) -> str:
    """The value of the form field `name` in `page`, as a browser would submit it."""
    match = re.search(rf'<input type="hidden" name="{re.escape(name)}" value="([^"]*)">', page)
    assert match is not None, f"no hidden field {name!r} in the page"
    return html.unescape(match.group(1))


def query_of(location: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(location).query))


async def sign_in(
    browser: httpx2.AsyncClient, base_url: str, name: str, password: str, next_path: str | None = None
) -> httpx2.Response:
    """Load the login page (with `next`), then submit it as it came."""
    page = await browser.get(f"{base_url}/login", params={} if next_path is None else {"next": next_path})
    assert page.status_code == 200, page.text
    form = {"name": name, "password": password, "next": hidden_field(page.text, "next")}
    return await browser.post(f"{base_url}/login", data=form)


async def open_consent(
    browser: httpx2.AsyncClient, base_url: str, authorize_url: str, name: str, password: str
) -> httpx2.Response:
    """Open the authorization URL; sign in on the way if the hub asks. Returns what the hub finally shows."""
    response = await browser.get(authorize_url)
    location = response.headers.get("location", "")
    if response.status_code == 303 and urlsplit(location).path == "/login":
        signed_in = await sign_in(browser, base_url, name, password, query_of(location)["next"])
        assert signed_in.status_code == 303, signed_in.text
        response = await browser.get(base_url + signed_in.headers["location"])
    return response


async def decide(
    browser: httpx2.AsyncClient, base_url: str, consent_page: str, decision: str = "approve"
) -> httpx2.Response:
    """Press Approve or Deny on a consent page."""
    form = {
        "consent": hidden_field(consent_page, "consent"),
        "csrf": hidden_field(consent_page, "csrf"),
        "decision": decision,
    }
    return await browser.post(f"{base_url}/oauth/authorize", data=form)


async def authorize_as(
    browser: httpx2.AsyncClient, base_url: str, authorize_url: str, name: str, password: str, decision: str = "approve"
) -> dict[str, str]:
    """The whole human part: sign in, see the consent page, decide; returns the redirect's query parameters."""
    consent = await open_consent(browser, base_url, authorize_url, name, password)
    assert consent.status_code == 200, consent.text
    answer = await decide(browser, base_url, consent.text, decision)
    assert answer.status_code == 303, answer.text
    return query_of(answer.headers["location"])
