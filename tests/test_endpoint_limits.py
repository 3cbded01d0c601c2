"""Limits of the OAuth endpoints and the sign-in page (issue 10 §1; threats T05, T11, T28).

A real hub with auth on and tight endpoint limits, in this process and in Redis. Registrations are limited per
source address (500 in 12 s were all accepted before), token requests per client as well, and failed sign-ins
slow down: past the failures allowed for one name, every attempt waits for the window's end, the right password
included, while another name still signs in.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import httpx2
import pytest

from mcp_hub.config.settings import EndpointLimits
from mcp_hub.domain import AuditOutcome, Role
from mcp_hub.limits.backends import MemoryLimits
from mcp_hub.limits.endpoints import SignInThrottle
from tests.authz.conftest import auth_service, make_agent
from tests.conftest import RunningHub, running_hub, unique, write_config
from tests.test_limits import REDIS_URL, limits_toml, require_redis
from tests.web.browser import sign_in

pytestmark = pytest.mark.anyio

PASSWORD = "a long enough password 123"
ENDPOINTS = """
[limits.endpoints]
register_per_address = { rate = 0.01, burst = 3 }
token_per_address = { rate = 100.0, burst = 100 }
token_per_client = { rate = 0.01, burst = 2 }
failed_sign_ins_per_name = 3
failed_sign_ins_per_address = 50
failed_sign_in_window_seconds = 600
"""


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def hub(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncGenerator[RunningHub]:
    redis_url = ""
    if request.param == "redis":
        await require_redis()
        redis_url = REDIS_URL
    config = write_config(tmp_path, {}, limits_toml(redis_url, ENDPOINTS), auth=True)
    async with running_hub(config) as running:
        yield running


async def test_registrations_are_limited_per_address_with_retry_after(hub: RunningHub) -> None:
    metadata = {"redirect_uris": ["http://127.0.0.1:33418/callback"], "token_endpoint_auth_method": "none"}
    async with httpx2.AsyncClient() as http:
        answers = [await http.post(f"{hub.base_url}/oauth/register", json=metadata) for _ in range(4)]

    assert [answer.status_code for answer in answers] == [201, 201, 201, 429]
    refused = answers[-1]
    assert int(refused.headers["retry-after"]) >= 60
    assert refused.json()["error"] == "temporarily_unavailable"
    assert await refusals(hub, "/oauth/register") == ["address:127.0.0.1"]


async def test_token_requests_are_limited_per_client(hub: RunningHub) -> None:
    """Two tokens per client, then 429; another client of the same address is unaffected."""
    first = await make_agent(hub, unique("eager"), "tool:*")
    second = await make_agent(hub, unique("calm"), "tool:*")
    form = {"grant_type": "client_credentials", "resource": hub.url}
    async with httpx2.AsyncClient() as http:
        eager = [
            await http.post(f"{hub.base_url}/oauth/token", data=form, auth=(first.client_id, first.client_secret))
            for _ in range(3)
        ]
        in_the_body = await http.post(
            f"{hub.base_url}/oauth/token",
            data={**form, "client_id": first.client_id, "client_secret": first.client_secret},
        )
        calm = await http.post(f"{hub.base_url}/oauth/token", data=form, auth=(second.client_id, second.client_secret))

    assert [answer.status_code for answer in eager] == [200, 200, 429]
    assert "retry-after" in eager[-1].headers
    assert in_the_body.status_code == 429  # the same client, named in the form instead of Basic
    assert calm.status_code == 200


async def test_failed_sign_ins_slow_down_for_that_name_only(hub: RunningHub) -> None:
    victim, other = unique("victim"), unique("other")
    for name in (victim, other):
        await auth_service(hub).admin.create_user(name, Role.APPROVER, PASSWORD)
    async with httpx2.AsyncClient() as browser:
        wrong = [await sign_in(browser, hub.base_url, victim, "not the password") for _ in range(3)]
        right_but_late = await sign_in(browser, hub.base_url, victim, PASSWORD)
    async with httpx2.AsyncClient() as browser:
        other_signs_in = await sign_in(browser, hub.base_url, other, PASSWORD)

    assert [answer.status_code for answer in wrong] == [400, 400, 400]
    assert right_but_late.status_code == 429
    assert "Too many sign-in attempts" in right_but_late.text
    assert int(right_but_late.headers["retry-after"]) > 0
    assert "set-cookie" not in right_but_late.headers
    assert other_signs_in.status_code == 303
    assert await refusals(hub, "/login") == ["address:127.0.0.1"]


async def refusals(hub: RunningHub, what: str) -> list[str]:
    """Issue 10 §8: who the audit trail names for each refusal of `what`."""
    await hub.hub.audit.flush()
    events = await hub.hub.stores.audit.recent_audit(limit=100)
    return [
        event.client for event in events if event.public_name == what and event.outcome is AuditOutcome.RATE_LIMITED
    ]


async def test_a_window_boundary_does_not_wipe_a_names_failed_sign_ins() -> None:
    """T28, our choice: failures are counted in fixed windows, and the window before is read too: three failures
    just before a boundary still make the name wait just after it (it used to start afresh: a CI run that crossed
    a ten-minute boundary between the failures and the right password saw the sign-in go through)."""
    now = [600.0 * 1000 - 1]  # one second before a window's end
    backend = MemoryLimits(clock=lambda: now[0])
    throttle = SignInThrottle(
        backend, EndpointLimits(failed_sign_ins_per_name=3, failed_sign_in_window_seconds=600), clock=lambda: now[0]
    )
    for _ in range(3):
        assert await throttle.wait_seconds("victim", "192.0.2.1") == 0
        await throttle.failed("victim", "192.0.2.1")
    now[0] += 2  # the next window
    assert await throttle.wait_seconds("victim", "192.0.2.1") == pytest.approx(599)
    assert await throttle.wait_seconds("someone-else", "192.0.2.2") == 0
    now[0] += 599  # the end of that window: the failures are two windows old
    assert await throttle.wait_seconds("victim", "192.0.2.1") == 0
