"""Agents and their grants, as the admin API and console change them (each change audited with its admin).

Over `IdentityAdmin` (the same operations the `mcp-hub agents|grants` commands run): this layer adds the admin who
asks (`Actor`), the audit row of each change, and what a page or API needs to read (the effective tool list).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.admin.identity import CreatedAgent, IdentityAdmin
from mcp_hub.db.identities import AgentRecord, IdentityStore

CatalogNames = Callable[[], Iterable[tuple[str, str]]]
"""Every (kind, public name) the catalog offers now."""


class AgentAdmin:
    """List, create, switch, rotate and delete agents; grant and revoke their patterns."""

    def __init__(
        self, identity: IdentityAdmin, identities: IdentityStore, catalog_names: CatalogNames, audit: AdminAudit
    ) -> None:
        self._identity = identity
        self._identities = identities
        self._catalog_names = catalog_names
        self._audit = audit

    async def list(self) -> list[AgentRecord]:
        return await self._identities.list_agents()

    async def get(self, name: str) -> AgentRecord:
        """The agent; `NotFoundError` if there is none of that name."""
        return await self._identities.agent_by_name(name)

    async def create(
        self,
        actor: Actor,
        name: str,
        grants: list[str],
        *,
        public: bool = False,
        redirect_uris: list[str] | None = None,
        owner: str | None = None,
    ) -> CreatedAgent:
        """A new agent; its secret (confidential agents) is in the result, once, and nowhere else."""
        async with self._audit.change(actor, "agents.create", name) as change:
            created = await self._identity.create_agent(
                name, grants, public=public, redirect_uris=redirect_uris, owner=owner
            )
            kind = "public" if public else "confidential"
            change.detail = f"{kind} client {created.agent.client_id}; grants: {' '.join(created.grants) or '-'}"
            return created

    async def set_enabled(self, actor: Actor, name: str, enabled: bool) -> AgentRecord:
        async with self._audit.change(actor, "agents.enable" if enabled else "agents.disable", name):
            await self._identity.set_agent_enabled(name, enabled)
        return await self.get(name)

    async def rotate_secret(self, actor: Actor, name: str) -> str:
        """A new client secret (the old one stops working at once); returned once, never audited."""
        async with self._audit.change(actor, "agents.rotate_secret", name) as change:
            secret = await self._identity.rotate_agent_secret(name)
            change.detail = "new client secret issued"
            return secret

    async def delete(self, actor: Actor, name: str) -> None:
        async with self._audit.change(actor, "agents.delete", name):
            await self._identity.delete_agent(name)

    async def grants(self, name: str) -> list[str]:
        return await self._identity.list_grants(name)

    async def grant(self, actor: Actor, name: str, pattern: str) -> bool:
        """Add `pattern` to the agent's grants; False if it had it already."""
        async with self._audit.change(actor, "grants.add", name) as change:
            added = await self._identity.add_grant(name, pattern)
            change.detail = f"{pattern}" + ("" if added else " (already granted)")
            return added

    async def revoke(self, actor: Actor, name: str, pattern: str) -> bool:
        """Remove `pattern` from the agent's grants; False if it did not have it."""
        async with self._audit.change(actor, "grants.remove", name) as change:
            removed = await self._identity.remove_grant(name, pattern)
            change.detail = f"{pattern}" + ("" if removed else " (was not granted)")
            return removed

    async def mint_token(
        self, actor: Actor, name: str, scope: str | None, *, audience: str | None, admin: bool
    ) -> dict[str, Any]:
        """A token for the agent without its secret (`IdentityAdmin.mint_token`); audited with its scope and
        audience, never the token."""
        async with self._audit.change(actor, "tokens.mint", name) as change:
            response = await self._identity.mint_token(name, scope, audience=audience, admin=admin)
            change.detail = f"scope {response.get('scope', '')!s}; audience {audience or 'the hub'}"
            return response

    async def effective(self, name: str) -> list[tuple[str, str]]:
        """The (kind, public name) pairs of the catalog the agent's grants allow now (issue 11 §8)."""
        return await self._identity.effective(name, self._catalog_names())
