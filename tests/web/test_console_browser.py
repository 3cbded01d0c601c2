"""The admin console in a real browser (Debian's chromium driven by Playwright): the admin's journey.

An admin signs in, adds a connector (the fault fixture server over stdio, `trust = "review"`), reviews and
approves its `echo` tool, creates an agent (its secret read from the page, shown once) and grants it the tool
picked from the catalog; a real MCP client (the SDK's `Client`, client credentials with that secret) calls the
tool; the dashboard and the audit viewer show the call. Every console page is then opened at 1280 px and at
375 px (no horizontal scrolling of the page) and saved to `test-artifacts/screenshots/console-*.png` for a
person to look at.

Mandated by issue 13 §2 and "How it is proven" (the browser journey, screenshots at desktop and 375 px); the
layout is our choice. Threats: T06 (the forms carry the session's CSRF token; the browser sends them as a user
would), T16 (a reviewed definition is offered only once approved).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.db.audit import AuditEvent
from mcp_hub.domain import Role
from tests.authz.conftest import AgentCredentials, auth_service, bearer, client_credentials_token
from tests.conftest import FAULT_SERVER, PYTHON, REPO, RunningHub, running_hub, write_config

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 740}
CONFIG = """
[catalog]
review_poll_seconds = 0.2

[[approvals.rules]]
name = "deletes-need-a-human"
tools = ["*__delete_*"]
approvers = ["role:approver"]
"""


def prepare() -> None:
    """Skip without Debian's chromium, except under CI, where a missing browser is a failure; make the folder."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (CI fails instead of skipping)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="module")
