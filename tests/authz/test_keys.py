"""Signing-key rotation that never breaks a live token, and a bounded answer to unknown-kid floods (threat T03).

The key ring and the token service take an injected clock, so hours of key life pass in microseconds;
the store is a real `SigningKeyStore` on a migrated SQLite file. RFC 7517 publishes keys; keeping a retired key
until every token it signed has expired, publishing the next key before it signs, and reloading at most
once per refetch interval are our choices (the MCP authorization spec leaves rotation to the server).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx2
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from joserfc.jws import extract_compact
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.authz.keys import RELOAD_SECONDS as KEY_RELOAD_SECONDS
from mcp_hub.authz.keys import KeyRing
from mcp_hub.authz.tokens import TokenService
from mcp_hub.db.engine import create_engine, upgrade
from mcp_hub.db.keys import SigningKeyRecord, SigningKeyStore
from mcp_hub.errors import InvalidTokenError
from tests.cli_process import run_cli
from tests.conftest import fault_connector, running_hub, write_config

pytestmark = pytest.mark.anyio

ISSUER = "https://hub.example"
RESOURCE = "https://hub.example/mcp"
PUBLISH_AHEAD = timedelta(seconds=60)
TOKEN_LIFE = 3600
SKEW = 30
LONGEST_TOKEN_LIFE = timedelta(seconds=TOKEN_LIFE + SKEW)
REFETCH = timedelta(seconds=10)
T0 = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A settable wall clock: what the key ring and the token service read instead of `datetime.now`."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingStore(SigningKeyStore):
    """A real `SigningKeyStore` that counts how often the signing keys are read (the cost of a reload)."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(engine)
        self.key_reads = 0

    async def signing_keys(self) -> list[SigningKeyRecord]:
        self.key_reads += 1
        return await super().signing_keys()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncGenerator[AsyncEngine]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    await upgrade(url)
    engine = create_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


@dataclass
class Replica:
    """The key ring and token service of one hub process."""

    store: CountingStore
    keys: KeyRing
    tokens: TokenService

    def issue(self) -> str:
        token, _ = self.tokens.issue(client_id="agt_test", scopes=["tool:*"], lifetime_seconds=TOKEN_LIFE)
        return token


async def replica(engine: AsyncEngine, clock: Clock) -> Replica:
    store = CountingStore(engine)
    keys = KeyRing(
        store, publish_ahead=PUBLISH_AHEAD, longest_token_life=LONGEST_TOKEN_LIFE, refetch_interval=REFETCH, clock=clock
    )
    await keys.load()
    tokens = TokenService(keys, issuer=ISSUER, resource=RESOURCE, lifetime_seconds=300, skew_seconds=SKEW, clock=clock)
    return Replica(store=store, keys=keys, tokens=tokens)


def kid_of(token: str) -> str:
    found = extract_compact(token.encode()).headers()["kid"]
    assert isinstance(found, str)
    return found


def published_kids(keys: KeyRing) -> list[str]:
    return [str(key["kid"]) for key in keys.jwks()["keys"]]


async def test_a_token_signed_before_rotation_verifies_until_the_old_key_retires(engine: AsyncEngine) -> None:
    """T03, our choice: the replaced key signs until the new one may, and lives until its last token expired."""
    clock = Clock(T0)
    hub = await replica(engine, clock)
    first_kid = hub.keys.signing_key().record.kid
    early = hub.issue()

    clock.advance(5)
    rotated = await hub.keys.rotate()
    clock.advance(PUBLISH_AHEAD.total_seconds() - 1)  # the last second before the new key signs
    last_of_old = hub.issue()
    never_presented = hub.issue()  # signed by the old key too, first shown after it retired
    clock.advance(1)
    first_of_new = hub.issue()

    assert kid_of(early) == kid_of(last_of_old) == kid_of(never_presented) == first_kid
    assert kid_of(first_of_new) == rotated.kid != first_kid
    last_claims = await hub.tokens.verify(last_of_old)

    # Just before the old key retires, everything it signed that has not expired still verifies.
    old_key = hub.keys.verification_key(first_kid)
    assert old_key is not None
    retires_at = old_key.record.retires_at
    assert retires_at is not None
    assert retires_at.timestamp() >= last_claims.expires_at + SKEW
    clock.now = datetime.fromtimestamp(last_claims.expires_at + SKEW - 1, UTC)
    assert (await hub.tokens.verify(last_of_old)).jti == last_claims.jti
    assert (await hub.tokens.verify(first_of_new)).client_id == "agt_test"
    with pytest.raises(InvalidTokenError, match="expired"):
        await hub.tokens.verify(early)

    clock.now = retires_at
    with pytest.raises(InvalidTokenError, match="does not know"):
        await hub.tokens.verify(never_presented)
    with pytest.raises(InvalidTokenError):
        await hub.tokens.verify(last_of_old)


