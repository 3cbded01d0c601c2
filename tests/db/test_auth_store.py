"""`IdentityStore`, `SigningKeyStore`, `OAuthStore` on SQLite and PostgreSQL: identities, grants, single-use
artefacts and signing-key bookkeeping.

Every test runs on both backends (`database_url` in `tests/db/conftest.py`). Single-use consumption is one
conditional UPDATE, so of N concurrent consumers exactly one wins on either database: threat T07 (refresh
token races) and T04 (authorization-code replay) at the store level, where the guarantee actually lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcp_hub.authz.keys import generate_key_record
from mcp_hub.db import upgrade
from mcp_hub.db.approvals import ApprovalStore
from mcp_hub.db.audit import AuditStore
from mcp_hub.db.audit_chain import AuditChainStore
from mcp_hub.db.audit_query import AuditQueryStore
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.identities import AgentRecord, ClientMetadata, IdentityStore, NewAgent
from mcp_hub.db.keys import SigningKeyStore
from mcp_hub.db.limits import LimitStore
from mcp_hub.db.oauth import AuthorizationCodeRecord, OAuthStore
from mcp_hub.db.pins import PinStore
from mcp_hub.db.replicas import ReplicaStore
from mcp_hub.db.sealing import SealingStore
from mcp_hub.db.web_sessions import WebSessionStore
from mcp_hub.domain import AgentSource, ClientAuthMethod, ClientId, GrantType, Role
from mcp_hub.errors import ConflictError, NotFoundError
from mcp_hub.runtime import Stores
from tests.db.conftest import new_client

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 7, 28, 12, 0, tzinfo=UTC)
CONCURRENT_CONSUMERS = 12


@dataclass
class Clock:
    """The store's clock, settable: expiry is tested by moving time, not by waiting."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def stores(database_url: str, engine: AsyncEngine, clock: Clock) -> Stores:
    """The identity, key and OAuth stores (and the rest) on one migrated test database, with a settable clock."""
    await upgrade(database_url)
    return Stores(
        catalog=CatalogStore(engine, clock=clock),
        audit=AuditStore(engine, clock=clock),
        audit_query=AuditQueryStore(engine, clock=clock),
        audit_chain=AuditChainStore(engine, clock=clock),
        identities=IdentityStore(engine, clock=clock),
        keys=SigningKeyStore(engine, clock=clock),
        oauth=OAuthStore(engine, clock=clock),
        web_sessions=WebSessionStore(engine, clock=clock),
        approvals=ApprovalStore(engine, clock=clock),
        sealing=SealingStore(engine, clock=clock),
        limits=LimitStore(engine, clock=clock),
        pins=PinStore(engine, clock=clock),
        replicas=ReplicaStore(engine, clock=clock),
    )


async def new_agent(stores: Stores, name: str = "agent-a") -> AgentRecord:
    return await stores.identities.create_agent(new_client(name))


# --- agents, users, grants ----------------------------------------------------------------------------------


async def test_an_agent_is_created_found_listed_and_updated(stores: Stores) -> None:
    """Our choice: records come back as frozen dataclasses, found by name, client id or id."""
    created = await stores.identities.create_agent(
        NewAgent(
            name="agent-a",
            client_id=ClientId("agt_a"),
            source=AgentSource.ADMIN,
            metadata=ClientMetadata(
                auth_method=ClientAuthMethod.CLIENT_SECRET_BASIC,
                redirect_uris=("https://app.example/cb",),
                grant_types=(GrantType.CLIENT_CREDENTIALS,),
            ),
            secret_sha256="0" * 64,
        )
    )
    await new_agent(stores, "agent-b")
    await stores.identities.set_agent_enabled("agent-a", False)
    await stores.identities.set_agent_secret("agent-a", "1" * 64)

    by_name = await stores.identities.agent_by_name("agent-a")
    assert created.enabled is True
    assert created.created_at.tzinfo is not None
    assert await stores.identities.agent_by_client_id("agt_a") == by_name
    assert await stores.identities.agent_by_id(created.id) == by_name
    assert by_name.enabled is False
    assert by_name.secret_sha256 == "1" * 64
    assert by_name.redirect_uris == ("https://app.example/cb",)
    assert [agent.name for agent in await stores.identities.list_agents()] == ["agent-a", "agent-b"]
    assert await stores.identities.agent_by_client_id("agt_nobody") is None


