"""The pages as a web app: templates without inline style or script, and the static files the hub serves."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator
from pathlib import Path

import httpx2
import pytest

from mcp_hub.web.pages import PAGE_CSP, SCRIPTED_CSP
from tests.conftest import REPO, RunningHub, running_hub, write_config

pytestmark = pytest.mark.anyio

TEMPLATES = REPO / "mcp_hub" / "web" / "templates"
SECURITY_HEADERS = {"x-frame-options": "DENY", "referrer-policy": "no-referrer", "x-content-type-options": "nosniff"}


@pytest.fixture
async def hub(tmp_path: Path) -> AsyncGenerator[RunningHub]:
    """A hub with auth on (the pages exist only then) and no connectors."""
    async with running_hub(write_config(tmp_path, {}, auth=True)) as running:
        yield running


def linked(page: str, pattern: str) -> str:
    match = re.search(pattern, page)
    assert match is not None, f"nothing matches {pattern!r} in the page"
    return match.group(1)


def test_no_template_has_inline_style_or_script() -> None:
    """Chosen by us (CSP Level 3 without 'unsafe-inline'): style and script come only from the hub's files."""
    templates = sorted(TEMPLATES.rglob("*.html"))
    inline = [
        f"{path.relative_to(TEMPLATES)}: {found}"
        for path in templates
        for found in re.findall(r"<style|\sstyle=|<script(?![^>]*\ssrc=)[^>]*>|\son[a-z]+=", path.read_text())
    ]

    assert templates
    assert inline == []


def test_the_policies_allow_only_the_hubs_own_style_and_script() -> None:
    """CSP Level 3: no inline style or script is allowed anywhere; scripts only on the approver's pages."""
    assert PAGE_CSP == (
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    assert SCRIPTED_CSP == PAGE_CSP + "; script-src 'self'; connect-src 'self'"


async def test_the_stylesheet_is_served_by_the_hub_with_the_security_headers(hub: RunningHub) -> None:
    """Chosen by us: the page links `/static/hub.css?v=<digest>`; that version may be cached for good,
    any other request is revalidated; every answer, a 404 too, carries the pages' security headers."""
    async with httpx2.AsyncClient(base_url=hub.base_url) as browser:
        page = await browser.get("/login")
        stylesheet = linked(page.text, r'<link rel="stylesheet" href="([^"]+)">')
        versioned = await browser.get(stylesheet)
        unversioned = await browser.get("/static/hub.css")
        stale = await browser.get("/static/hub.css", params={"v": "0" * 16})
        missing = await browser.get("/static/nothing.css")
        outside = await browser.get("/static/%2e%2e/pages.py")

    assert page.headers["content-security-policy"] == PAGE_CSP
    assert stylesheet.startswith("/static/hub.css?v=")
    assert versioned.status_code == 200
    assert versioned.headers["content-type"].startswith("text/css")
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert versioned.text == unversioned.text
    assert unversioned.headers["cache-control"] == "no-cache"
    assert stale.headers["cache-control"] == "no-cache"
    assert (missing.status_code, outside.status_code) == (404, 404)
    for response in (versioned, unversioned, missing):
        assert {name: response.headers[name] for name in SECURITY_HEADERS} == SECURITY_HEADERS
        assert response.headers["content-security-policy"] == PAGE_CSP


async def test_the_approvals_script_is_a_javascript_file_of_the_hub(hub: RunningHub) -> None:
    """WHATWG Fetch (`nosniff`): a script is only run if it is served with a JavaScript media type."""
    async with httpx2.AsyncClient(base_url=hub.base_url) as browser:
        script = await browser.get("/static/approvals.js")
        posted = await browser.post("/static/approvals.js")

    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert 'new EventSource("/approvals/events")' in script.text
    assert posted.status_code == 405
    assert posted.headers["x-frame-options"] == "DENY"


def test_every_class_the_style_guide_names_is_in_the_stylesheet() -> None:
    """Chosen by us (issue 13 §2, one visual style): docs/web-style.md is what other pages build on, so each class
    it names (`.card`, `badge-pending`, ...) must exist in `hub.css`."""
    guide = (REPO / "docs" / "web-style.md").read_text()
    stylesheet = (REPO / "mcp_hub" / "web" / "static" / "hub.css").read_text()
    named = set(re.findall(r"`\.([a-z][a-z-]*)", guide)) | set(re.findall(r"`(badge-[a-z]+)`", guide))
    named |= {
        name
        for found in re.findall(r'class="([^"]+)"', guide)
        for name in found.split()
        if re.fullmatch(r"[a-z][a-z0-9-]*", name)  # not the placeholders (`badge-STATUS`, `info|success|...`)
    }
    defined = set(re.findall(r"\.([a-z][a-z0-9-]*)", stylesheet))

    assert {"card", "badge-pending", "badge-healthy", "primary", "danger", "field-error", "table-wrap"} <= named
    assert sorted(named - defined) == []
