"""`OAuthStore`: the authorization server's short-lived artefacts.

Refresh token families and their tokens (RFC 6749 §6, rotated per OAuth 2.1 §4.3.1), authorization codes
(§4.1.2), consent requests waiting for a user's decision, revoked access tokens (RFC 7009) and used client
assertion ids (RFC 7523 §3 item 7). Secrets are kept only as SHA-256 digests of high-entropy values.

Single-use artefacts are consumed with one conditional `UPDATE ... WHERE used_at IS NULL` (or one INSERT that
a primary key makes unique): of N concurrent consumers on any replica exactly one wins, on SQLite and
PostgreSQL alike (threats T04, T07).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from mcp_hub.db._base import Store, columns_of, record_of, rowcount
from mcp_hub.db.models import (
    AuthorizationCode,
    ConsentRequest,
    RefreshFamily,
    RefreshToken,
    RevokedToken,
    UsedAssertion,
)
from mcp_hub.domain import AgentId, Consumption, UserId

RecordT = TypeVar("RecordT")


class Consumed(NamedTuple, Generic[RecordT]):
    """What consuming a single-use artefact found: the outcome, and the artefact unless it is unknown."""

    outcome: Consumption
    record: RecordT | None


@dataclass(frozen=True, slots=True)
class RefreshFamilyRecord:
    id: str
    agent_id: AgentId
    user_id: UserId | None
    scope: str
    resource: str
    revoked_at: datetime | None
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshTokenStatus:
    """A refresh token read without consuming it (RFC 7662 introspection)."""

    family: RefreshFamilyRecord
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, slots=True)
class AuthorizationCodeRecord:
    agent_id: AgentId
    user_id: UserId
    redirect_uri: str
    code_challenge: str
    scope: str
    resource: str
    expires_at: datetime
    family_id: str | None


def _family(row: RefreshFamily) -> RefreshFamilyRecord:
    return record_of(RefreshFamilyRecord, row)


def _code(row: AuthorizationCode) -> AuthorizationCodeRecord:
    return record_of(AuthorizationCodeRecord, row)


class OAuthStore(Store):
    """Refresh families and tokens, authorization codes, consent requests, revocations, used assertions."""

    # --- refresh tokens (RFC 6749 §6, rotation per OAuth 2.1 §4.3.1) -----------------------------------

    async def create_refresh_family(
        self, agent_id: AgentId, user_id: UserId | None, scope: str, resource: str, *, dpop_jkt: str | None = None
    ) -> RefreshFamilyRecord:
        """`dpop_jkt`: the family's refresh tokens are bound to that DPoP key (RFC 9449 §5)."""
        row = RefreshFamily(
            id=str(uuid.uuid4()),
            agent_id=agent_id,
            user_id=user_id,
            scope=scope,
            resource=resource,
            created_at=self._clock(),
            dpop_jkt=dpop_jkt,
        )
        await self._add(row)
        return _family(row)

    async def add_refresh_token(self, family_id: str, token_sha256: str, expires_at: datetime) -> None:
        await self._add(
            RefreshToken(
                token_sha256=token_sha256, family_id=family_id, created_at=self._clock(), expires_at=expires_at
            )
        )

    async def consume_refresh_token(self, token_sha256: str) -> Consumed[RefreshFamilyRecord]:
        """Mark a refresh token used, atomically.

        `FIRST_USE` for the one caller that consumed it; `REUSED` when it had already been used (the caller
        must revoke the family); `EXPIRED` or `REVOKED`; `UNKNOWN` (no record) for a token never issued.
        """
        now = self._clock()
        async with self._writes.begin() as session:
            result = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_sha256 == token_sha256, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            consumed = bool(rowcount(result))
            token = await session.get(RefreshToken, token_sha256)
            family_row = None if token is None else await session.get(RefreshFamily, token.family_id)
            if token is None or family_row is None:
                return Consumed(Consumption.UNKNOWN, None)
            family = _family(family_row)
            if not consumed:
                return Consumed(Consumption.REUSED, family)
            if family.revoked_at is not None:
                return Consumed(Consumption.REVOKED, family)
            if token.expires_at <= now:
                return Consumed(Consumption.EXPIRED, family)
            return Consumed(Consumption.FIRST_USE, family)

    async def bind_family_to_key(self, family_id: str, dpop_jkt: str) -> None:
        """Bind an unbound family's refresh tokens to a DPoP key (RFC 9449 §5: a public client proved one later)."""
        await self._change(
            update(RefreshFamily)
            .where(RefreshFamily.id == family_id, RefreshFamily.dpop_jkt.is_(None))
            .values(dpop_jkt=dpop_jkt)
        )

    async def revoke_family(self, family_id: str, reason: str) -> None:
        await self._change(
            update(RefreshFamily)
            .where(RefreshFamily.id == family_id, RefreshFamily.revoked_at.is_(None))
            .values(revoked_at=self._clock(), revoked_reason=reason)
        )

    async def family_of_refresh_token(self, token_sha256: str) -> RefreshFamilyRecord | None:
        status = await self.refresh_token_status(token_sha256)
        return None if status is None else status.family

    async def refresh_token_status(self, token_sha256: str) -> RefreshTokenStatus | None:
        """A refresh token's family, expiry and use, without consuming it."""
        async with self._reads() as session:
            token = await session.get(RefreshToken, token_sha256)
            if token is None:
                return None
            row = await session.get(RefreshFamily, token.family_id)
        if row is None:
            return None
        return RefreshTokenStatus(family=_family(row), expires_at=token.expires_at, used_at=token.used_at)

    async def revoked_families(self, family_ids: Sequence[str]) -> set[str]:
        if not family_ids:
            return set()
        revoked = RefreshFamily.revoked_at.is_not(None)
        return set(await self._every(select(RefreshFamily.id).where(RefreshFamily.id.in_(family_ids), revoked)))

    # --- access token revocation (RFC 7009) ---------------------------------------------------------------

    async def revoke_access_token(self, jti: str, expires_at: datetime) -> None:
        """Idempotent: revoking a token twice, or twice at once, leaves it revoked once."""
        now = self._clock()
        try:
            async with self._writes.begin() as session:
                await session.execute(delete(RevokedToken).where(RevokedToken.expires_at <= now))
                if await session.get(RevokedToken, jti) is None:
                    session.add(RevokedToken(jti=jti, revoked_at=now, expires_at=expires_at))
        except IntegrityError:
            pass  # a concurrent revocation of the same token won the insert

    async def is_access_token_revoked(self, jti: str) -> bool:
        return await self._get(RevokedToken, jti) is not None

    # --- client assertions (RFC 7523 §3 item 7: single use) -----------------------------------------------

    async def use_assertion_once(self, key: str, expires_at: datetime) -> bool:
        """Record the use of a client assertion (`key`: a digest of client id and `jti`) until `expires_at`;
        False if it was recorded before: a replay.

        A plain INSERT (primary key `key`): of N concurrent callers on any replica exactly one commits and the
        others get a primary-key violation, on SQLite and PostgreSQL alike. Expired rows are purged on the way.
        """
        now = self._clock()
        try:
            async with self._writes.begin() as session:
                await session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at <= now))
                session.add(UsedAssertion(key=key, used_at=now, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    # --- authorization codes (RFC 6749 §4.1.2: short-lived, single use) ----------------------------------

    async def add_authorization_code(self, code_sha256: str, code: AuthorizationCodeRecord) -> None:
        await self._add(AuthorizationCode(**columns_of(code, code_sha256=code_sha256, created_at=self._clock())))

    async def consume_authorization_code(self, code_sha256: str) -> Consumed[AuthorizationCodeRecord]:
        """`FIRST_USE` for the one caller that consumed it; `REUSED` on replay; `EXPIRED`; `UNKNOWN`."""
        now = self._clock()
        async with self._writes.begin() as session:
            result = await session.execute(
                update(AuthorizationCode)
                .where(AuthorizationCode.code_sha256 == code_sha256, AuthorizationCode.used_at.is_(None))
                .values(used_at=now)
            )
            consumed = bool(rowcount(result))
            row = await session.get(AuthorizationCode, code_sha256)
        if row is None:
            return Consumed(Consumption.UNKNOWN, None)
        record = _code(row)
        if not consumed:
            return Consumed(Consumption.REUSED, record)
        if row.expires_at <= now:
            return Consumed(Consumption.EXPIRED, record)
        return Consumed(Consumption.FIRST_USE, record)

    async def bind_code_to_family(self, code_sha256: str, family_id: str) -> None:
        """Remember which refresh family a code produced, so that a replay of the code can revoke it (T04)."""
        await self._change(
            update(AuthorizationCode).where(AuthorizationCode.code_sha256 == code_sha256).values(family_id=family_id)
        )

    # --- consent requests (an authorization request waiting for the user, T06) -----------------------------

    async def create_consent_request(
        self, id_sha256: str, user_id: UserId, agent_id: AgentId, parameters: dict[str, Any], expires_at: datetime
    ) -> None:
        await self._add(
            ConsentRequest(
                id_sha256=id_sha256,
                user_id=user_id,
                agent_id=agent_id,
                parameters=parameters,
                created_at=self._clock(),
                expires_at=expires_at,
            )
        )

    async def consume_consent_request(self, id_sha256: str, user_id: UserId) -> dict[str, Any] | None:
        """The request's parameters for the one caller that consumes it, as the user it was made for."""
        now = self._clock()
        async with self._writes.begin() as session:
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
            if not rowcount(result):
                return None
            row = await session.get(ConsentRequest, id_sha256)
        return None if row is None else dict(row.parameters)