async def test_a_duplicate_agent_is_a_conflict_and_an_unknown_one_is_not_found(stores: Stores) -> None:
    """Our choice: admin errors name the problem (`ConflictError`, `NotFoundError`), never a raw IntegrityError."""
    await new_agent(stores)
    with pytest.raises(ConflictError):
        await new_agent(stores)
    with pytest.raises(NotFoundError):
        await stores.identities.agent_by_name("nobody")
    with pytest.raises(NotFoundError):
        await stores.identities.set_agent_enabled("nobody", False)
    with pytest.raises(ValueError, match="source"):
        NewAgent(
            name="x",
            client_id=ClientId("x"),
            source=cast("AgentSource", "elsewhere"),
            metadata=ClientMetadata(auth_method=ClientAuthMethod.NONE),
        )


async def test_users_are_created_found_and_disabled(stores: Stores) -> None:
    """Our choice: two roles only; a duplicate name is a conflict."""
    user = await stores.identities.create_user("alice", Role.APPROVER, "argon2-hash")
    await stores.identities.set_user_enabled("alice", False)
    await stores.identities.reset_user_password("alice", "new-hash")
    found = await stores.identities.user_by_name("alice")
    assert found is not None
    assert await stores.identities.user_by_id(user.id) == found
    assert (found.enabled, found.password_hash, found.role) == (False, "new-hash", "approver")
    assert [item.name for item in await stores.identities.list_users()] == ["alice"]
    assert await stores.identities.user_by_name("bob") is None
    with pytest.raises(ConflictError):
        await stores.identities.create_user("alice", Role.ADMIN, "hash")
    with pytest.raises(ValueError, match="role"):
        await stores.identities.create_user("carol", cast("Role", "superuser"), "hash")
    with pytest.raises(NotFoundError):
        await stores.identities.set_user_enabled("bob", True)


async def test_grants_are_added_listed_removed_and_decide_only_for_an_enabled_subject(
    stores: Stores,
) -> None:
    """T10/T09 groundwork, our design: one read gives a decision; a disabled agent or user has no grants."""
    agent = await new_agent(stores)
    user = await stores.identities.create_user("alice", Role.APPROVER, "hash")
    assert await stores.identities.add_grant("tool:time__*", agent_id=agent.id) is True
    assert await stores.identities.add_grant("tool:git__*", agent_id=agent.id) is True
    assert await stores.identities.add_grant("tool:faults__echo", user_id=user.id) is True

    assert await stores.identities.grants_of(agent_id=agent.id) == ["tool:git__*", "tool:time__*"]
    assert set((await stores.identities.subject_grants(agent.id, None)).patterns) == {"tool:git__*", "tool:time__*"}
    on_behalf = await stores.identities.subject_grants(agent.id, user.id)
    assert (on_behalf.enabled, on_behalf.patterns) == (True, ("tool:faults__echo",))

    assert await stores.identities.remove_grant("tool:git__*", agent_id=agent.id) is True
    assert await stores.identities.remove_grant("tool:git__*", agent_id=agent.id) is False
    assert await stores.identities.grants_of(agent_id=agent.id) == ["tool:time__*"]

    await stores.identities.set_user_enabled("alice", False)
    assert (await stores.identities.subject_grants(agent.id, user.id)).patterns == ()
    await stores.identities.set_agent_enabled(agent.name, False)
    disabled = await stores.identities.subject_grants(agent.id, None)
    assert (disabled.enabled, disabled.patterns) == (False, ())

    with pytest.raises(ValueError, match="exactly one subject"):
        await stores.identities.add_grant("tool:*", agent_id=agent.id, user_id=user.id)
    with pytest.raises(ValueError, match="exactly one subject"):
        await stores.identities.add_grant("tool:*")


async def test_granting_the_same_pattern_twice_is_reported_and_stored_once(stores: Stores) -> None:
    """Our choice (documented by `add_grant`): a repeated grant returns False and adds no second row."""
    agent = await new_agent(stores)
    assert await stores.identities.add_grant("tool:time__*", agent_id=agent.id) is True
    assert await stores.identities.add_grant("tool:time__*", agent_id=agent.id) is False
    assert await stores.identities.grants_of(agent_id=agent.id) == ["tool:time__*"]


# --- refresh tokens (T07) -----------------------------------------------------------------------------------


