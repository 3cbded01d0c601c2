"""The approver's pages and JSON API in a real browser (Debian's chromium driven by Playwright).

One hub for the module: the fault fixture server as connector `faults`; `faults__echo` needs any approver,
`faults__meta` needs the user carol; an echo whose text contains `<script` is also held by a rule with that
condition. Agents call through the SDK client over streamable HTTP in background tasks and are held
(`hold_seconds = 30`) until someone decides. Screenshots of the login page, the inbox, a pending and a decided
action, at desktop and phone width, are saved to `test-artifacts/screenshots/` for a person to look at.

Mandated by issue 4 §4-§5, issue 13 §3 and threats T20 (separation of duties, final decisions, CSRF) and T31
(misleading display: nothing folded, hidden characters written out); the page layout and the JSON shapes are
chosen by us.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from anyio.abc import TaskGroup
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from playwright.async_api import Browser, Page, async_playwright

from mcp_hub.db.approvals import ActionRecord
from mcp_hub.domain import Role
from tests.approvals.holding import rules_edited_after_holding
from tests.authz.conftest import AgentCredentials, auth_service, bearer, client_credentials_token, make_agent
from tests.conftest import REPO, RunningHub, fault_connector, running_hub, write_config
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "screenshots"
PASSWORD = "correct horse battery staple"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
APPROVALS = """
[approvals]
hold_seconds = 30

[[approvals.rules]]
name = "echo-needs-a-human"
tools = ["faults__echo"]
approvers = ["role:approver"]

[[approvals.rules]]
name = "meta-needs-carol"
tools = ["faults__meta"]
approvers = ["user:carol"]

[[approvals.rules]]
name = "scripts-in-text"
tools = ["faults__echo"]
when = [{ field = "text", op = "matches", value = "<script" }]
"""


def require_chromium() -> None:
    """Skip without Debian's chromium, except under CI, where a missing browser is a failure."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (CI fails instead of skipping)")


class Arrivals:
    """Pending actions as the hub's `ApprovalService` announces them (a subscriber of the hub's feed)."""

    def __init__(self) -> None:
        self._seen: dict[str, ActionRecord] = {}
        self._changed = anyio.Event()

    async def on_change(self, action: ActionRecord) -> None:
        if action.status == "pending":
            self._seen[action.id] = action
            self._changed.set()
            self._changed = anyio.Event()

    async def of(self, agent: str, tool: str) -> ActionRecord:
        """The pending action of `agent` for `tool`, waiting for it to be created."""
        with anyio.fail_after(20):
            while True:
                changed = self._changed
                for action in self._seen.values():
                    if action.agent_name == agent and action.public_name == tool:
                        return action
                await changed.wait()


@dataclass
class Approvals:
    hub: RunningHub
    browser: Browser
    arrivals: Arrivals
    results: dict[str, CallToolResult] = field(default_factory=dict[str, CallToolResult])


