"""`IdentityStore`: who may act through the hub. Agents (OAuth clients), human users, and their grants.

Secrets are never stored here in the clear: a client secret as its SHA-256, a password as its Argon2id hash.
Disabling a user and resetting a password also delete the user's web sessions, in the same transaction, so
no session outlives the change.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update

from mcp_hub.db._base import Store, mapped, record_of
from mcp_hub.db.models import Agent, Grant, User, WebSession
from mcp_hub.domain import AgentId, AgentSource, ClientAuthMethod, ClientId, GrantType, Role, UserId, member_of
from mcp_hub.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An OAuth client as stored."""

    id: AgentId
    name: str
    client_id: ClientId
    source: AgentSource
    auth_method: ClientAuthMethod
    secret_sha256: str | None
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[GrantType, ...]
    display_name: str | None
    client_uri: str | None
    owner_user_id: UserId | None
    enabled: bool
    created_at: datetime

    @property
    def is_public(self) -> bool:
        return self.auth_method is ClientAuthMethod.NONE

    def may_use(self, grant_type: GrantType) -> bool:
        return grant_type in self.grant_types


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """What an OAuth client says about itself (RFC 7591 §2), as the hub keeps it."""

    auth_method: ClientAuthMethod
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[GrantType, ...] = (GrantType.CLIENT_CREDENTIALS,)
    display_name: str | None = None
    client_uri: str | None = None


@dataclass(frozen=True, slots=True)
class NewAgent:
    """What `create_agent` needs; the secret arrives as its digest only."""

    name: str
    client_id: ClientId
    source: AgentSource
    metadata: ClientMetadata
    secret_sha256: str | None = None
    owner_user_id: UserId | None = None

    def __post_init__(self) -> None:
        member_of(AgentSource, self.source, "agent source")
        member_of(ClientAuthMethod, self.metadata.auth_method, "token endpoint auth method")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: UserId
    name: str
    role: Role
    password_hash: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectGrants:
    """What a decision needs about one subject: whether it may act at all, and its grant patterns."""

    enabled: bool
    patterns: tuple[str, ...]


def _agent(row: Agent) -> AgentRecord:
    return record_of(
        AgentRecord,
        row,
        source=AgentSource(row.source),
        auth_method=ClientAuthMethod(row.auth_method),
        redirect_uris=tuple(row.redirect_uris),
        grant_types=tuple(GrantType(grant) for grant in row.grant_types),
    )


def _user(row: User) -> UserRecord:
    return record_of(UserRecord, row, role=Role(row.role))


def _metadata_columns(metadata: ClientMetadata) -> dict[str, Any]:
    return {
        "auth_method": metadata.auth_method.value,
        "jwks": metadata.jwks,
        "redirect_uris": list(metadata.redirect_uris),
        "grant_types": [grant.value for grant in metadata.grant_types],
        "display_name": metadata.display_name,
        "client_uri": metadata.client_uri,
    }