async def test_of_n_concurrent_refresh_token_consumers_exactly_one_wins(stores: Stores) -> None:
    """T07, OAuth 2.1 §4.3.1 (rotation): one atomic consume; every other concurrent caller sees a reuse."""
    agent = await new_agent(stores)
    family = await stores.oauth.create_refresh_family(agent.id, None, "tool:*", "https://hub.example/mcp")
    await stores.oauth.add_refresh_token(family.id, "a" * 64, T0 + timedelta(days=1))
    outcomes: list[str] = []

    async def consume() -> None:
        outcome, consumed_family = await stores.oauth.consume_refresh_token("a" * 64)
        assert consumed_family is not None
        assert consumed_family.id == family.id
        outcomes.append(outcome)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for _ in range(CONCURRENT_CONSUMERS):
                tasks.start_soon(consume)
    assert sorted(outcomes) == ["ok"] + ["reused"] * (CONCURRENT_CONSUMERS - 1)


async def test_a_refresh_token_reports_unknown_expired_and_revoked(stores: Stores, clock: Clock) -> None:
    """T07, our design: the caller learns why a token failed (a reuse must revoke the family; expiry must not)."""
    agent = await new_agent(stores)
    family = await stores.oauth.create_refresh_family(agent.id, None, "tool:*", "https://hub.example/mcp")
    await stores.oauth.add_refresh_token(family.id, "expiring", T0 + timedelta(minutes=5))
    await stores.oauth.add_refresh_token(family.id, "in-revoked-family", T0 + timedelta(days=1))

    assert await stores.oauth.consume_refresh_token("never-issued") == ("unknown", None)
    clock.now = T0 + timedelta(minutes=5)
    outcome, _ = await stores.oauth.consume_refresh_token("expiring")
    assert outcome == "expired"
    await stores.oauth.revoke_family(family.id, "reuse detected")
    outcome, revoked = await stores.oauth.consume_refresh_token("in-revoked-family")
    assert outcome == "revoked"
    assert revoked is not None
    assert revoked.revoked_at == clock.now


async def test_a_revoked_family_stays_revoked_from_its_first_revocation(stores: Stores, clock: Clock) -> None:
    """T07/T09, our choice: revocation is idempotent and keeps the first time; lookups find the family."""
    agent = await new_agent(stores)
    kept = await stores.oauth.create_refresh_family(agent.id, None, "tool:*", "https://hub.example/mcp")
    revoked = await stores.oauth.create_refresh_family(agent.id, None, "tool:*", "https://hub.example/mcp")
    await stores.oauth.add_refresh_token(revoked.id, "r1", T0 + timedelta(days=1))

    await stores.oauth.revoke_family(revoked.id, "logout")
    first_revocation = clock.now
    clock.now = T0 + timedelta(hours=1)
    await stores.oauth.revoke_family(revoked.id, "again")

    assert await stores.oauth.revoked_families([kept.id, revoked.id]) == {revoked.id}
    assert await stores.oauth.revoked_families([]) == set()
    found = await stores.oauth.family_of_refresh_token("r1")
    assert found is not None
    assert (found.id, found.revoked_at) == (revoked.id, first_revocation)
    assert await stores.oauth.family_of_refresh_token("nope") is None


# --- authorization codes (T04) ------------------------------------------------------------------------------


async def code_for(stores: Stores, code_sha256: str, expires_at: datetime) -> AgentRecord:
    agent = await new_agent(stores, f"app-{code_sha256[:6]}")
    user = await stores.identities.create_user(f"user-{code_sha256[:6]}", Role.APPROVER, "hash")
    record = AuthorizationCodeRecord(
        agent_id=agent.id,
        user_id=user.id,
        redirect_uri="https://app.example/cb",
        code_challenge="c" * 43,
        scope="tool:*",
        resource="https://hub.example/mcp",
        expires_at=expires_at,
        family_id=None,
    )
    await stores.oauth.add_authorization_code(code_sha256, record)
    return agent


async def test_an_authorization_code_is_single_use_and_its_replay_names_the_family(stores: Stores) -> None:
    """T04, RFC 6749 §4.1.2 (codes single-use; a replay should revoke what the code produced)."""
    agent = await code_for(stores, "code01", T0 + timedelta(seconds=60))
    outcome, first = await stores.oauth.consume_authorization_code("code01")
    assert outcome == "ok"
    assert first is not None
    assert first.agent_id == agent.id
    family = await stores.oauth.create_refresh_family(agent.id, first.user_id, first.scope, first.resource)
    await stores.oauth.bind_code_to_family("code01", family.id)

    outcome, replayed = await stores.oauth.consume_authorization_code("code01")
    assert outcome == "reused"
    assert replayed is not None
    assert replayed.family_id == family.id
    assert await stores.oauth.consume_authorization_code("never-issued") == ("unknown", None)


