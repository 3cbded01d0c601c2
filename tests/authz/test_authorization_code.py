"""The authorization code flow with PKCE, login and consent (issue 3; threats T04, T05, T06).

Everything runs against a real hub on a loopback port: the browser part through the served login and consent
forms, the client part through the token endpoint, and the result through /mcp.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.authz.conftest import bearer
from tests.authz.flow import (
    Pkce,
    auth_service,
    authorize_url,
    code_flow_hub,
    code_for,
    exchange,
    make_app,
    mcp_status,
    refresh,
    sdk_provider,
    tokens_for,
)
from tests.conftest import RunningHub
from tests.web.browser import authorize_as, decide, hidden_field, open_consent, query_of, sign_in

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
async def hub(tmp_path_factory: pytest.TempPathFactory) -> AsyncGenerator[RunningHub]:
    async with code_flow_hub(tmp_path_factory.mktemp("code-flow")) as running:
        yield running


@pytest.mark.parametrize("era", ["legacy", "2026-07-28"])
async def test_the_sdk_client_signs_in_through_login_and_consent_and_calls_the_users_tools(
    hub: RunningHub, era: str
) -> None:
    """MCP authorization spec (OAuth 2.1 code + PKCE, RFC 8707, RFC 9207): the SDK's own client completes the
    flow against the hub's real pages and then sees exactly the user's tools."""
    app = await make_app(hub)
    provider, storage = sdk_provider(hub, app)

    async with (
        httpx2.AsyncClient(auth=provider, timeout=30) as http,
        Client(streamable_http_client(hub.url, http_client=http), mode=era) as client,
    ):
        names = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool("faults__echo", {"text": "through the code flow"})

    assert names == ["faults__echo"]
    assert echoed.is_error is False
    assert storage.tokens is not None
    assert storage.tokens.scope == "tool:faults__echo"
    assert storage.tokens.refresh_token is not None


async def test_the_access_token_is_for_the_user_and_carries_its_refresh_family(hub: RunningHub) -> None:
    """RFC 9068 §2.2 (`sub` is the user the client acts for); `sid` names the refresh family (chosen by us)."""
    app = await make_app(hub)
    tokens = await tokens_for(hub, app)
    claims = await auth_service(hub).tokens.verify(tokens["access_token"])
    user = await hub.hub.stores.identities.user_by_name(app.user)

    assert user is not None
    assert claims.subject == user.id
    assert claims.user_id == user.id
    assert claims.client_id == app.client_id
    assert claims.family_id is not None
    assert tokens["scope"] == "tool:faults__echo"
    assert tokens["refresh_token"].startswith("mcphr_")


async def test_the_redirect_carries_code_state_and_issuer(hub: RunningHub) -> None:
    """RFC 6749 §4.1.2 (code, state unchanged) and RFC 9207 §2 (`iss` = the issuer)."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        answer = await authorize_as(
            browser, hub.base_url, authorize_url(hub, app, Pkce.new(), state="s t&a=te"), app.user, app.password
        )

    assert answer["state"] == "s t&a=te"
    assert answer["iss"] == hub.base_url
    assert answer["code"].startswith("mcphc_")


async def test_a_user_who_is_not_signed_in_is_sent_to_the_login_page_first(hub: RunningHub) -> None:
    """OAuth 2.1 §4.1.1 (the server authenticates the resource owner); the way back is the same request."""
    app = await make_app(hub)
    url = authorize_url(hub, app, Pkce.new())
    async with httpx2.AsyncClient() as browser:
        response = await browser.get(url)

    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/login?")
    assert hub.base_url + query_of(location)["next"] == url


