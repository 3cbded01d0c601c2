"""The hub's users (who sign in to the pages), as the admin API and console change them, each change audited."""

from __future__ import annotations

from mcp_hub.admin.changes import Actor, AdminAudit
from mcp_hub.admin.identity import IdentityAdmin
from mcp_hub.db.identities import IdentityStore, UserRecord
from mcp_hub.domain import Role
from mcp_hub.errors import ConflictError, NotFoundError


class UserAdmin:
    """List, create, change the role of, disable and enable users. An admin cannot disable or demote themselves
    (a hub must keep an admin who can undo it)."""

    def __init__(self, identity: IdentityAdmin, identities: IdentityStore, audit: AdminAudit) -> None:
        self._identity = identity
        self._identities = identities
        self._audit = audit

    async def list(self) -> list[UserRecord]:
        return await self._identities.list_users()

    async def get(self, name: str) -> UserRecord:
        user = await self._identities.user_by_name(name)
        if user is None:
            raise NotFoundError(f"no user named {name!r}")
        return user

    async def create(self, actor: Actor, name: str, role: Role, password: str) -> UserRecord:
        """A new user with `password` (Argon2id-hashed; the password is never audited)."""
        async with self._audit.change(actor, "users.create", name) as change:
            user = await self._identity.create_user(name, role, password)
            change.detail = f"role {user.role}"
            return user

    async def set_role(self, actor: Actor, name: str, role: Role) -> UserRecord:
        async with self._audit.change(actor, "users.set_role", name) as change:
            self._refuse_self(actor, name, "change your own role")
            await self._identity.set_user_role(name, role)
            change.detail = f"role {role}"
        return await self.get(name)

    async def set_enabled(self, actor: Actor, name: str, enabled: bool) -> UserRecord:
        async with self._audit.change(actor, "users.enable" if enabled else "users.disable", name):
            if not enabled:
                self._refuse_self(actor, name, "disable yourself")
            await self._identity.set_user_enabled(name, enabled)
        return await self.get(name)

    async def set_password(self, actor: Actor, name: str, password: str) -> None:
        """A new password (never audited); the user's open web sessions end."""
        async with self._audit.change(actor, "users.set_password", name) as change:
            await self._identity.set_user_password(name, password)
            change.detail = "password replaced; web sessions ended"

    @staticmethod
    def _refuse_self(actor: Actor, name: str, what: str) -> None:
        if actor == Actor.user(name):
            raise ConflictError(f"you cannot {what}: ask another admin")
