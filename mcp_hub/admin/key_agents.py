"""Machine agents that authenticate with a key pair (`private_key_jwt`, RFC 7523 §2.2) instead of a secret.

The admin registers the agent's public keys (a JWK Set); the agent keeps the private key and signs a short
client assertion for each token request, so the hub never holds anything that would let someone else act as
the agent. Preferred by MCP's client-credentials extension over shared secrets.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from mcp_hub.admin.identity import CreatedAgent
from mcp_hub.authz import scopes
from mcp_hub.authz.private_key_jwt import parse_client_jwks
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import NewAgent

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


async def create_key_agent(service: AuthService, name: str, grants: list[str], jwks: dict[str, Any]) -> CreatedAgent:
    """An agent for `client_credentials` with `private_key_jwt`; ValueError on a bad name, grant or key set."""
    if not _NAME.match(name):
        raise ValueError(f"agent name {name!r}: use 1-64 lowercase letters, digits, '_', '.', '-'")
    patterns = [scopes.validate_pattern(pattern) for pattern in grants]
    agent = await service.store.create_agent(
        NewAgent(
            name=name,
            client_id="agt_" + secrets.token_urlsafe(16),
            source="admin",
            auth_method="private_key_jwt",
            jwks=parse_client_jwks(jwks),
            grant_types=("client_credentials",),
            display_name=name,
        )
    )
    for pattern in patterns:
        await service.store.add_grant(pattern, agent_id=agent.id)
    service.decider.forget()
    return CreatedAgent(agent=agent, client_secret=None, grants=tuple(sorted(set(patterns))))