async def test_denying_sends_access_denied_back_and_no_code(hub: RunningHub) -> None:
    """RFC 6749 §4.1.2.1: the user said no."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        answer = await authorize_as(
            browser, hub.base_url, authorize_url(hub, app, Pkce.new(), state="xyz"), app.user, app.password, "deny"
        )

    assert answer["error"] == "access_denied"
    assert answer["state"] == "xyz"
    assert "code" not in answer


async def test_the_consent_shows_only_what_the_user_is_granted(hub: RunningHub) -> None:
    """Chosen by us (issue 3): a token for a user is requested ∩ the user's grants, even if the client asks
    for everything (the hub's own 401 says scope="tool:* prompt:* resource:*")."""
    app = await make_app(hub, grants=("tool:faults__echo", "tool:faults__pid"))
    async with httpx2.AsyncClient() as browser:
        everything = await open_consent(
            browser, hub.base_url, authorize_url(hub, app, Pkce.new(), scope="tool:*"), app.user, app.password
        )
        one = await browser.get(authorize_url(hub, app, Pkce.new(), scope="tool:faults__pid tool:other__x"))
        none = await browser.get(authorize_url(hub, app, Pkce.new(), scope="tool:other__x"))

    assert "<code>tool:faults__echo</code>" in everything.text
    assert "<code>tool:faults__pid</code>" in everything.text
    assert "<code>tool:faults__pid</code>" in one.text
    assert "faults__echo" not in one.text
    assert "other__x" not in one.text
    assert none.status_code == 303
    assert query_of(none.headers["location"])["error"] == "invalid_scope"


async def test_a_token_follows_the_users_grants_not_the_agents(hub: RunningHub) -> None:
    """Issue 3: tokens from this flow are decided by the user's grants; removing one takes effect at /mcp."""
    app = await make_app(hub, grants=("tool:faults__echo", "tool:faults__pid"))
    tokens = await tokens_for(hub, app)
    async with (
        bearer(tokens["access_token"]) as http,
        Client(streamable_http_client(hub.url, http_client=http)) as client,
    ):
        before = sorted(tool.name for tool in (await client.list_tools()).tools)
    await auth_service(hub).admin.remove_grant(f"user:{app.user}", "tool:faults__pid")
    async with (
        bearer(tokens["access_token"]) as http,
        Client(streamable_http_client(hub.url, http_client=http)) as client,
    ):
        after = [tool.name for tool in (await client.list_tools()).tools]

    assert before == ["faults__echo", "faults__pid"]
    assert after == ["faults__echo"]


# --- T04: PKCE downgrade and code replay ----------------------------------------------------------------------


async def test_a_plain_code_challenge_is_rejected(hub: RunningHub) -> None:
    """T04 (OAuth 2.1 §4.1.1, MCP authorization spec: S256 only): `plain` is refused, back to the client."""
    app = await make_app(hub)
    pkce = Pkce.new()
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, app.user, app.password)
        plain = await browser.get(
            authorize_url(hub, app, None, code_challenge=pkce.verifier, code_challenge_method="plain", state="p")
        )
        defaulted = await browser.get(authorize_url(hub, app, pkce, code_challenge_method=None))

    for response in (plain, defaulted):
        assert response.status_code == 303
        answer = query_of(response.headers["location"])
        assert answer["error"] == "invalid_request"
        assert "S256" in answer["error_description"]
        assert "code" not in answer
    assert query_of(plain.headers["location"])["state"] == "p"


