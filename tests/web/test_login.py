"""Sign-in and sign-out on the hub's pages: credentials, sessions, redirects, headers (issue 3; threat T06)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import httpx2
import pytest

from mcp_hub.credentials import sha256_hex
from mcp_hub.domain import Role
from mcp_hub.runtime import Authorization
from tests.conftest import RunningHub, running_hub, unique, write_config
from tests.web.browser import hidden_field, sign_in

pytestmark = pytest.mark.anyio

PASSWORD = "a long enough password"


def service_of(hub: RunningHub) -> Authorization:
    assert hub.hub.auth is not None
    return hub.hub.auth


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    """A hub with auth on and no connectors, and a user `alice`, shared by the module's tests (a test that
    changes a user makes one of its own)."""
    async with running_hub(write_config(tmp_path_factory.mktemp("login-hub"), {}, auth=True)) as running:
        await service_of(running).admin.create_user("alice", Role.APPROVER, PASSWORD)
        yield running


def assert_page_headers(response: httpx2.Response) -> None:
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self'" in policy
    assert "base-uri 'none'" in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_the_login_page_is_an_accessible_form_with_the_security_headers(hub: RunningHub) -> None:
    """Chosen by us (OWASP secure headers; WCAG labels): labelled fields, phone-width viewport, no framing."""
    async with httpx2.AsyncClient() as browser:
        page = await browser.get(f"{hub.base_url}/login")

    assert page.status_code == 200
    assert '<html lang="en">' in page.text
    assert 'name="viewport" content="width=device-width, initial-scale=1"' in page.text
    assert '<label for="name">' in page.text
    assert '<label for="password">' in page.text
    assert 'autocomplete="current-password"' in page.text
    assert "set-cookie" not in page.headers
    assert_page_headers(page)


async def test_the_right_password_starts_a_session_with_a_hardened_cookie(hub: RunningHub) -> None:
    """OWASP session management: HttpOnly, SameSite=Lax, Path=/, no Secure (and no __Host-) over http."""
    async with httpx2.AsyncClient() as browser:
        response = await sign_in(browser, hub.base_url, "alice", PASSWORD, "/oauth/authorize?client_id=x")
        page = await browser.get(f"{hub.base_url}/login")

    assert response.status_code == 303
    assert response.headers["location"] == "/oauth/authorize?client_id=x"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("mcp_hub_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie
    assert_page_headers(response)
    assert "signed in to mcp-hub as <strong>alice</strong>" in page.text


async def test_the_session_id_is_stored_only_as_its_digest(hub: RunningHub) -> None:
    """Chosen by us: a copy of the database holds no usable session id."""
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, "alice", PASSWORD)
        session_id = browser.cookies["mcp_hub_session"]
    store = hub.hub.stores.web_sessions

    assert await store.web_session(session_id) is None
    assert await store.web_session(sha256_hex(session_id)) is not None


@pytest.mark.parametrize(
    ("name", "password"),
    [("alice", "not the password"), ("nobody", PASSWORD), ("", ""), ("alice", "")],
    ids=["wrong-password", "unknown-user", "empty", "empty-password"],
)
async def test_wrong_credentials_get_one_generic_answer_and_no_session(
    hub: RunningHub, name: str, password: str
) -> None:
    """OWASP authentication: the same status and text whether the name or the password is wrong."""
    async with httpx2.AsyncClient() as browser:
        response = await sign_in(browser, hub.base_url, name, password)

    assert response.status_code == 400
    assert "Wrong name or password." in response.text
    assert 'role="alert"' in response.text
    assert "set-cookie" not in response.headers
    assert_page_headers(response)


async def test_a_disabled_user_cannot_sign_in_and_loses_an_open_session(hub: RunningHub) -> None:
    """Issue 3: disabled users are refused, with the same generic answer; their sessions stop at once."""
    bob = unique("bob")
    await service_of(hub).admin.create_user(bob, Role.APPROVER, PASSWORD)
    async with httpx2.AsyncClient() as browser, httpx2.AsyncClient() as second:
        signed_in = await sign_in(browser, hub.base_url, bob, PASSWORD)
        assert signed_in.status_code == 303
        await hub.hub.stores.identities.set_user_enabled(bob, False)
        refused = await sign_in(second, hub.base_url, bob, PASSWORD)
        open_session = await browser.get(f"{hub.base_url}/login")

    assert refused.status_code == 400
    assert "Wrong name or password." in refused.text
    assert "set-cookie" not in refused.headers
    assert "Sign in to mcp-hub" in open_session.text


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example/path",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/ok\nhttps://evil.example",
        "evil.example",
    ],
)
async def test_next_is_never_an_open_redirect(hub: RunningHub, target: str) -> None:
    """Chosen by us (RFC 9700 §4.11, open redirectors): after sign-in the browser stays on the hub."""
    async with httpx2.AsyncClient() as browser:
        page = await browser.get(f"{hub.base_url}/login", params={"next": target})
        response = await browser.post(
            f"{hub.base_url}/login", data={"name": "alice", "password": PASSWORD, "next": target}
        )

    assert hidden_field(page.text, "next") == "/"
    assert response.status_code == 303
    assert response.headers["location"] == "/"


async def test_a_signed_in_user_is_sent_straight_on(hub: RunningHub) -> None:
    """Chosen by us: the login page with a same-origin `next` does not ask twice."""
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, "alice", PASSWORD)
        response = await browser.get(f"{hub.base_url}/login", params={"next": "/oauth/authorize?x=1"})
        foreign = await browser.get(f"{hub.base_url}/login", params={"next": "https://evil.example"})

    assert response.status_code == 303
    assert response.headers["location"] == "/oauth/authorize?x=1"
    assert foreign.status_code == 200


async def test_a_login_form_posted_from_another_site_is_refused(hub: RunningHub) -> None:
    """T06 (login CSRF): a browser's `Origin` or `Sec-Fetch-Site` naming another site is refused."""
    form = {"name": "alice", "password": PASSWORD, "next": "/login"}
    async with httpx2.AsyncClient() as browser:
        by_origin = await browser.post(f"{hub.base_url}/login", data=form, headers={"Origin": "https://evil.example"})
        by_fetch = await browser.post(f"{hub.base_url}/login", data=form, headers={"Sec-Fetch-Site": "cross-site"})
        same = await browser.post(f"{hub.base_url}/login", data=form, headers={"Origin": hub.base_url})

    assert by_origin.status_code == 403
    assert by_fetch.status_code == 403
    assert "set-cookie" not in by_origin.headers
    assert same.status_code == 303


