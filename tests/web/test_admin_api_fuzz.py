"""Schemathesis against the admin API's own OpenAPI document, in-process (threat T26: parser abuse; issue 13).

The hub runs in a blocking portal's event loop (the same `in_process_hub` as the API tests); hypothesis draws
cases from each operation's schema in this thread and sends them through httpx2's ASGI transport in the hub's loop
with an admin token. Every answer must not be a 5xx, must have a status the document declares for the operation,
the declared content type, and a body that conforms to the declared schema. Examples are bounded per operation
(`EXAMPLES`) so the whole run stays within about 30 s.

Left out on purpose: adding or replacing a connector with generated values (a stdio connector's `command` is a
program the hub runs; the API tests cover those writes with a known fixture server).

Our choice (the checks), over a behaviour mandated by the document itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import schemathesis
import schemathesis.checks
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings

from mcp_hub.domain import Role
from tests.authz.conftest import auth_service
from tests.conftest import InProcessHub, in_process_hub, write_config
from tests.web.test_admin_api import API, PASSWORD, admin_token

Case = schemathesis.Case[Any]
EXAMPLES = 10
FEWER_EXAMPLES = {("POST", API + "/users"): 3}
"""A valid new user costs an Argon2id hash (slow on purpose): a few are enough."""
# Schemathesis's check functions are typed over `Case[Unknown]`: held as Any here (pyright strict).
_CHECKS_MODULE: Any = schemathesis.checks
CHECKS: list[Any] = [
    _CHECKS_MODULE.not_a_server_error,
    _CHECKS_MODULE.status_code_conformance,
    _CHECKS_MODULE.content_type_conformance,
    _CHECKS_MODULE.response_schema_conformance,
]
UNFUZZED = {("POST", API + "/connectors"), ("PUT", API + "/connectors/{id}")}


@dataclass
class Target:
    portal: BlockingPortal
    hub: InProcessHub
    token: str

    def send(self, case: Case) -> httpx2.Response:
        kwargs: dict[str, Any] = case.as_transport_kwargs(base_url=self.hub.base_url)
        headers: dict[str, str] = {**(kwargs.pop("headers", None) or {}), "Authorization": f"Bearer {self.token}"}

        async def send() -> httpx2.Response:
            async with self.hub.client() as client:
                return await client.request(headers=headers, **_httpx_options(kwargs))

        return self.portal.call(send)


def _httpx_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis's `requests`-style keyword arguments as httpx2 takes them."""
    options = {key: value for key, value in kwargs.items() if key in ("method", "url", "params", "json")}
    if "data" in kwargs:
        options["content"] = kwargs["data"]
    return options


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory: Path = tmp_path_factory.mktemp("admin-api-fuzz")
    config = write_config(directory, {}, auth=True)
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(in_process_hub(config)) as hub:
        portal.call(auth_service(hub).admin.create_user, "root", Role.ADMIN, PASSWORD)
        token, _client_id = portal.call(admin_token, hub, "fuzzer")
        yield Target(portal, hub, token)


def operations(target: Target) -> list[Any]:
    document = target.portal.call(_document, target.hub)
    schema: Any = schemathesis.openapi.from_dict(document)
    every: list[Any] = [result.ok() for result in schema.get_all_operations()]
    chosen = [operation for operation in every if (operation.method.upper(), operation.path) not in UNFUZZED]
    assert len(chosen) >= 30
    return chosen


async def _document(hub: InProcessHub) -> dict[str, Any]:
    async with hub.client() as client:
        document: dict[str, Any] = (await client.get(API + "/openapi.json")).json()
    return document


def test_generated_requests_never_get_a_server_error_and_every_answer_matches_the_document(target: Target) -> None:
    """Our choice (threat T26): every operation of the document, fed what its schemas allow and a little more,
    answers as the document says, never with a 5xx."""
    for operation in operations(target):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=FEWER_EXAMPLES.get((operation.method.upper(), operation.path), EXAMPLES),
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
        )
        def answers_as_documented(case: Case) -> None:
            generated: Any = case
            generated.validate_response(target.send(case), checks=CHECKS)

        answers_as_documented()