async def test_of_n_concurrent_code_redemptions_exactly_one_wins(stores: Stores) -> None:
    """T04, RFC 6749 §4.1.2: a code is redeemed once even when the requests race."""
    await code_for(stores, "code02", T0 + timedelta(seconds=60))
    outcomes: list[str] = []

    async def redeem() -> None:
        outcome, _ = await stores.oauth.consume_authorization_code("code02")
        outcomes.append(outcome)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tasks:
            for _ in range(CONCURRENT_CONSUMERS):
                tasks.start_soon(redeem)
    assert sorted(outcomes) == ["ok"] + ["reused"] * (CONCURRENT_CONSUMERS - 1)


async def test_an_expired_authorization_code_is_reported_expired(stores: Stores, clock: Clock) -> None:
    """T04, RFC 6749 §4.1.2 (a short lifetime, ~60 s here): past it, the code is spent and refused."""
    await code_for(stores, "code03", T0 + timedelta(seconds=60))
    clock.now = T0 + timedelta(seconds=60)
    outcome, _ = await stores.oauth.consume_authorization_code("code03")
    assert outcome == "expired"
    outcome, _ = await stores.oauth.consume_authorization_code("code03")
    assert outcome == "reused"


# --- signing keys (T03) and access-token revocation (T09) ---------------------------------------------------


async def test_rotation_retires_every_unretired_key_at_the_given_time(stores: Stores) -> None:
    """T03, our design: adding a key with `retire_others_at` retires the keys without a date, and only those."""
    first = generate_key_record(T0, T0)
    await stores.keys.add_signing_key(first, retire_others_at=None)
    second = generate_key_record(T0 + timedelta(minutes=1), T0)
    await stores.keys.add_signing_key(second, retire_others_at=T0 + timedelta(hours=1))
    third = generate_key_record(T0 + timedelta(minutes=2), T0 + timedelta(minutes=1))
    await stores.keys.add_signing_key(third, retire_others_at=T0 + timedelta(hours=2))

    keys = await stores.keys.signing_keys()
    assert [key.kid for key in keys] == [first.kid, second.kid, third.kid]  # ordered by signs_from
    assert [key.retires_at for key in keys] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2), None]
    assert keys[0].private_jwk == first.private_jwk
    assert keys[0].public_jwk == first.public_jwk
    assert "d" not in keys[0].public_jwk  # the public half carries no private parameter


async def test_a_revoked_access_token_is_remembered_until_it_would_have_expired(stores: Stores, clock: Clock) -> None:
    """T09, RFC 7009: revocation is recorded by jti, idempotently; rows past the token's expiry are purged."""
    await stores.oauth.revoke_access_token("jti-1", T0 + timedelta(minutes=5))
    await stores.oauth.revoke_access_token("jti-1", T0 + timedelta(minutes=5))
    assert await stores.oauth.is_access_token_revoked("jti-1") is True
    assert await stores.oauth.is_access_token_revoked("jti-2") is False

    clock.now = T0 + timedelta(minutes=5)
    await stores.oauth.revoke_access_token("jti-2", T0 + timedelta(minutes=10))
    assert await stores.oauth.is_access_token_revoked("jti-1") is False  # purged: the token itself is dead
    assert await stores.oauth.is_access_token_revoked("jti-2") is True


# --- shared secrets and single-use request states (issue 9 §4) -----------------------------------------------


async def test_replicas_asking_for_a_shared_secret_at_once_all_get_the_one_stored(stores: Stores) -> None:
    """Issue 9 §4 (keys shared by all replicas): of racing first requests one INSERT wins; everyone reads it."""
    found: list[bytes] = []

    async def ask() -> None:
        found.append(await stores.sealing.shared_secret("request-state-v1"))

    async with anyio.create_task_group() as tasks:
        for _ in range(8):
            tasks.start_soon(ask)

    assert len(set(found)) == 1
    assert len(found[0]) == 32
    assert await stores.sealing.shared_secret("another") != found[0]


async def test_a_request_state_is_used_once_whoever_races_for_it(stores: Stores, clock: Clock) -> None:
    """Issue 9 §4 (single use): of 10 concurrent uses exactly one wins; once expired the record is purged."""
    wins: list[bool] = []

    async def use() -> None:
        wins.append(await stores.sealing.use_request_state_once("nonce-1", clock() + timedelta(minutes=5)))

    async with anyio.create_task_group() as tasks:
        for _ in range(10):
            tasks.start_soon(use)
    clock.now += timedelta(minutes=10)
    reused_after_expiry = await stores.sealing.use_request_state_once("nonce-1", clock() + timedelta(minutes=5))

    assert sorted(wins) == [False] * 9 + [True]
    assert reused_after_expiry is True  # the state itself has expired by then: the seal refuses it first