async def test_a_missing_code_challenge_is_rejected(hub: RunningHub) -> None:
    """T04 (OAuth 2.1 §4.1.1): every authorization request carries a PKCE challenge."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, app.user, app.password)
        response = await browser.get(authorize_url(hub, app, None))

    assert response.status_code == 303
    answer = query_of(response.headers["location"])
    assert answer["error"] == "invalid_request"
    assert "code_challenge" in answer["error_description"]
    assert "code" not in answer


async def test_a_wrong_code_verifier_is_rejected_and_burns_the_code(hub: RunningHub) -> None:
    """T04 (RFC 7636 §4.6): the verifier must hash to the challenge; a failed attempt uses the code up."""
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    wrong = await exchange(hub, app, code, Pkce.new().verifier)
    then_right = await exchange(hub, app, code, pkce.verifier)

    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert then_right.json()["error"] == "invalid_grant"


async def test_a_replayed_code_is_refused_and_kills_the_tokens_of_the_first_exchange(hub: RunningHub) -> None:
    """T04 (RFC 6749 §4.1.2, OAuth 2.1 §4.1.3): codes are single use; a replay revokes what the code gave."""
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    first = await exchange(hub, app, code, pkce.verifier)
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert await mcp_status(hub, tokens["access_token"]) == 200

    replay = await exchange(hub, app, code, pkce.verifier)
    refreshed = await refresh(hub, app, tokens["refresh_token"])

    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert await mcp_status(hub, tokens["access_token"]) == 401  # decision_cache_seconds = 0
    assert refreshed.json()["error"] == "invalid_grant"


async def test_a_code_exchanged_after_its_user_was_disabled_is_invalid_grant(hub: RunningHub) -> None:
    """RFC 6749 §5.2 (mandated): the grant's resource owner may no longer act, so the code is `invalid_grant`
    (`access_denied` belongs to the authorization endpoint, not the token endpoint); no tokens (T04, T09)."""
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    await auth_service(hub).admin.set_user_enabled(app.user, False)
    refused = await exchange(hub, app, code, pkce.verifier)

    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"
    assert "access_token" not in refused.json()


async def test_a_code_is_bound_to_its_client_and_redirect_uri(hub: RunningHub) -> None:
    """T04 (RFC 6749 §4.1.3): another client, or another redirect_uri, cannot redeem the code."""
    app = await make_app(hub)
    other = await make_app(hub, agent="other-app")
    pkce = Pkce.new()
    first_code = await code_for(hub, app, pkce)
    second_code = await code_for(hub, app, pkce)

    by_other_client = await exchange(hub, other, first_code, pkce.verifier)
    other_redirect = await exchange(hub, app, second_code, pkce.verifier, redirect_uri=app.redirect_uri + "/")

    assert by_other_client.json()["error"] == "invalid_grant"
    assert other_redirect.json()["error"] == "invalid_grant"


async def test_a_token_request_without_a_verifier_is_refused_without_burning_the_code(hub: RunningHub) -> None:
    """RFC 7636 §4.5 (the verifier is required); chosen by us: a malformed request leaves the code usable."""
    app = await make_app(hub)
    pkce = Pkce.new()
    code = await code_for(hub, app, pkce)
    form = {"grant_type": "authorization_code", "client_id": app.client_id, "code": code}
    async with httpx2.AsyncClient() as client:
        missing = await client.post(
            f"{hub.base_url}/oauth/token", data={**form, "redirect_uri": app.redirect_uri, "resource": hub.url}
        )
    ok = await exchange(hub, app, code, pkce.verifier)

    assert missing.status_code == 400
    assert missing.json()["error"] == "invalid_request"
    assert ok.status_code == 200, ok.text


# --- T05: redirect URI tricks ----------------------------------------------------------------------------------

REGISTERED = "https://app.example.com/callback"


@pytest.mark.parametrize(
    "mutated",
    [
        "https://app.example.com/callback/",
        "https://app.example.com:8443/callback",
        "https://app.example.com/callback?extra=1",
        "https://APP.example.com/callback",
        "http://app.example.com/callback",
        "https://app.example.com/Callback",
        "https://app.example.com/callback#fragment",
        "https://app.example.com.evil.example/callback",
        "https://evil.example/callback",
        "https://app.example.com/callback/../callback",
        "https://user@app.example.com/callback",
    ],
)
async def test_a_mutated_redirect_uri_gets_an_error_page_and_no_redirect(hub: RunningHub, mutated: str) -> None:
    """T05 (OAuth 2.1 §4.1.1, RFC 9700 §4.1.3): exact string match; an unregistered URI is never redirected to."""
    app = await make_app(hub, redirect_uri=REGISTERED)
    async with httpx2.AsyncClient() as browser:
        await sign_in(browser, hub.base_url, app.user, app.password)
        response = await browser.get(authorize_url(hub, app, Pkce.new(), redirect_uri=mutated))
        exact = await browser.get(authorize_url(hub, app, Pkce.new()))

    assert response.status_code == 400
    assert "location" not in response.headers
    assert "redirect_uri" in response.text
    assert exact.status_code == 200  # the registered URI itself reaches the consent page


async def test_an_unknown_client_or_missing_redirect_uri_gets_an_error_page(hub: RunningHub) -> None:
    """T05 (RFC 6749 §4.1.2.1): without a trustworthy client and redirect URI, the user sees the error."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        unknown = await browser.get(authorize_url(hub, app, Pkce.new(), client_id="agt_nobody"))
        missing = await browser.get(authorize_url(hub, app, Pkce.new(), redirect_uri=None))

    for response in (unknown, missing):
        assert response.status_code == 400
        assert "location" not in response.headers


# --- T06: consent ----------------------------------------------------------------------------------------------