async def test_a_rotated_key_is_published_ahead_and_a_retired_key_vanishes_from_the_jwks(engine: AsyncEngine) -> None:
    """T03, RFC 7517 §5: the JWKS lists the next key before it signs, and drops a key once it retired."""
    clock = Clock(T0)
    hub = await replica(engine, clock)
    first_kid = hub.keys.signing_key().record.kid
    assert published_kids(hub.keys) == [first_kid]

    clock.advance(5)
    rotated = await hub.keys.rotate()
    assert published_kids(hub.keys) == [first_kid, rotated.kid]
    assert hub.keys.signing_key().record.kid == first_kid

    clock.advance(PUBLISH_AHEAD.total_seconds())
    assert hub.keys.signing_key().record.kid == rotated.kid
    assert published_kids(hub.keys) == [first_kid, rotated.kid]

    clock.advance(LONGEST_TOKEN_LIFE.total_seconds())
    assert published_kids(hub.keys) == [rotated.kid]
    assert hub.keys.verification_key(first_kid) is None


async def test_another_replica_learns_a_rotated_key_from_the_first_token_it_signed(engine: AsyncEngine) -> None:
    """T03, our choice: keys live in the database; an unknown kid makes a replica look again (once)."""
    clock = Clock(T0)
    rotating, other = await replica(engine, clock), await replica(engine, clock)
    clock.advance(5)
    rotated = await rotating.keys.rotate()
    clock.advance(PUBLISH_AHEAD.total_seconds())
    token = rotating.issue()
    reads_before = other.store.key_reads

    claims = await other.tokens.verify(token)

    assert kid_of(token) == rotated.kid
    assert claims.client_id == "agt_test"
    assert other.store.key_reads == reads_before + 1
    assert rotated.kid in published_kids(other.keys)


def forged_with_unknown_kid() -> str:
    key = ECKey.generate_key("P-256", private=True)
    now = int(T0.timestamp())
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "x", "client_id": "x", "jti": uuid.uuid4().hex, "iat": now}
    header = {"alg": "ES256", "typ": "at+jwt", "kid": uuid.uuid4().hex}
    return jwt.encode(header, {**claims, "exp": now + 60}, key, algorithms=["ES256"])


async def flood(tokens: TokenService, forged: list[str]) -> int:
    """Present every forged token at once; return how many were refused."""
    refused = 0

    async def present(token: str) -> None:
        nonlocal refused
        try:
            await tokens.verify(token)
        except InvalidTokenError:
            refused += 1

    async with anyio.create_task_group() as tasks:
        for token in forged:
            tasks.start_soon(present, token)
    return refused


async def test_an_unknown_kid_flood_costs_at_most_one_reload_per_refetch_interval(engine: AsyncEngine) -> None:
    """T03, our choice: forged kids cannot turn into one database query per request."""
    clock = Clock(T0)
    hub = await replica(engine, clock)
    forged = [forged_with_unknown_kid() for _ in range(50)]
    loaded = hub.store.key_reads  # the initial load (which also created the first key)

    clock.advance(1)
    assert await flood(hub.tokens, forged) == len(forged)
    assert hub.store.key_reads == loaded  # within the interval after the load: no reload at all

    reloads: list[int] = []
    for _ in range(4):
        clock.advance(REFETCH.total_seconds() / 2)
        assert await flood(hub.tokens, forged) == len(forged)
        reloads.append(hub.store.key_reads - loaded)
    # Each flood is 50 concurrent requests; 6, 11, 16 and 21 s after the load: a reload at 11 and at 21 only.
    assert reloads == [0, 1, 1, 2]


@pytest.fixture
async def hub_config(tmp_path: Path) -> Path:
    return write_config(
        tmp_path, {"faults": fault_connector()}, auth=True, extra="[auth]\nkey_publish_ahead_seconds = 0\n"
    )


async def rotate_with_the_cli(config: Path) -> str:
    completed = await run_cli(["keys", "rotate", "--config", str(config)], within_seconds=60)
    listed = await run_cli(["keys", "list", "--config", str(config)], within_seconds=60)
    assert completed.returncode == 0, completed.stderr.decode()
    assert listed.returncode == 0, listed.stderr.decode()
    return listed.stdout.decode()


async def jwks_kids(base_url: str) -> list[str]:
    async with httpx2.AsyncClient(timeout=10) as client:
        response = await client.get(f"{base_url}/oauth/jwks.json")
    assert response.status_code == 200
    return [str(key["kid"]) for key in response.json()["keys"]]


async def test_keys_rotate_from_the_cli_records_a_second_key(hub_config: Path) -> None:
    """T03, our choice: `mcp-hub keys rotate` adds a key in the database, `keys list` shows both."""
    async with running_hub(hub_config) as hub:
        before = await jwks_kids(hub.base_url)
        listing = await rotate_with_the_cli(hub_config)
    assert len(before) == 1
    assert len(listing.splitlines()) == 2
    assert before[0] in listing


async def test_keys_rotate_from_the_cli_publishes_a_second_key_in_the_running_hubs_jwks(hub_config: Path) -> None:
    """T03, our choice: the JWKS of a running hub shows the CLI-rotated key (within the refetch interval)."""
    async with running_hub(hub_config) as hub:
        before = await jwks_kids(hub.base_url)
        await rotate_with_the_cli(hub_config)
        with anyio.fail_after(KEY_RELOAD_SECONDS + 5):  # a running hub reloads its key ring periodically
            while len(kids := await jwks_kids(hub.base_url)) < 2:  # noqa: ASYNC110 - polling another process's write
                await anyio.sleep(0.2)
    assert len(before) == 1
    assert before[0] in kids
