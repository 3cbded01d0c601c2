"""Agents, users and grants, as an admin manages them (the CLI; the admin API and console through `agents.py`).

Secrets are generated here and returned once; only their digests are stored. Every change that a decision
depends on tells the decision cache (`on_change`): this process sees it at once, the others within
`[auth] decision_cache_seconds`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from mcp_hub.authz import scopes
from mcp_hub.authz.granting import ScopeGranter
from mcp_hub.authz.private_key_jwt import parse_client_jwks
from mcp_hub.authz.tokens import TokenService
from mcp_hub.credentials import CLIENT_SECRET_PREFIX, hash_password, new_secret, sha256_hex
from mcp_hub.db.identities import AgentRecord, ClientMetadata, IdentityStore, NewAgent, UserRecord
from mcp_hub.domain import AgentId, AgentSource, ClientAuthMethod, ClientId, GrantType, Role, UserId
from mcp_hub.errors import InvalidInputError, NotFoundError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInputError(f"{kind} name {name!r}: use 1-64 lowercase letters, digits, '_', '.', '-'")
    return name


def _patterns(grants: list[str]) -> list[str]:
    return [scopes.validate_pattern(pattern) for pattern in grants]


@dataclass(frozen=True, slots=True)
class CreatedAgent:
    agent: AgentRecord
    client_secret: str | None
    grants: tuple[str, ...]


class IdentityAdmin:
    """What an admin does to identities: create and switch agents and users, grant, mint tokens."""

    def __init__(
        self,
        identities: IdentityStore,
        granter: ScopeGranter,
        tokens: TokenService,
        *,
        on_change: Callable[[], None],
    ) -> None:
        self._identities = identities
        self._granter = granter
        self._tokens = tokens
        self._on_change = on_change

    async def create_agent(
        self,
        name: str,
        grants: list[str],
        *,
        public: bool = False,
        redirect_uris: list[str] | None = None,
        owner: str | None = None,
    ) -> CreatedAgent:
        """A confidential agent (client credentials, secret shown once) or a public one (authorization code).

        `owner` names the user responsible for the agent: that user may never approve the agent's actions.
        """
        _check_name("agent", name)
        patterns = _patterns(grants)
        owner_id = None if owner is None else (await self._user(owner)).id
        secret = None if public else new_secret(CLIENT_SECRET_PREFIX)
        metadata = ClientMetadata(
            auth_method=ClientAuthMethod.NONE if public else ClientAuthMethod.CLIENT_SECRET_BASIC,
            redirect_uris=tuple(redirect_uris or ()),
            grant_types=(
                (GrantType.AUTHORIZATION_CODE, GrantType.REFRESH_TOKEN) if public else (GrantType.CLIENT_CREDENTIALS,)
            ),
            display_name=name,
        )
        return await self._create(name, patterns, metadata, secret=secret, owner_id=owner_id)

    async def create_key_agent(self, name: str, grants: list[str], jwks: dict[str, Any]) -> CreatedAgent:
        """A machine agent that authenticates with a key pair (`private_key_jwt`, RFC 7523 §2.2) instead of a
        secret: the hub keeps only its public keys, so nothing it holds lets someone else act as the agent."""
        _check_name("agent", name)
        patterns = _patterns(grants)
        metadata = ClientMetadata(
            auth_method=ClientAuthMethod.PRIVATE_KEY_JWT,
            jwks=parse_client_jwks(jwks),
            grant_types=(GrantType.CLIENT_CREDENTIALS,),
            display_name=name,
        )
        return await self._create(name, patterns, metadata, secret=None, owner_id=None)

    async def _create(
        self,
        name: str,
        patterns: list[str],
        metadata: ClientMetadata,
        *,
        secret: str | None,
        owner_id: UserId | None,
    ) -> CreatedAgent:
        agent = await self._identities.create_agent(
            NewAgent(
                name=name,
                client_id=ClientId("agt_" + secrets.token_urlsafe(16)),
                source=AgentSource.ADMIN,
                metadata=metadata,
                secret_sha256=None if secret is None else sha256_hex(secret),
                owner_user_id=owner_id,
            )
        )
        for pattern in patterns:
            await self._identities.add_grant(pattern, agent_id=agent.id)
        self._on_change()
        return CreatedAgent(agent=agent, client_secret=secret, grants=tuple(sorted(set(patterns))))

    async def rotate_agent_secret(self, name: str) -> str:
        agent = await self._identities.agent_by_name(name)
        if agent.is_public:
            raise InvalidInputError(f"agent {name!r} is a public client: it has no secret")
        secret = new_secret(CLIENT_SECRET_PREFIX)
        await self._identities.set_agent_secret(name, sha256_hex(secret))
        return secret

    async def set_agent_enabled(self, name: str, enabled: bool) -> None:
        await self._identities.set_agent_enabled(name, enabled)
        self._on_change()

    async def delete_agent(self, name: str) -> None:
        """Delete the agent with its grants, own limits and approval actions; its tokens die with it."""
        await self._identities.delete_agent(name)
        self._on_change()

    async def set_agent_owner(self, name: str, owner: str | None) -> None:
        """Name the user responsible for the agent (who may then never approve its actions)."""
        owner_id = None if owner is None else (await self._user(owner)).id
        await self._identities.set_agent_owner(name, owner_id)

    async def add_grant(self, subject: str, pattern: str) -> bool:
        agent_id, user_id = await self._subject(subject)
        (checked,) = _patterns([pattern])
        added = await self._identities.add_grant(checked, agent_id=agent_id, user_id=user_id)
        self._on_change()
        return added

    async def remove_grant(self, subject: str, pattern: str) -> bool:
        agent_id, user_id = await self._subject(subject)
        removed = await self._identities.remove_grant(pattern, agent_id=agent_id, user_id=user_id)
        self._on_change()
        return removed

    async def effective(self, subject: str, names: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Which of the catalog's (kind, public name) pairs the subject's grants allow now (issue 11 §8)."""
        granted = await self.list_grants(subject)
        return [(kind, name) for kind, name in names if scopes.any_matches(granted, kind, name)]

    async def list_grants(self, subject: str) -> list[str]:
        agent_id, user_id = await self._subject(subject)
        return await self._identities.grants_of(agent_id=agent_id, user_id=user_id)

    async def create_user(self, name: str, role: Role, password: str) -> UserRecord:
        _check_name("user", name)
        return await self._identities.create_user(name, Role(role), hash_password(password))

    async def set_user_enabled(self, name: str, enabled: bool) -> None:
        """Disabling a user ends their web sessions at once; tokens acting for them are refused by this process
        at once and by every other within `auth.decision_cache_seconds`; their refresh tokens stop refreshing."""
        await self._identities.set_user_enabled(name, enabled)
        self._on_change()

    async def set_user_role(self, name: str, role: Role) -> None:
        """A new role; the user's web sessions end, so no page keeps the old role's powers."""
        await self._identities.set_user_role(name, Role(role))
        self._on_change()

    async def set_user_password(self, name: str, password: str) -> None:
        """A new password (the same rules as at creation); the user's open web sessions end."""
        await self._identities.reset_user_password(name, hash_password(password))

    async def mint_token(
        self, name: str, scope: str | None = None, *, audience: str | None = None, admin: bool = False
    ) -> dict[str, Any]:
        """A client-credentials token for an agent, issued without its secret (for scripts and tests); for the
        hub's MCP URL, or `audience` (a virtual server's URL, or with `admin` the admin API's, already accepted by
        `OAuthUrls.accept_resource`), decided as the token endpoint decides it."""
        agent = await self._identities.agent_by_name(name)
        if not agent.enabled:
            raise InvalidInputError(f"agent {name!r} is disabled")
        granted = await self._granter.for_agent(agent, scope, admin=admin)
        return self._tokens.token_response(agent.client_id, granted, audience=audience)

    async def _user(self, name: str) -> UserRecord:
        user = await self._identities.user_by_name(name)
        if user is None:
            raise NotFoundError(f"no user named {name!r}")
        return user

    async def _subject(self, subject: str) -> tuple[AgentId | None, UserId | None]:
        """(agent id, user id) for `NAME` (an agent) or `user:NAME`."""
        if subject.startswith("user:"):
            return None, (await self._user(subject.removeprefix("user:"))).id
        return (await self._identities.agent_by_name(subject)).id, None