async def test_the_consent_page_comes_before_any_code_and_names_the_client(hub: RunningHub) -> None:
    """T06 (MCP security best practices, confused deputy): the user sees who asks, for what, and where the
    answer goes, before any code exists; the page cannot be framed."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        consent = await open_consent(browser, hub.base_url, authorize_url(hub, app, Pkce.new()), app.user, app.password)

    assert consent.status_code == 200
    assert "desktop-app" in consent.text
    assert app.client_id in consent.text
    assert "127.0.0.1:8976" in consent.text
    assert "<code>tool:faults__echo</code>" in consent.text
    assert "code=" not in consent.text
    policy = consent.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "form-action 'self' http://127.0.0.1:8976" in policy
    assert consent.headers["x-frame-options"] == "DENY"
    assert consent.headers["referrer-policy"] == "no-referrer"
    assert consent.headers["cache-control"] == "no-store"


async def test_a_consent_id_is_single_use(hub: RunningHub) -> None:
    """T06 (single-use state): the same decision posted twice yields one code and then an error page."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        consent = await open_consent(browser, hub.base_url, authorize_url(hub, app, Pkce.new()), app.user, app.password)
        first = await decide(browser, hub.base_url, consent.text)
        replayed = await decide(browser, hub.base_url, consent.text)
        denied_replay = await decide(browser, hub.base_url, consent.text, "deny")

    assert first.status_code == 303
    assert "code" in query_of(first.headers["location"])
    for response in (replayed, denied_replay):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "already answered" in response.text


@pytest.mark.parametrize("csrf", [None, "", "wrong-token"])
async def test_a_decision_without_the_sessions_csrf_token_is_refused(hub: RunningHub, csrf: str | None) -> None:
    """T06 (CSRF): a decision needs the session's token; a refused one does not use up the consent."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser:
        consent = await open_consent(browser, hub.base_url, authorize_url(hub, app, Pkce.new()), app.user, app.password)
        form = {"consent": hidden_field(consent.text, "consent"), "decision": "approve"}
        if csrf is not None:
            form["csrf"] = csrf
        forged = await browser.post(f"{hub.base_url}/oauth/authorize", data=form)
        genuine = await decide(browser, hub.base_url, consent.text)

    assert forged.status_code == 403
    assert "location" not in forged.headers
    assert genuine.status_code == 303


async def test_a_decision_from_another_origin_or_another_user_is_refused(hub: RunningHub) -> None:
    """T06: a cross-origin post is refused; a consent id works only for the user it was shown to."""
    app = await make_app(hub)
    mallory = await make_app(hub, agent="mallory-app", user="mallory")
    async with httpx2.AsyncClient() as browser, httpx2.AsyncClient() as other_browser:
        consent = await open_consent(browser, hub.base_url, authorize_url(hub, app, Pkce.new()), app.user, app.password)
        cross_site = await browser.post(
            f"{hub.base_url}/oauth/authorize",
            data={
                "consent": hidden_field(consent.text, "consent"),
                "csrf": hidden_field(consent.text, "csrf"),
                "decision": "approve",
            },
            headers={"Origin": "https://evil.example"},
        )
        other = await open_consent(
            other_browser, hub.base_url, authorize_url(hub, mallory, Pkce.new()), mallory.user, mallory.password
        )
        stolen = await other_browser.post(
            f"{hub.base_url}/oauth/authorize",
            data={
                "consent": hidden_field(consent.text, "consent"),
                "csrf": hidden_field(other.text, "csrf"),
                "decision": "approve",
            },
        )
        genuine = await decide(browser, hub.base_url, consent.text)

    assert cross_site.status_code == 403
    assert stolen.status_code == 400
    assert "location" not in stolen.headers
    assert genuine.status_code == 303


async def test_a_decision_without_a_session_is_refused(hub: RunningHub) -> None:
    """T06: the consent form is bound to the signed-in browser."""
    app = await make_app(hub)
    async with httpx2.AsyncClient() as browser, httpx2.AsyncClient() as stranger:
        consent = await open_consent(browser, hub.base_url, authorize_url(hub, app, Pkce.new()), app.user, app.password)
        response = await decide(stranger, hub.base_url, consent.text)

    assert response.status_code == 403
    assert "location" not in response.headers