async def console(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[tuple[RunningHub, Browser]]:
    prepare()
    directory = tmp_path_factory.mktemp("console-browser")
    config = write_config(directory, {}, CONFIG, auth=True)
    (directory / "virtual").mkdir()
    curated = VirtualServerSpec(
        name="support-desk",
        description="What the support agents need: the echo under a friendlier name, and search.",
        tools=["tools__echo", "tools__*time*"],
        rename={"tools__echo": "say_back"},
        meta_tools="add",
    )
    (directory / "virtual" / "support-desk.toml").write_text(curated.to_toml())
    async with running_hub(config) as hub, async_playwright() as playwright:
        await auth_service(hub).admin.create_user("root", Role.ADMIN, PASSWORD)
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield hub, browser
        finally:
            await browser.close()


async def sign_in(page: Page, base_url: str, next_path: str = "/admin") -> None:
    await page.goto(f"{base_url}{next_path}")
    await page.get_by_label("Name").fill("root")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(re.compile(re.escape(next_path) + "$"))


async def call_echo(hub: RunningHub, agent: AgentCredentials, tool: str) -> str:
    """Call `tool` through the hub as `agent` with the SDK's client, the way any MCP client would."""
    token = await client_credentials_token(hub, agent)
    async with (
        bearer(token) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
    ):
        result = await client.call_tool(tool, {"text": "hello from the journey"})
    assert not result.is_error, result
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_an_admin_adds_a_connector_approves_a_tool_grants_it_and_sees_the_call(
    console: tuple[RunningHub, Browser],
) -> None:
    """Issue 13 "How it is proven": the admin's whole journey through the console, then a real MCP client."""
    hub, browser = console
    context = await browser.new_context(viewport=DESKTOP)
    page = await context.new_page()
    try:
        await sign_in(page, hub.base_url)
        assert await page.get_by_role("heading", level=1).inner_text() == "Dashboard"

        # Add a connector (the form's errors first: a stdio connector needs a command).
        await page.get_by_role("link", name="Connectors", exact=True).click()
        await page.get_by_label("Id", exact=True).fill("tools")
        await page.get_by_role("button", name="Add the connector").click()
        assert await page.locator("#command-error").inner_text() == "a stdio connector needs 'command'"
        assert await page.get_by_label("Command").get_attribute("aria-invalid") == "true"
        await page.get_by_label("Command").fill(PYTHON)
        await page.get_by_label("Arguments").fill(str(FAULT_SERVER))
        await page.get_by_label("Protocol").select_option("legacy")
        await page.get_by_role("button", name="Add the connector").click()
        await page.wait_for_url(re.compile(r"/admin/connectors/tools\?done=added$"))

        # Review and approve its echo tool.
        with anyio.fail_after(20):
            while not any(pin.public_name == "tools__echo" for pin in await hub.hub.stores.pins.waiting()):  # noqa: ASYNC110 - the downstream's listing, in its own task
                await anyio.sleep(0.05)
        await page.get_by_role("link", name="Review", exact=True).click()
        await page.get_by_role("link", name="tools__echo", exact=True).click()
        assert "New definition" in await page.get_by_role("heading", level=2).first.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "console-review-definition-desktop.png"), full_page=True)
        await page.get_by_role("button", name="Approve this definition").click()
        await page.wait_for_url(re.compile(r"/admin/review\?done=approved$"))
        with anyio.fail_after(20):
            while hub.hub.catalog.tools.get("tools__echo") is None:  # noqa: ASYNC110 - the review watch's next tick
                await anyio.sleep(0.05)

        # Create an agent; its secret is on the page, once.
        await page.get_by_role("link", name="Agents", exact=True).click()
        await page.get_by_label("Name", exact=True).fill("journey-bot")
        await page.get_by_role("button", name="Create the agent").click()
        client_id = await page.locator("#client-id").inner_text()
        secret = await page.locator("#client-secret").inner_text()
        await page.screenshot(path=str(ARTIFACTS / "console-agent-secret-desktop.png"), full_page=True)

        # Grant it the tool, picked from the catalog.
        await page.get_by_role("link", name="Go to journey-bot: grant tools").click()
        await page.get_by_label("From the catalog").select_option("tool:tools__echo")
        await page.get_by_role("button", name="Grant", exact=True).click()
        await page.wait_for_url(re.compile(r"/admin/agents/journey-bot\?done=granted$"))
        assert await page.locator("#effective-tools").inner_text() == "tools__echo"

        # A real MCP client calls it; the audit row is stored before the pages are read.
        called = anyio.Event()

        def seen(event: AuditEvent) -> None:
            if event.public_name == "tools__echo" and event.client.startswith("agent:journey-bot"):
                called.set()

        hub.hub.audit.observe(seen)
        agent = AgentCredentials(name="journey-bot", client_id=client_id, client_secret=secret)
        assert "hello from the journey" in await call_echo(hub, agent, "tools__echo")
        with anyio.fail_after(10):
            await called.wait()
        await hub.hub.audit.flush()

        await page.get_by_role("link", name="Dashboard", exact=True).click()
        assert int(await page.locator("#stat-calls").inner_text()) >= 1
        assert "tools__echo" in await page.locator("#top-tools").inner_text()
        assert "agent:journey-bot" in await page.locator("#top-agents").inner_text()
        await page.get_by_role("link", name="Audit", exact=True).click()
        await page.get_by_label("Agent", exact=True).fill("journey-bot")
        await page.get_by_role("button", name="Show").click()
        rows = page.locator("#audit-rows tbody tr")
        assert await rows.count() == 1
        assert "tools__echo" in await rows.first.inner_text()
        assert "ok" in await rows.first.inner_text()
    finally:
        await context.close()


PAGES = {
    "dashboard": "/admin",
    "connectors": "/admin/connectors",
    "connector": "/admin/connectors/tools",
    "review": "/admin/review",
    "agents": "/admin/agents",
    "agent": "/admin/agents/journey-bot",
    "confirm": "/admin/agents/journey-bot/confirm?do=disable",
    "users": "/admin/users",
    "audit": "/admin/audit",
    "usage": "/admin/usage",
    "rules": "/admin/rules",
    "virtual": "/admin/virtual",
    "keys": "/admin/keys",
}


@pytest.mark.parametrize(("viewport", "width_name"), [(DESKTOP, "desktop"), (PHONE, "phone")])
async def test_every_console_page_fits_the_screen_and_is_saved_as_a_screenshot(
    console: tuple[RunningHub, Browser], viewport: ViewportSize, width_name: str
) -> None:
    """Issue 13 §2: 375 px wide screens (the page never scrolls sideways; wide tables scroll in their box),
    one h1 per page; screenshots for a person to look at. Runs after the journey (its connector and agent)."""
    hub, browser = console
    context = await browser.new_context(viewport=viewport)
    page = await context.new_page()
    try:
        await sign_in(page, hub.base_url)
        for name, path in PAGES.items():
            await page.goto(f"{hub.base_url}{path}")
            assert await page.get_by_role("heading", level=1).count() == 1, path
            assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"], path
            await page.screenshot(path=str(ARTIFACTS / f"console-{name}-{width_name}.png"), full_page=True)
    finally:
        await context.close()