@pytest.fixture(scope="module")
async def approvals(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[Approvals]:
    require_chromium()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    config = write_config(tmp_path_factory.mktemp("approvals"), {"faults": fault_connector()}, APPROVALS, auth=True)
    async with running_hub(config) as hub, async_playwright() as playwright:
        await hub.wait_ready("faults")
        for name in ("alice", "bob", "carol"):
            await auth_service(hub).admin.create_user(name, Role.APPROVER, PASSWORD)
        arrivals = Arrivals()
        hub.hub.feed.subscribe(arrivals.on_change)
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield Approvals(hub=hub, browser=browser, arrivals=arrivals)
        finally:
            await browser.close()


async def call_tool(hub: RunningHub, agent: AgentCredentials, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    token = await client_credentials_token(hub, agent)
    async with (
        bearer(token) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode="legacy") as client,
    ):
        return await client.call_tool(tool, arguments)


def start_call(
    tasks: TaskGroup, env: Approvals, agent: AgentCredentials, tool: str, arguments: dict[str, Any]
) -> Callable[[], Awaitable[CallToolResult]]:
    """Call `tool` as `agent` in the background; the returned function waits for the result."""
    done = anyio.Event()
    key = f"{agent.name}/{tool}"

    async def run() -> None:
        env.results[key] = await call_tool(env.hub, agent, tool, arguments)
        done.set()

    async def result() -> CallToolResult:
        with anyio.fail_after(20):
            await done.wait()
        return env.results[key]

    tasks.start_soon(run)
    return result


def text_of(result: CallToolResult) -> str:
    return "".join(block.text for block in result.content if isinstance(block, TextContent))


async def sign_in_page(env: Approvals, name: str, path: str, viewport: dict[str, int] = DESKTOP) -> Page:
    """A new browser context with `name`'s web session, showing `path`.

    The session comes from the login form posted over HTTP (`tests.web.browser.sign_in`) and is handed to
    the browser as its cookie, which is quicker than typing; signing in through the form in chromium is
    `test_signing_in_through_the_login_page_in_a_real_browser`.
    """
    async with httpx2.AsyncClient() as client:
        signed_in = await sign_in(client, env.hub.base_url, name, PASSWORD, path)
        assert signed_in.status_code == 303, signed_in.text
        cookies = [
            {"name": cookie.name, "value": cookie.value or "", "url": env.hub.base_url} for cookie in client.cookies.jar
        ]
    context = await env.browser.new_context(viewport={"width": viewport["width"], "height": viewport["height"]})
    await context.add_cookies(cookies)  # pyright: ignore[reportArgumentType]
    page = await context.new_page()
    await page.goto(env.hub.base_url + path)
    assert page.url == env.hub.base_url + path
    return page


@asynccontextmanager
async def api_session(env: Approvals, name: str) -> AsyncGenerator[tuple[httpx2.AsyncClient, str]]:
    """An HTTP client with `name`'s web session, and the CSRF token the API hands out."""
    async with httpx2.AsyncClient(base_url=env.hub.base_url, timeout=20) as client:
        signed_in = await sign_in(client, env.hub.base_url, name, PASSWORD, "/approvals")
        assert signed_in.status_code == 303, signed_in.text
        listing = await client.get("/api/approvals")
        assert listing.status_code == 200, listing.text
        yield client, listing.headers["x-csrf-token"]


async def decide_by_api(
    client: httpx2.AsyncClient, csrf: str, action_id: str, decision: str, reason: str | None = None
) -> httpx2.Response:
    return await client.post(
        f"/api/approvals/{action_id}/decision",
        json={"decision": decision, "reason": reason},
        headers={"X-CSRF-Token": csrf},
    )


async def echo_runs(env: Approvals, agent: str) -> int:
    await env.hub.hub.audit.flush()
    events = await env.hub.hub.stores.audit.recent_audit(limit=1000)
    return sum(
        1
        for event in events
        if event.public_name == "faults__echo" and event.outcome == "ok" and event.client == f"agent:{agent}"
    )


async def test_an_approver_sees_a_held_call_arrive_live_approves_it_and_it_runs_once(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "deployer", "tool:faults__*")
    page = await sign_in_page(env, "alice", "/approvals")
    arguments = {"text": "ship release 1.2.3 " + "with a very long changelog line " * 8}
    async with anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", arguments)
        action = await env.arrivals.of(agent.name, "faults__echo")
        row = page.locator(f'tr[data-action-id="{action.id}"]')
        await row.wait_for()  # no reload: the event stream brought it
        assert "deployer" in await row.inner_text()
        await page.screenshot(path=str(ARTIFACTS / "inbox-desktop.png"), full_page=True)
        await row.get_by_role("link", name="faults__echo").click()
        await page.wait_for_url(f"{env.hub.base_url}/approvals/{action.id}")
        assert await page.get_by_role("heading", level=1).inner_text() == "Approve faults__echo for deployer?"
        await page.get_by_label("Reason (optional; the agent sees it)").fill("release window is open")
        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_url(f"{env.hub.base_url}/approvals/{action.id}?done=approved")
        assert await page.locator("#done").inner_text() == "You approved this action."
        outcome = await result()
        assert not outcome.is_error, text_of(outcome)
        assert text_of(outcome) == arguments["text"]
        assert await echo_runs(env, agent.name) == 1
        await page.context.close()


async def test_a_denied_call_tells_the_agent_the_reason(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "cleaner", "tool:faults__*")
    async with anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", {"text": "drop the table"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        page = await sign_in_page(env, "carol", f"/approvals/{action.id}")
        await page.get_by_label("Reason (optional; the agent sees it)").fill("not during business hours")
        await page.get_by_role("button", name="Deny").click()
        await page.wait_for_url(f"{env.hub.base_url}/approvals/{action.id}?done=denied")
        outcome = await result()
        assert outcome.is_error
        assert "denied by carol: not during business hours" in text_of(outcome)
        assert await echo_runs(env, agent.name) == 0
        decision = await page.locator("#decision").inner_text()
        assert "Denied by carol at " in decision
        assert "Reason: not during business hours" in decision
        assert "Not run." in await page.locator("#run").inner_text()
        assert await page.locator("#decide, #why-not, form[action$='/decision']").count() == 0
        await page.context.close()


async def test_a_second_decision_is_refused_with_409(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "twice", "tool:faults__*")
    async with (
        api_session(env, "alice") as (alice, alice_csrf),
        api_session(env, "carol") as (carol, carol_csrf),
        anyio.create_task_group() as tasks,
    ):
        result = start_call(tasks, env, agent, "faults__echo", {"text": "once"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        shown = await alice.get(f"/api/approvals/{action.id}")
        assert shown.json()["arguments"] == {"text": "once"}
        assert shown.json()["you_may_decide"] is True
        assert (shown.json()["decision"], shown.json()["run"]) == (
            "No decision yet.",
            "Not run: it runs only once approved.",
        )
        assert shown.json()["why"][0]["rule"] == "echo-needs-a-human"
        first = await decide_by_api(alice, alice_csrf, action.id, "deny", "no")
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "denied"
        denied = (await alice.get(f"/api/approvals/{action.id}")).json()
        assert denied["decision"].startswith("Denied by alice at ")
        assert (denied["run"], denied["expiry"]) == ("Not run.", None)
        again = await decide_by_api(alice, alice_csrf, action.id, "approve")
        other = await decide_by_api(carol, carol_csrf, action.id, "approve")
        await result()
        assert (again.status_code, again.json()["error"]) == (409, "conflict")
        assert other.status_code == 409
        assert await echo_runs(env, agent.name) == 0


async def test_the_detail_page_shows_what_the_approved_call_returned(approvals: Approvals) -> None:
    """Issue 4 §4, our choice: after the approved call ran, its page shows the result the agent received."""
    env = approvals
    agent = await make_agent(env.hub, "reporter", "tool:faults__*")
    async with api_session(env, "alice") as (alice, alice_csrf), anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", {"text": "<b>shipped</b> release 2.0"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        before = await alice.get(f"/approvals/{action.id}")
        approved = await decide_by_api(alice, alice_csrf, action.id, "approve", "go")
        assert approved.status_code == 200, approved.text
        assert not (await result()).is_error
        after = await alice.get(f"/approvals/{action.id}")
        assert "<h3>Result" not in before.text
        assert "<h3>Result</h3>" in after.text
        assert "&lt;b&gt;shipped&lt;/b&gt; release 2.0" in after.text  # shown, escaped
        assert "<b>shipped</b>" not in after.text


async def test_an_approver_cannot_decide_for_an_agent_they_own(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "bobs-bot", "tool:faults__*")
    await auth_service(env.hub).admin.set_agent_owner(agent.name, "bob")
    async with (
        api_session(env, "bob") as (bob, bob_csrf),
        api_session(env, "alice") as (alice, alice_csrf),
        anyio.create_task_group() as tasks,
    ):
        result = start_call(tasks, env, agent, "faults__echo", {"text": "approve yourself"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        page = await sign_in_page(env, "bob", f"/approvals/{action.id}")
        assert "you own the agent that asks" in await page.locator("#why-not").inner_text()
        assert await page.get_by_role("button", name="Approve").is_disabled()
        refused = await decide_by_api(bob, bob_csrf, action.id, "approve")
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        released = await decide_by_api(alice, alice_csrf, action.id, "deny", "bob may not approve his own bot")
        assert released.status_code == 200
        await result()
        await page.context.close()
        assert await echo_runs(env, agent.name) == 0


async def test_only_the_approvers_the_rule_names_may_decide(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "inspector", "tool:faults__*")
    async with (
        api_session(env, "alice") as (alice, alice_csrf),
        api_session(env, "carol") as (carol, carol_csrf),
        anyio.create_task_group() as tasks,
    ):
        result = start_call(tasks, env, agent, "faults__meta", {})
        action = await env.arrivals.of(agent.name, "faults__meta")
        refused = await decide_by_api(alice, alice_csrf, action.id, "approve")
        assert refused.status_code == 403
        assert "user:carol" in refused.json()["message"]
        allowed = await decide_by_api(carol, carol_csrf, action.id, "approve")
        assert allowed.status_code == 200, allowed.text
        outcome = await result()
        assert not outcome.is_error, text_of(outcome)


async def test_a_decision_without_the_csrf_token_is_refused(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "forged", "tool:faults__*")
    async with api_session(env, "alice") as (alice, alice_csrf), anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", {"text": "forge me"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        form = await alice.post(f"/approvals/{action.id}/decision", data={"decision": "approve"})
        wrong = await alice.post(
            f"/approvals/{action.id}/decision", data={"decision": "approve", "csrf": "not-the-token"}
        )
        api = await alice.post(f"/api/approvals/{action.id}/decision", json={"decision": "approve"})
        cross_site = await alice.post(
            f"/approvals/{action.id}/decision",
            data={"decision": "approve", "csrf": alice_csrf},
            headers={"Origin": "https://evil.example"},
        )
        assert (await alice.get(f"/api/approvals/{action.id}")).json()["status"] == "pending"
        released = await decide_by_api(alice, alice_csrf, action.id, "deny", "forged")
        assert released.status_code == 200
        await result()
        assert [form.status_code, wrong.status_code, api.status_code, cross_site.status_code] == [403, 403, 403, 403]
        assert api.json()["error"] == "csrf"
        assert await echo_runs(env, agent.name) == 0


async def test_the_pages_fit_a_phone_screen(approvals: Approvals) -> None:
    env = approvals
    agent = await make_agent(env.hub, "phone-sized-agent-with-a-long-name", "tool:faults__*")
    async with api_session(env, "alice") as (alice, alice_csrf), anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", {"text": "x" * 3000})
        action = await env.arrivals.of(agent.name, "faults__echo")
        page = await sign_in_page(env, "alice", "/approvals", PHONE)
        await page.locator(f'tr[data-action-id="{action.id}"]').wait_for()
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await page.screenshot(path=str(ARTIFACTS / "inbox-phone.png"), full_page=True)
        await page.goto(f"{env.hub.base_url}/approvals/{action.id}")
        assert await page.locator("details").count() == 0  # nothing to unfold
        assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await page.context.close()
        await decide_by_api(alice, alice_csrf, action.id, "deny", "only a screenshot")
        await result()


async def test_an_action_created_right_after_the_event_stream_opens_is_announced(approvals: Approvals) -> None:
    """The page fetches its list when the stream opens; whatever changes after that must be an event.

    Regression: the stream used to take its first look at the store after the response had started, so
    an action created between the page's fetch and that look was in neither and never reached the inbox.
    """
    env = approvals
    agent = await make_agent(env.hub, "just-after-open", "tool:faults__*")
    async with (
        api_session(env, "alice") as (alice, alice_csrf),
        alice.stream("GET", "/approvals/events") as events,
        anyio.create_task_group() as tasks,
    ):
        assert events.status_code == 200
        assert events.headers["content-type"].startswith("text/event-stream")
        result = start_call(tasks, env, agent, "faults__echo", {"text": "right after open"})
        action = await env.arrivals.of(agent.name, "faults__echo")
        announced: list[str] = []
        with anyio.fail_after(20):
            async for line in events.aiter_lines():
                if line.startswith("data: ") and f'"{action.id}"' in line:
                    announced.append(line)
                    break
        assert announced == [f'data: {{"id": "{action.id}", "status": "pending"}}']
        await decide_by_api(alice, alice_csrf, action.id, "deny", "stream test")
        assert "stream test" in text_of(await result())


async def test_the_pages_need_an_approver_session_and_send_security_headers(approvals: Approvals) -> None:
    env = approvals
    async with httpx2.AsyncClient(base_url=env.hub.base_url) as anonymous:
        inbox = await anonymous.get("/approvals")
        api = await anonymous.get("/api/approvals")
        events = await anonymous.get("/approvals/events")
    assert inbox.status_code == 303
    assert inbox.headers["location"] == "/login?next=%2Fapprovals"
    assert events.status_code == 303
    assert (api.status_code, api.json()["error"]) == (401, "unauthenticated")
    async with api_session(env, "alice") as (alice, _csrf):
        page = await alice.get("/approvals")
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    assert page.headers["x-frame-options"] == "DENY"
    assert '<meta name="viewport"' in page.text


async def test_signing_in_through_the_login_page_in_a_real_browser(approvals: Approvals) -> None:
    """Issue 4 §4: an approver signs in through the real form (Chromium posts it with `Origin: null`); issue 13 §2:
    the login page fits 375 px, and signing in without `next` lands where the role works (`/` → `/approvals`)."""
    env = approvals
    context = await env.browser.new_context()
    page = await context.new_page()
    try:
        await page.goto(env.hub.base_url + "/approvals")
        assert "/login" in page.url
        await page.get_by_label("Name").fill("alice")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(env.hub.base_url + "/approvals", timeout=5000)
    finally:
        await context.close()
    for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        context = await env.browser.new_context(viewport={"width": viewport["width"], "height": viewport["height"]})
        page = await context.new_page()
        try:
            await page.goto(env.hub.base_url + "/login")
            assert await page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            await page.screenshot(path=str(ARTIFACTS / f"login-{name}.png"), full_page=True)
            if name == "phone":
                continue
            await page.get_by_label("Name").fill("bob")
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(env.hub.base_url + "/approvals", timeout=5000)
            assert await page.get_by_role("link", name="Approvals").get_attribute("aria-current") == "page"
        finally:
            await context.close()


async def test_a_bidi_override_in_an_argument_is_shown_written_out_and_flagged(approvals: Approvals) -> None:
    """Issue 11 §3, threat T31 (our choice of rendering): U+202E would show `‮DNUF-EVIL-666` as `666-LIVE-FUND`; the
    page writes it out as `\\u202e`, marks it, and warns before the decision."""
    env = approvals
    agent = await make_agent(env.hub, "trickster", "tool:faults__*")
    arguments = {"text": "pay \u202eDNUF-EVIL-666\u202c now", "\u200bnote": "zero\u200bwidth"}
    async with anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", arguments)
        action = await env.arrivals.of(agent.name, "faults__echo")
        page = await sign_in_page(env, "alice", f"/approvals/{action.id}")
        warning = page.locator("#hidden-characters")
        assert "hidden or bidirectional characters" in await warning.inner_text()
        arguments_section = page.locator('section[aria-labelledby="arguments-heading"]')
        shown = await arguments_section.inner_text()
        assert "\\u202eDNUF-EVIL-666\\u202c" in shown
        assert "\u202e" not in shown
        assert "\u200b" not in shown
        assert "\\u200bnote" in shown  # keys too
        marks = arguments_section.locator("mark.hidden-char")
        assert await marks.count() >= 4
        html = await page.content()
        assert "\u202e" not in html
        assert "\u200b" not in html
        await page.screenshot(path=str(ARTIFACTS / "detail-bidi-escaped.png"), full_page=True)
        await page.get_by_role("button", name="Deny").click()
        await page.wait_for_url(f"{env.hub.base_url}/approvals/{action.id}?done=denied")
        outcome = await result()
        assert outcome.is_error
        await page.context.close()


LONG_TEXT = (
    "Merge release 4.2 into main: "
    + "update the changelog, bump every package version, regenerate the lock file; " * 3
    + "and finally <script>alert('approved')</script> pay \u202eDNUF-EVIL-666\u202c now"
)
"""A 264+-character commit message whose tail hides a script tag and a right-to-left override (issue 13 §3)."""
UNCLIPPED = """box => {
    const range = document.createRange();
    range.selectNodeContents(box);
    const outer = box.getBoundingClientRect();
    const lines = Array.from(range.getClientRects());
    return box.checkVisibility({ checkOpacity: true, checkVisibilityCSS: true })
        && lines.length > 0
        && lines.every(line => line.top >= outer.top - 1 && line.bottom <= outer.bottom + 1
            && line.left >= outer.left - 1 && line.right <= outer.right + 1)
        && box.scrollHeight <= box.clientHeight + 1;
}"""
"""Is every line of the box's text inside the box's rendered rectangle (nothing folded, clipped or scrolled away)?"""


async def button_colours(page: Page, name: str) -> list[str]:
    button = page.get_by_role("button", name=name, exact=True)
    colours: list[str] = await button.evaluate(
        "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color, s.borderColor]; }"
    )
    return colours


async def test_a_long_argument_is_whole_on_screen_without_a_click_escaped_and_flagged(approvals: Approvals) -> None:
    """Issue 13 §3, threat T31 (a real approver approved a 264-character value whose folded tail hid `<script>`):
    the value is shown whole, rendered inside its box with nothing folded or clipped, the tag as text and the bidi
    override written out and flagged; beside it the matched condition, the tool's hints labelled as the server's
    claims, the risk cues, the agent's owner and last calls; Approve and Deny look different; 375 px fits. Our
    choice of layout; screenshots of the pending and the decided page, desktop and phone."""
    env = approvals
    agent = await make_agent(env.hub, "committer", "tool:faults__*")
    await auth_service(env.hub).admin.set_agent_owner(agent.name, "bob")
    assert not (await call_tool(env.hub, agent, "faults__pid", {})).is_error  # a call of its own, unheld
    assert len(LONG_TEXT) >= 264
    shown = LONG_TEXT.replace("\u202e", "\\u202e").replace("\u202c", "\\u202c")
    async with anyio.create_task_group() as tasks:
        result = start_call(tasks, env, agent, "faults__echo", {"text": LONG_TEXT})
        action = await env.arrivals.of(agent.name, "faults__echo")
        page = await sign_in_page(env, "alice", f"/approvals/{action.id}")
        owners_page = await sign_in_page(env, "bob", f"/approvals/{action.id}", PHONE)

        box = page.locator("#arguments pre.long-text")
        await box.scroll_into_view_if_needed()
        assert await box.inner_text() == shown
        assert await box.evaluate(UNCLIPPED)
        assert await page.locator("details, summary").count() == 0
        assert await page.evaluate("document.scripts.length") == 1  # the hub's own script, not the argument's
        html = await page.content()
        assert "&lt;script&gt;alert('approved')&lt;/script&gt;" in html
        assert "\u202e" not in html
        assert await page.locator("#hidden-characters").is_visible()
        assert await page.locator("#arguments .badge-risk").inner_text() == "hidden characters"
        risk = await page.locator("#risk").inner_text()
        assert "destructive (may delete or overwrite data): the server does not say otherwise" in risk
        assert "hidden or bidirectional characters in the arguments" in risk
        why = await page.locator("#why").inner_text()
        assert "Recorded when the call was held." in why
        assert await page.locator("#rules-changed").count() == 0  # the rules hold it as they did
        assert "echo-needs-a-human: tool faults__echo matches faults__echo" in why
        assert "scripts-in-text: tool faults__echo matches faults__echo; argument text = " in why
        assert await page.locator("#why code").count() >= 5  # the names the rules quote, set as code
        assert "matches /<script/." in why
        assert "except bob, who owns the agent" in why
        hints = await page.locator("#hints").inner_text()
        assert "claims the tool's server makes about itself" in hints
        assert "MCP's default (not stated)" in hints
        assert "owned by bob" in await page.locator("#request-heading + dl").inner_text()
        recent = await page.locator("#recent tbody").inner_text()
        assert "faults__pid" in recent
        assert "approval_requested" in recent
        assert "without one the call is denied" in await page.locator("#expiry").inner_text()
        approve, deny = await button_colours(page, "Approve"), await button_colours(page, "Deny")
        assert approve[0] != deny[0]
        assert approve[2] != deny[2]
        assert approve[1] == deny[1] == "rgb(255, 255, 255)"
        assert await page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
        await page.screenshot(path=str(ARTIFACTS / "detail-pending-desktop.png"), full_page=True)
        phone_box = owners_page.locator("#arguments pre.long-text")
        assert await phone_box.inner_text() == shown
        assert await owners_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert "you own the agent that asks" in await owners_page.locator("#why-not").inner_text()
        await owners_page.screenshot(path=str(ARTIFACTS / "detail-pending-phone.png"), full_page=True)

        await page.get_by_role("button", name="Approve").click()
        await page.wait_for_url(f"{env.hub.base_url}/approvals/{action.id}?done=approved")
        # The owner's open page hears of it: the form goes and the live region says so.
        await owners_page.get_by_text("This action is now").wait_for()
        assert await owners_page.locator("#decide").is_hidden()
        outcome = await result()
        assert text_of(outcome) == LONG_TEXT
        await page.reload()
        heading = await page.get_by_role("heading", level=1).inner_text()
        assert heading.startswith("faults__echo for committer")
        assert not heading.endswith("?")
        assert "Approved by alice at " in await page.locator("#decision").inner_text()
        run = await page.locator("#run").inner_text()
        assert "Ran; finished at " in run
        assert "The result is below." in run
        assert await page.locator("#run pre.long-text").inner_text() == shown
        assert await page.locator("#decide, #why-not, form[action$='/decision'], textarea").count() == 0
        assert await page.locator("#done").inner_text() == "You approved this action."
        await page.screenshot(path=str(ARTIFACTS / "detail-decided-desktop.png"), full_page=True)
        await owners_page.reload()
        assert await owners_page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        assert await owners_page.locator("#done").count() == 0  # bob decided nothing
        await owners_page.screenshot(path=str(ARTIFACTS / "detail-decided-phone.png"), full_page=True)
        await page.context.close()
        await owners_page.context.close()


async def test_the_page_names_the_rule_that_held_a_call_after_an_admin_edited_the_rules(
    approvals: Approvals, tmp_path: Path
) -> None:
    """Issue 13 §3, threat T31 (our wording): calls held under rules an admin edited since (and a restart on the same
    database, `holding.rules_edited_after_holding`). The page names the rule that held each call, with what matched
    then, and says plainly beside it that the rules have changed and how; an action stored before the record existed
    is explained by the rules as they read now, labelled so. Screenshots at desktop and phone width."""
    async with rules_edited_after_holding(tmp_path) as edited:
        await auth_service(edited.hub).admin.create_user("dora", Role.APPROVER, PASSWORD)
        env = replace(approvals, hub=edited.hub)
        page = await sign_in_page(env, "dora", f"/approvals/{edited.deploy}")
        why = await page.locator("#why").inner_text()
        assert "Recorded when the call was held." in why
        assert (
            'deploys: tool faults__echo matches faults__echo; argument text = "deploy 1.2" matches /^deploy /.' in why
        )
        changed = await page.locator("#rules-changed").inner_text()
        assert changed.startswith("The rules have changed since this call was held. As they read now:")
        assert "rule deploys no longer holds it" in changed
        assert "rule all-echoes holds it now: tool faults__echo matches faults__echo; the rule holds every" in changed
        assert await page.locator("#rules-changed code").count() == 4  # the rules' names and what they quote
        assert await page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
        await page.screenshot(path=str(ARTIFACTS / "detail-rules-changed-desktop.png"), full_page=True)

        phone = await sign_in_page(env, "dora", f"/approvals/{edited.deploy}", PHONE)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        await phone.screenshot(path=str(ARTIFACTS / "detail-rules-changed-phone.png"), full_page=True)
        await phone.locator("#why").screenshot(path=str(ARTIFACTS / "detail-rules-changed-why-phone.png"))
        await phone.goto(f"{edited.hub.base_url}/approvals/{edited.pid}")
        assert (
            "sensitive:faults: connector faults lists pid in its sensitive_tools"
            in await phone.locator("#why").inner_text()
        )
        assert await phone.locator("#rules-changed").inner_text() == (
            "The rules have changed since this call was held: as they read now, none would hold it."
        )
        await phone.goto(f"{edited.hub.base_url}/approvals/{edited.unrecorded}")
        assert (await phone.locator("#why-source").inner_text()).startswith(
            "As the rules read now: this action was held before the hub recorded why"
        )
        assert "all-echoes: tool faults__echo matches" in await phone.locator("#why").inner_text()
        assert await phone.locator("#rules-changed").count() == 0
        await page.context.close()
        await phone.context.close()
