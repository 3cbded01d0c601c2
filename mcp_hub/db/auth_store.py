"""`AuthStore`: every read and write of identities, grants, keys and OAuth artefacts.

Like `HubStore`, it hands out frozen dataclasses, never ORM objects, and every method is one transaction.
Single-use artefacts (refresh tokens, authorization codes, consent requests) are consumed with one
conditional `UPDATE ... WHERE used_at IS NULL`: of N concurrent consumers exactly one sees a row count of
1, on SQLite and PostgreSQL alike (threats T04, T07).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

from sqlalchemy import CursorResult, Result, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from mcp_hub.db.engine import read_only
from mcp_hub.db.models import (
    Agent,
    AuthorizationCode,
    ConsentRequest,
    Grant,
    RefreshFamily,
    RefreshToken,
    RevokedToken,
    SigningKey,
    User,
    WebSession,
)
from mcp_hub.errors import ConflictError, NotFoundError

AGENT_SOURCES: Final = frozenset({"admin", "dcr", "cimd"})
AUTH_METHODS: Final = frozenset({"client_secret_basic", "client_secret_post", "private_key_jwt", "none"})
USER_ROLES: Final = frozenset({"admin", "approver"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (every DML statement returns a `CursorResult`)."""
    return cast("CursorResult[Any]", result).rowcount


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An OAuth client as stored."""

    id: str
    name: str
    client_id: str
    source: str
    auth_method: str
    secret_sha256: str | None
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    display_name: str | None
    client_uri: str | None
    owner_user_id: str | None
    enabled: bool
    created_at: datetime

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"


@dataclass(frozen=True, slots=True)
class NewAgent:
    """What `create_agent` needs; the secret arrives as its digest only."""

    name: str
    client_id: str
    source: str
    auth_method: str
    secret_sha256: str | None = None
    jwks: dict[str, Any] | None = None
    redirect_uris: tuple[str, ...] = ()
    grant_types: tuple[str, ...] = ("client_credentials",)
    display_name: str | None = None
    client_uri: str | None = None
    owner_user_id: str | None = None

    def __post_init__(self) -> None:
        if self.source not in AGENT_SOURCES:
            raise ValueError(f"unknown agent source {self.source!r}")
        if self.auth_method not in AUTH_METHODS:
            raise ValueError(f"unknown token endpoint auth method {self.auth_method!r}")


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    name: str
    role: str
    password_hash: str
    enabled: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubjectGrants:
    """What a decision needs about one subject: whether it may act at all, and its grant patterns."""

    enabled: bool
    patterns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    algorithm: str
    private_jwk: dict[str, Any]
    public_jwk: dict[str, Any]
    published_at: datetime
    signs_from: datetime
    retires_at: datetime | None


@dataclass(frozen=True, slots=True)
class RefreshFamilyRecord:
    id: str
    agent_id: str
    user_id: str | None
    scope: str
    resource: str
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuthorizationCodeRecord:
    agent_id: str
    user_id: str
    redirect_uri: str
    code_challenge: str
    scope: str
    resource: str
    expires_at: datetime
    family_id: str | None


@dataclass(frozen=True, slots=True)
class WebSessionRecord:
    user_id: str
    csrf_token: str
    expires_at: datetime


def _agent(row: Agent) -> AgentRecord:
    return AgentRecord(
        id=row.id,
        name=row.name,
        client_id=row.client_id,
        source=row.source,
        auth_method=row.auth_method,
        secret_sha256=row.secret_sha256,
        jwks=row.jwks,
        redirect_uris=tuple(row.redirect_uris),
        grant_types=tuple(row.grant_types),
        display_name=row.display_name,
        client_uri=row.client_uri,
        owner_user_id=row.owner_user_id,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def _user(row: User) -> UserRecord:
    return UserRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        password_hash=row.password_hash,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def _key(row: SigningKey) -> SigningKeyRecord:
    return SigningKeyRecord(
        kid=row.kid,
        algorithm=row.algorithm,
        private_jwk=row.private_jwk,
        public_jwk=row.public_jwk,
        published_at=row.published_at,
        signs_from=row.signs_from,
        retires_at=row.retires_at,
    )


class AuthStore:
    """Agents, users, grants, signing keys, refresh families, codes, sessions, revocations."""

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._reads = async_sessionmaker(read_only(engine), expire_on_commit=False)
        self._clock = clock

    # --- agents -----------------------------------------------------------------------------------------

    async def create_agent(self, new: NewAgent) -> AgentRecord:
        now = self._clock()
        row = Agent(
            id=str(uuid.uuid4()),
            name=new.name,
            client_id=new.client_id,
            source=new.source,
            auth_method=new.auth_method,
            secret_sha256=new.secret_sha256,
            jwks=new.jwks,
            redirect_uris=list(new.redirect_uris),
            grant_types=list(new.grant_types),
            display_name=new.display_name,
            client_uri=new.client_uri,
            owner_user_id=new.owner_user_id,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"an agent named {new.name!r} (or with that client id) already exists") from None
        return _agent(row)

    async def agent_by_name(self, name: str) -> AgentRecord:
        async with self._reads() as session:
            row = await session.scalar(select(Agent).where(Agent.name == name))
        if row is None:
            raise NotFoundError(f"no agent named {name!r}")
        return _agent(row)

    async def agent_by_client_id(self, client_id: str) -> AgentRecord | None:
        async with self._reads() as session:
            row = await session.scalar(select(Agent).where(Agent.client_id == client_id))
        return None if row is None else _agent(row)

    async def agent_by_id(self, agent_id: str) -> AgentRecord | None:
        async with self._reads() as session:
            row = await session.get(Agent, agent_id)
        return None if row is None else _agent(row)

    async def list_agents(self) -> list[AgentRecord]:
        async with self._reads() as session:
            rows = (await session.scalars(select(Agent).order_by(Agent.name))).all()
        return [_agent(row) for row in rows]

    async def set_agent_enabled(self, name: str, enabled: bool) -> None:
        await self._update_agent(name, enabled=enabled)

    async def set_agent_secret(self, name: str, secret_sha256: str) -> None:
        await self._update_agent(name, secret_sha256=secret_sha256)

    async def update_agent_metadata(self, agent_id: str, **values: Any) -> None:
        """Refresh what a Client ID Metadata Document says (redirect URIs, name, keys)."""
        async with self._sessions.begin() as session:
            await session.execute(update(Agent).where(Agent.id == agent_id).values(**values, updated_at=self._clock()))

    async def _update_agent(self, name: str, **values: Any) -> None:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Agent).where(Agent.name == name).values(**values, updated_at=self._clock())
            )
        if _rowcount(result) == 0:
            raise NotFoundError(f"no agent named {name!r}")

    # --- users ------------------------------------------------------------------------------------------

    async def create_user(self, name: str, role: str, password_hash: str) -> UserRecord:
        if role not in USER_ROLES:
            raise ValueError(f"unknown role {role!r}: expected one of {sorted(USER_ROLES)}")
        now = self._clock()
        row = User(
            id=str(uuid.uuid4()),
            name=name,
            role=role,
            password_hash=password_hash,
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise ConflictError(f"a user named {name!r} already exists") from None
        return _user(row)

    async def user_by_name(self, name: str) -> UserRecord | None:
        async with self._reads() as session:
            row = await session.scalar(select(User).where(User.name == name))
        return None if row is None else _user(row)

    async def user_by_id(self, user_id: str) -> UserRecord | None:
        async with self._reads() as session:
            row = await session.get(User, user_id)
        return None if row is None else _user(row)

    async def list_users(self) -> list[UserRecord]:
        async with self._reads() as session:
            rows = (await session.scalars(select(User).order_by(User.name))).all()
        return [_user(row) for row in rows]

    async def set_user_password_hash(self, user_id: str, password_hash: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(User).where(User.id == user_id).values(password_hash=password_hash, updated_at=self._clock())
            )

    async def set_user_enabled(self, name: str, enabled: bool) -> None:
        """Enable or disable a user; disabling also ends their web sessions (re-enabling revives none)."""
        await self._update_user(name, ends_sessions=not enabled, enabled=enabled)

    async def reset_user_password(self, name: str, password_hash: str) -> None:
        """Replace a user's password hash and end their web sessions (whoever had the old one is signed out)."""
        await self._update_user(name, ends_sessions=True, password_hash=password_hash)

    async def _update_user(self, name: str, *, ends_sessions: bool, **values: Any) -> None:
        async with self._sessions.begin() as session:
            user_id = await session.scalar(select(User.id).where(User.name == name))
            if user_id is None:
                raise NotFoundError(f"no user named {name!r}")
            await session.execute(update(User).where(User.id == user_id).values(**values, updated_at=self._clock()))
            if ends_sessions:
                await session.execute(delete(WebSession).where(WebSession.user_id == user_id))

    # --- grants -----------------------------------------------------------------------------------------

    async def add_grant(self, pattern: str, *, agent_id: str | None = None, user_id: str | None = None) -> bool:
        """Grant `pattern`; False if the subject already had it."""
        if (agent_id is None) == (user_id is None):
            raise ValueError("a grant has exactly one subject: an agent or a user")
        # The unique constraint alone cannot catch a repeat: one of its subject columns is always NULL, and
        # NULLs never compare equal. Look first, in the same transaction.
        async with self._sessions.begin() as session:
            existing = await session.scalar(
                select(Grant.id).where(Grant.agent_id == agent_id, Grant.user_id == user_id, Grant.pattern == pattern)
            )
            if existing is not None:
                return False
            session.add(Grant(agent_id=agent_id, user_id=user_id, pattern=pattern, created_at=self._clock()))
        return True

    async def remove_grant(self, pattern: str, *, agent_id: str | None = None, user_id: str | None = None) -> bool:
        """Remove `pattern`; False if the subject did not have it."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(Grant).where(Grant.agent_id == agent_id, Grant.user_id == user_id, Grant.pattern == pattern)
            )
        return bool(_rowcount(result))

    async def grants_of(self, *, agent_id: str | None = None, user_id: str | None = None) -> list[str]:
        async with self._reads() as session:
            rows = await session.scalars(
                select(Grant.pattern)
                .where(Grant.agent_id == agent_id, Grant.user_id == user_id)
                .order_by(Grant.pattern)
            )
            return list(rows.all())

    async def subject_grants(self, agent_id: str, user_id: str | None) -> SubjectGrants:
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

    # --- signing keys -----------------------------------------------------------------------------------

    async def signing_keys(self) -> list[SigningKeyRecord]:
        async with self._reads() as session:
            rows = (await session.scalars(select(SigningKey).order_by(SigningKey.signs_from))).all()
        return [_key(row) for row in rows]

    async def add_signing_key(self, key: SigningKeyRecord, *, retire_others_at: datetime | None) -> None:
        """Store `key`; with `retire_others_at`, every key not yet retiring retires then (rotation)."""
        async with self._sessions.begin() as session:
            if retire_others_at is not None:
                await session.execute(
                    update(SigningKey).where(SigningKey.retires_at.is_(None)).values(retires_at=retire_others_at)
                )
            session.add(
                SigningKey(
                    kid=key.kid,
                    algorithm=key.algorithm,
                    private_jwk=key.private_jwk,
                    public_jwk=key.public_jwk,
                    published_at=key.published_at,
                    signs_from=key.signs_from,
                    retires_at=key.retires_at,
                )
            )

    # --- refresh tokens (RFC 6749 §6, rotation per OAuth 2.1 §4.3.1) -----------------------------------

    async def create_refresh_family(
        self, agent_id: str, user_id: str | None, scope: str, resource: str
    ) -> RefreshFamilyRecord:
        row = RefreshFamily(
            id=str(uuid.uuid4()),
            agent_id=agent_id,
            user_id=user_id,
            scope=scope,
            resource=resource,
            created_at=self._clock(),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return RefreshFamilyRecord(row.id, agent_id, user_id, scope, resource, None)

    async def add_refresh_token(self, family_id: str, token_sha256: str, expires_at: datetime) -> None:
        async with self._sessions.begin() as session:
            session.add(
                RefreshToken(
                    token_sha256=token_sha256, family_id=family_id, created_at=self._clock(), expires_at=expires_at
                )
            )

    async def consume_refresh_token(self, token_sha256: str) -> tuple[str, RefreshFamilyRecord | None]:
        """Mark a refresh token used, atomically.

        Returns ("ok", family) for the one caller that consumed it; ("reused", family) when it had already
        been used (the caller must revoke the family); ("expired" | "revoked", family); ("unknown", None).
        """
        now = self._clock()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_sha256 == token_sha256, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            consumed = bool(_rowcount(result))
            token = await session.get(RefreshToken, token_sha256)
            if token is None:
                return "unknown", None
            family_row = await session.get(RefreshFamily, token.family_id)
            if family_row is None:
                return "unknown", None
            family = RefreshFamilyRecord(
                family_row.id,
                family_row.agent_id,
                family_row.user_id,
                family_row.scope,
                family_row.resource,
                family_row.revoked_at,
            )
            if not consumed:
                return "reused", family
            if family.revoked_at is not None:
                return "revoked", family
            if token.expires_at <= now:
                return "expired", family
            return "ok", family

    async def revoke_family(self, family_id: str, reason: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(RefreshFamily)
                .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
                .values(revoked_at=self._clock(), revoked_reason=reason)
            )

    async def family_of_refresh_token(self, token_sha256: str) -> RefreshFamilyRecord | None:
        async with self._reads() as session:
            token = await session.get(RefreshToken, token_sha256)
            if token is None:
                return None
            row = await session.get(RefreshFamily, token.family_id)
        if row is None:
            return None
        return RefreshFamilyRecord(row.id, row.agent_id, row.user_id, row.scope, row.resource, row.revoked_at)

    async def revoked_families(self, family_ids: Sequence[str]) -> set[str]:
        if not family_ids:
            return set()
        async with self._reads() as session:
            rows = await session.scalars(
                select(RefreshFamily.id).where(RefreshFamily.id.in_(family_ids), RefreshFamily.revoked_at.is_not(None))
            )
            return set(rows.all())

    # --- access token revocation (RFC 7009) ---------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        """Idempotent: revoking a token twice, or twice at once, leaves it revoked once."""
        now = self._clock()
        try:
            async with self._sessions.begin() as session:
                await session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
                if await session.get(RevokedToken, jti) is None:
                    session.add(RevokedToken(jti=jti, revoked_at=now, expires_at=expires_at))
        except IntegrityError:
            pass  # a concurrent revocation of the same token won the insert

    async def is_access_token_revoked(self, jti: str) -> bool:
        async with self._reads() as session:
            return await session.get(RevokedToken, jti) is not None

    # --- authorization codes (RFC 6749 §4.1.2: short-lived, single use) ----------------------------------

    async def add_authorization_code(self, code_sha256: str, code: AuthorizationCodeRecord) -> None:
        async with self._sessions.begin() as session:
            session.add(
                AuthorizationCode(
                    code_sha256=code_sha256,
                    agent_id=code.agent_id,
                    user_id=code.user_id,
                    redirect_uri=code.redirect_uri,
                    code_challenge=code.code_challenge,
                    scope=code.scope,
                    resource=code.resource,
                    created_at=self._clock(),
                    expires_at=code.expires_at,
                )
            )

    async def consume_authorization_code(self, code_sha256: str) -> tuple[str, AuthorizationCodeRecord | None]:
        """("ok", code) for the one caller that consumed it; ("reused", code) on replay; ("unknown", None)."""
        now = self._clock()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_sha256 == code_sha256, AuthorizationCode.used_at.is_(None))
                .values(used_at=now)
            )
            consumed = bool(_rowcount(result))
            row = await session.get(AuthorizationCode, code_sha256)
        if row is None:
            return "unknown", None
        record = AuthorizationCodeRecord(
            agent_id=row.agent_id,
            user_id=row.user_id,
            redirect_uri=row.redirect_uri,
            code_challenge=row.code_challenge,
            scope=row.scope,
            resource=row.resource,
            expires_at=row.expires_at,
            family_id=row.family_id,
        )
        if not consumed:
            return "reused", record
        if row.expires_at <= now:
            return "expired", record
        return "ok", record

    async def bind_code_to_family(self, code_sha256: str, family_id: str) -> None:
        """Remember which refresh family a code produced, so that a replay of the code can revoke it (T04)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_sha256 == code_sha256)
                .values(family_id=family_id)
            )

    # --- web sessions and consent requests ----------------------------------------------------------------

    async def create_web_session(self, id_sha256: str, user_id: str, csrf_token: str, expires_at: datetime) -> None:
        async with self._sessions.begin() as session:
            session.add(
                WebSession(
                    id_sha256=id_sha256,
                    user_id=user_id,
                    csrf_token=csrf_token,
                    created_at=self._clock(),
                    expires_at=expires_at,
                )
            )

    async def web_session(self, id_sha256: str) -> WebSessionRecord | None:
        async with self._reads() as session:
            row = await session.get(WebSession, id_sha256)
        if row is None or row.expires_at <= self._clock():
            return None
        return WebSessionRecord(user_id=row.user_id, csrf_token=row.csrf_token, expires_at=row.expires_at)

    async def delete_web_session(self, id_sha256: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(delete(WebSession).where(WebSession.id_sha256 == id_sha256))

    async def create_consent_request(
        self, id_sha256: str, user_id: str, agent_id: str, parameters: dict[str, Any], expires_at: datetime
    ) -> None:
        async with self._sessions.begin() as session:
            session.add(
                ConsentRequest(
                    id_sha256=id_sha256,
                    user_id=user_id,
                    agent_id=agent_id,
                    parameters=parameters,
                    created_at=self._clock(),
                    expires_at=expires_at,
                )
            )

    async def consume_consent_request(self, id_sha256: str, user_id: str) -> dict[str, Any] | None:
        """The request's parameters for the one caller that consumes it, as the user it was made for."""
        now = self._clock()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(ConsentRequest)
                .where(
                    ConsentRequest.id_sha256 == id_sha256,
                    ConsentRequest.user_id == user_id,
                    ConsentRequest.used_at.is_(None),
                    ConsentRequest.expires_at > now,
                )
                .values(used_at=now)
            )
            if not _rowcount(result):
                return None
            row = await session.get(ConsentRequest, id_sha256)
        return None if row is None else dict(row.parameters)

    async def peek_consent_request(self, id_sha256: str, user_id: str) -> tuple[str, dict[str, Any]] | None:
        """(agent id, parameters) of an open consent request of this user, without consuming it."""
        async with self._reads() as session:
            row = await session.get(ConsentRequest, id_sha256)
        if row is None or row.user_id != user_id or row.used_at is not None or row.expires_at <= self._clock():
            return None
        return row.agent_id, dict(row.parameters)

    # --- added for registration, revocation, introspection ---

    async def use_once(self, key: str, expires_at: datetime) -> bool:
        """Record a single-use value (a client assertion's `jti`) until `expires_at`; False if already recorded.

        A plain INSERT into `revoked_tokens` (primary key `jti`): of N concurrent callers on any replica exactly
        one commits and the others get a primary-key violation, on SQLite and PostgreSQL alike. (Unlike
        `revoke_access_token`, which silently keeps an existing row and so cannot tell the first use from a
        replay.) Keys are namespaced by the caller (`assertion:...`) so they never collide with access-token
        jtis; expired rows are purged on the way, as `revoke_access_token` does.
        """
        now = self._clock()
        try:
            async with self._sessions.begin() as session:
                await session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
                session.add(RevokedToken(jti=key, revoked_at=now, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    async def refresh_token_status(
        self, token_sha256: str
    ) -> tuple[RefreshFamilyRecord, datetime, datetime | None] | None:
        """(family, expires_at, used_at) of a refresh token, without consuming it (RFC 7662 introspection)."""
        async with self._reads() as session:
            token = await session.get(RefreshToken, token_sha256)
            if token is None:
                return None
            row = await session.get(RefreshFamily, token.family_id)
        if row is None:
            return None
        family = RefreshFamilyRecord(row.id, row.agent_id, row.user_id, row.scope, row.resource, row.revoked_at)
        return family, token.expires_at, token.used_at