class IdentityStore(Store):
    """Agents, users and grants."""

    # --- agents -----------------------------------------------------------------------------------------

    async def create_agent(self, new: NewAgent) -> AgentRecord:
        now = self._clock()
        row = Agent(
            id=str(uuid.uuid4()),
            name=new.name,
            client_id=new.client_id,
            source=new.source.value,
            secret_sha256=new.secret_sha256,
            owner_user_id=new.owner_user_id,
            enabled=True,
            created_at=now,
            updated_at=now,
            **_metadata_columns(new.metadata),
        )
        await self._add(row, duplicate=f"an agent named {new.name!r} (or with that client id) already exists")
        return _agent(row)

    async def agent_by_name(self, name: str) -> AgentRecord:
        agent = mapped(await self._first(select(Agent).where(Agent.name == name)), _agent)
        if agent is None:
            raise NotFoundError(f"no agent named {name!r}")
        return agent

    async def agent_by_client_id(self, client_id: str) -> AgentRecord | None:
        return mapped(await self._first(select(Agent).where(Agent.client_id == client_id)), _agent)

    async def agent_by_id(self, agent_id: AgentId) -> AgentRecord | None:
        return mapped(await self._get(Agent, agent_id), _agent)

    async def list_agents(self) -> list[AgentRecord]:
        return [_agent(row) for row in await self._every(select(Agent).order_by(Agent.name))]

    async def set_agent_enabled(self, name: str, enabled: bool) -> None:
        await self._update_agent(name, enabled=enabled)

    async def set_agent_secret(self, name: str, secret_sha256: str) -> None:
        await self._update_agent(name, secret_sha256=secret_sha256)

    async def set_agent_owner(self, name: str, owner_user_id: UserId | None) -> None:
        """Name the user responsible for the agent (who may then never approve its actions)."""
        await self._update_agent(name, owner_user_id=owner_user_id)

    async def update_client_metadata(self, agent_id: AgentId, metadata: ClientMetadata) -> None:
        """Refresh what a client says about itself (a Client ID Metadata Document fetched again)."""
        await self._change(
            update(Agent).where(Agent.id == agent_id).values(**_metadata_columns(metadata), updated_at=self._clock())
        )

    async def delete_agent(self, name: str) -> None:
        """Delete an agent and, by the foreign keys' cascade, its grants, codes, refresh families, own limits and
        approval actions (its audit rows stay: they name it by label)."""
        if not await self._change(delete(Agent).where(Agent.name == name)):
            raise NotFoundError(f"no agent named {name!r}")

    async def _update_agent(self, name: str, **values: Any) -> None:
        changed = await self._change(update(Agent).where(Agent.name == name).values(**values, updated_at=self._clock()))
        if not changed:
            raise NotFoundError(f"no agent named {name!r}")

    # --- users ------------------------------------------------------------------------------------------

    async def create_user(self, name: str, role: Role, password_hash: str) -> UserRecord:
        now = self._clock()
        row = User(
            id=str(uuid.uuid4()),
            name=name,
            role=member_of(Role, role, "role").value,
            password_hash=password_hash,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        await self._add(row, duplicate=f"a user named {name!r} already exists")
        return _user(row)

    async def user_by_name(self, name: str) -> UserRecord | None:
        return mapped(await self._first(select(User).where(User.name == name)), _user)

    async def user_by_id(self, user_id: UserId) -> UserRecord | None:
        return mapped(await self._get(User, user_id), _user)

    async def list_users(self) -> list[UserRecord]:
        return [_user(row) for row in await self._every(select(User).order_by(User.name))]

    async def set_user_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable a user; disabling also ends their web sessions (re-enabling revives none)."""
        await self._update_user(name, ends_sessions=not enabled, enabled=enabled)

    async def set_user_role(self, name: str, role: Role) -> None:
        """Change a user's role; their web sessions end (a page open under the old role must not act on it)."""
        await self._update_user(name, ends_sessions=True, role=member_of(Role, role, "role").value)

    async def reset_user_password(self, name: str, password_hash: str) -> None:
        """Replace a user's password hash and end their web sessions (whoever had the old one is signed out)."""
        await self._update_user(name, ends_sessions=True, password_hash=password_hash)

    async def _update_user(self, name: str, *, ends_sessions: bool, **values: Any) -> None:
        async with self._writes.begin() as session:
            user_id = await session.scalar(select(User.id).where(User.name == name))
            if user_id is None:
                raise NotFoundError(f"no user named {name!r}")
            await session.execute(update(User).where(User.id == user_id).values(**values, updated_at=self._clock()))
            if ends_sessions:
                await session.execute(delete(WebSession).where(WebSession.user_id == user_id))

    # --- grants -----------------------------------------------------------------------------------------

    async def add_grant(self, pattern: str, *, agent_id: AgentId | None = None, user_id: UserId | None = None) -> bool:
        """Grant `pattern`; False if the subject already had it."""
        if (agent_id is None) == (user_id is None):
            raise ValueError("a grant has exactly one subject: an agent or a user")
        # The unique constraint alone cannot catch a repeat: one of its subject columns is always NULL, and
        # NULLs never compare equal. Look first, in the same transaction.
        async with self._writes.begin() as session:
            existing = await session.scalar(
                select(Grant.id).where(Grant.agent_id == agent_id, Grant.user_id == user_id, Grant.pattern == pattern)
            )
            if existing is not None:
                return False
            session.add(Grant(agent_id=agent_id, user_id=user_id, pattern=pattern, created_at=self._clock()))
        return True

    async def remove_grant(
        self, pattern: str, *, agent_id: AgentId | None = None, user_id: UserId | None = None
    ) -> bool:
        """Remove `pattern`; False if the subject did not have it."""
        subject = (Grant.agent_id == agent_id, Grant.user_id == user_id, Grant.pattern == pattern)
        return bool(await self._change(delete(Grant).where(*subject)))

    async def grants_of(self, *, agent_id: AgentId | None = None, user_id: UserId | None = None) -> list[str]:
        query = select(Grant.pattern).where(Grant.agent_id == agent_id, Grant.user_id == user_id)
        return list(await self._every(query.order_by(Grant.pattern)))

    async def subject_grants(self, agent_id: AgentId, user_id: UserId | None) -> SubjectGrants:
        """One read for a decision: is the agent (and the user, if any) enabled, and what is granted.

        A token issued on a user's behalf is decided by the user's grants; a client-credentials token by
        the agent's. Either way a disabled agent or user gets nothing.
        """
        async with self._reads() as session:
            agent_enabled = await session.scalar(select(Agent.enabled).where(Agent.id == agent_id))
            enabled = bool(agent_enabled)
            if user_id is not None:
                user_enabled = await session.scalar(select(User.enabled).where(User.id == user_id))
                enabled = enabled and bool(user_enabled)
                condition = Grant.user_id == user_id
            else:
                condition = Grant.agent_id == agent_id
            patterns = tuple((await session.scalars(select(Grant.pattern).where(condition))).all())
        return SubjectGrants(enabled=enabled, patterns=patterns if enabled else ())
