"""Agents, users and grants, as an admin manages them.

Secrets are generated here and returned once; only their digests are stored. Every change clears this
process's decision cache; other processes see it within `auth.decision_cache_seconds`.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from mcp_hub.authz import scopes
from mcp_hub.authz._random import new_secret, sha256_hex
from mcp_hub.authz.passwords import hash_password
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord, NewAgent, UserRecord
from mcp_hub.errors import NotFoundError

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SECRET_PREFIX = "mcphs_"  # noqa: S105 - a recognisable prefix for leaked-secret scanners, not a secret


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} name {name!r}: use 1-64 lowercase letters, digits, '_', '.', '-'")
    return name


@dataclass(frozen=True, slots=True)
class CreatedAgent:
    agent: AgentRecord
    client_secret: str | None
    grants: tuple[str, ...]


async def create_agent(
    service: AuthService,
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
    patterns = [scopes.validate_pattern(pattern) for pattern in grants]
    owner_id: str | None = None
    if owner is not None:
        owner_record = await service.store.user_by_name(owner)
        if owner_record is None:
            raise NotFoundError(f"no user named {owner!r}")
        owner_id = owner_record.id
    secret = None if public else new_secret(SECRET_PREFIX)
    agent = await service.store.create_agent(
        NewAgent(
            name=name,
            client_id="agt_" + secrets.token_urlsafe(16),
            source="admin",
            auth_method="none" if public else "client_secret_basic",
            secret_sha256=None if secret is None else sha256_hex(secret),
            redirect_uris=tuple(redirect_uris or ()),
            grant_types=("authorization_code", "refresh_token") if public else ("client_credentials",),
            display_name=name,
            owner_user_id=owner_id,
        )
    )
    for pattern in patterns:
        await service.store.add_grant(pattern, agent_id=agent.id)
    service.decider.forget()
    return CreatedAgent(agent=agent, client_secret=secret, grants=tuple(sorted(set(patterns))))


async def rotate_agent_secret(service: AuthService, name: str) -> str:
    agent = await service.store.agent_by_name(name)
    if agent.is_public:
        raise ValueError(f"agent {name!r} is a public client: it has no secret")
    secret = new_secret(SECRET_PREFIX)
    await service.store.set_agent_secret(name, sha256_hex(secret))
    return secret


async def set_agent_enabled(service: AuthService, name: str, enabled: bool) -> None:
    await service.store.set_agent_enabled(name, enabled)
    service.decider.forget()


async def _subject(service: AuthService, subject: str) -> tuple[str | None, str | None]:
    """(agent id, user id) for `NAME` (an agent) or `user:NAME`."""
    if subject.startswith("user:"):
        user = await service.store.user_by_name(subject.removeprefix("user:"))
        if user is None:
            raise NotFoundError(f"no user named {subject.removeprefix('user:')!r}")
        return None, user.id
    return (await service.store.agent_by_name(subject)).id, None


async def add_grant(service: AuthService, subject: str, pattern: str) -> bool:
    agent_id, user_id = await _subject(service, subject)
    added = await service.store.add_grant(scopes.validate_pattern(pattern), agent_id=agent_id, user_id=user_id)
    service.decider.forget()
    return added


async def remove_grant(service: AuthService, subject: str, pattern: str) -> bool:
    agent_id, user_id = await _subject(service, subject)
    removed = await service.store.remove_grant(pattern, agent_id=agent_id, user_id=user_id)
    service.decider.forget()
    return removed


async def list_grants(service: AuthService, subject: str) -> list[str]:
    agent_id, user_id = await _subject(service, subject)
    return await service.store.grants_of(agent_id=agent_id, user_id=user_id)


async def create_user(service: AuthService, name: str, role: str, password: str) -> UserRecord:
    _check_name("user", name)
    return await service.store.create_user(name, role, hash_password(password))


async def set_user_enabled(service: AuthService, name: str, enabled: bool) -> None:
    """Disabling a user ends their web sessions at once; tokens acting for them are refused by this process
    at once and by every other within `auth.decision_cache_seconds`; their refresh tokens stop refreshing."""
    await service.store.set_user_enabled(name, enabled)
    service.decider.forget()


async def set_user_password(service: AuthService, name: str, password: str) -> None:
    """A new password (the same rules as at creation); the user's open web sessions end."""
    await service.store.reset_user_password(name, hash_password(password))


async def mint_token(service: AuthService, name: str, scope: str | None = None) -> dict[str, object]:
    """A client-credentials token for an agent, issued without its secret (for scripts and tests)."""
    agent = await service.store.agent_by_name(name)
    if not agent.enabled:
        raise ValueError(f"agent {name!r} is disabled")
    granted = await service.granted_scopes(agent, None, scope)
    return service.access_token_response(agent, granted)