async def test_sign_out_needs_the_csrf_token_and_ends_the_session(hub: RunningHub) -> None:
    """T06 (CSRF): only the hub's own form signs the user out; afterwards the old cookie is worthless."""
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, "alice", PASSWORD)
        old_cookie = browser.cookies["mcp_hub_session"]
        signed_in_page = await browser.get(f"{hub.base_url}/login")
        forged = await browser.post(f"{hub.base_url}/logout", data={"csrf": "guess"})
        still_in = await browser.get(f"{hub.base_url}/login")
        genuine = await browser.post(f"{hub.base_url}/logout", data={"csrf": hidden_field(signed_in_page.text, "csrf")})
    async with httpx2.AsyncClient(cookies={"mcp_hub_session": old_cookie}) as replay:
        after = await replay.get(f"{hub.base_url}/login")

    assert forged.status_code == 403
    assert "signed in to mcp-hub" in still_in.text
    assert genuine.status_code == 303
    assert genuine.headers["location"] == "/login"
    assert 'mcp_hub_session=""' in genuine.headers["set-cookie"] or "Max-Age=0" in genuine.headers["set-cookie"]
    assert "Sign in to mcp-hub" in after.text


async def test_a_new_sign_in_replaces_the_session_id(hub: RunningHub) -> None:
    """OWASP session management (fixation): the id changes at sign-in, and the previous one ends."""
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, "alice", PASSWORD)
        first = browser.cookies["mcp_hub_session"]
        again = await browser.post(f"{hub.base_url}/login", data={"name": "alice", "password": PASSWORD})
        assert again.status_code == 303
        second = browser.cookies["mcp_hub_session"]
    async with httpx2.AsyncClient(cookies={"mcp_hub_session": first}) as replay:
        after = await replay.get(f"{hub.base_url}/login")

    assert first != second
    assert "Sign in to mcp-hub" in after.text


async def test_names_are_escaped_in_the_page(hub: RunningHub) -> None:
    """Chosen by us (XSS): what the user typed comes back escaped (Jinja's autoescape writes `"` as `&#34;`)."""
    async with httpx2.AsyncClient() as browser:
        response = await sign_in(browser, hub.base_url, '"><script>alert(1)</script>', "x")

    assert "<script>" not in response.text
    assert "&#34;&gt;&lt;script&gt;" in response.text


async def test_over_https_the_cookie_is_secure_and_host_prefixed(tmp_path: Path) -> None:
    """RFC 6265bis §4.1.3.2: with an https public URL the cookie is `__Host-` and `Secure`."""
    config = write_config(tmp_path, {}, '[hub]\npublic_base_url = "https://hub.example"\n', auth=True)
    async with running_hub(config) as hub, httpx2.AsyncClient() as browser:
        await service_of(hub).admin.create_user("alice", Role.APPROVER, PASSWORD)
        response = await browser.post(
            f"{hub.base_url}/login", data={"name": "alice", "password": PASSWORD, "next": "/login"}
        )

    cookie = response.headers["set-cookie"]
    assert response.status_code == 303
    assert cookie.startswith("__Host-mcp_hub_session=")
    assert "Secure" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie


async def test_signing_in_without_next_lands_on_the_start_page_which_sends_each_role_on(hub: RunningHub) -> None:
    """Issue 13 §2, our choice: `/login` without `next` is no dead end; `/` sends an approver to the approvals, an
    admin to the console (its pages are the console's), and a browser without a session to the login page."""
    await service_of(hub).admin.create_user("ada", Role.ADMIN, PASSWORD)
    async with httpx2.AsyncClient() as anonymous, httpx2.AsyncClient() as approver, httpx2.AsyncClient() as admin:
        signed_out = await anonymous.get(f"{hub.base_url}/")
        landed = await sign_in(approver, hub.base_url, "alice", PASSWORD)
        approver_home = await approver.get(f"{hub.base_url}/")
        await sign_in(admin, hub.base_url, "ada", PASSWORD)
        admin_home = await admin.get(f"{hub.base_url}/")

    assert (signed_out.status_code, signed_out.headers["location"]) == (303, "/login")
    assert (landed.status_code, landed.headers["location"]) == (303, "/")
    assert (approver_home.status_code, approver_home.headers["location"]) == (303, "/approvals")
    assert (admin_home.status_code, admin_home.headers["location"]) == (303, "/admin")
    assert_page_headers(approver_home)


async def test_every_page_has_the_nav_of_the_viewers_role(hub: RunningHub) -> None:
    """Issue 13 §2, our choice: the hub's name links `/`; an approver's nav has Approvals, not Console, and a
    sign-out button; an admin's has both; a signed-out page offers Sign in."""
    await service_of(hub).admin.create_user("grace", Role.ADMIN, PASSWORD)
    async with httpx2.AsyncClient() as anonymous, httpx2.AsyncClient() as approver, httpx2.AsyncClient() as admin:
        login_page = await anonymous.get(f"{hub.base_url}/login")
        await sign_in(approver, hub.base_url, "alice", PASSWORD)
        approver_pages = [await approver.get(f"{hub.base_url}{path}") for path in ("/login", "/approvals")]
        await sign_in(admin, hub.base_url, "grace", PASSWORD)
        admin_page = await admin.get(f"{hub.base_url}/approvals/history")

    assert '<a class="brand" href="/">mcp-hub</a>' in login_page.text
    assert '<nav class="site-nav" aria-label="Main">' in login_page.text
    assert ">Sign in</a>" in login_page.text
    for page in approver_pages:
        assert page.status_code == 200
        assert '<a class="brand" href="/">mcp-hub</a>' in page.text
        assert '<a href="/approvals"' in page.text
        assert 'href="/admin"' not in page.text
        assert "Signed in as <strong>alice</strong>" in page.text
        assert '<button type="submit" class="button">Sign out</button>' in page.text
    assert '<a href="/approvals" aria-current="page">Approvals</a>' in approver_pages[1].text
    assert '<a href="/admin">Console</a>' in admin_page.text
