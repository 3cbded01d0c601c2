"""`/admin/api/users` (who signs in to the pages) and `/admin/api/keys` (the token signing keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from mcp_hub.admin.services import AdminServices
from mcp_hub.credentials import MIN_PASSWORD_LENGTH
from mcp_hub.db.identities import UserRecord
from mcp_hub.db.keys import SigningKeyRecord
from mcp_hub.domain import Role
from mcp_hub.web.admin_api.agents import Name
from mcp_hub.web.admin_api.framework import Call, ListQuery, NoQuery, Operation, page


class UserOut(BaseModel):
    name: str
    role: Role
    enabled: bool
    created_at: datetime


def user_out(user: UserRecord) -> UserOut:
    return UserOut(name=user.name, role=user.role, enabled=user.enabled, created_at=user.created_at)


class UserList(BaseModel):
    items: list[UserOut]
    next: str | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    role: Role
    password: Annotated[str, Field(min_length=MIN_PASSWORD_LENGTH, max_length=1024)]


class RoleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class KeyOut(BaseModel):
    kid: str
    algorithm: str
    public_jwk: dict[str, Any]
    published_at: datetime
    signs_from: datetime
    retires_at: datetime | None


def key_out(key: SigningKeyRecord) -> KeyOut:
    """The public half only: the private JWK never leaves the database."""
    return KeyOut(
        kid=key.kid,
        algorithm=key.algorithm,
        public_jwk=key.public_jwk,
        published_at=key.published_at,
        signs_from=key.signs_from,
        retires_at=key.retires_at,
    )


class KeyList(BaseModel):
    items: list[KeyOut]


def operations(services: AdminServices) -> list[Operation]:
    users, keys = services.users, services.keys

    async def list_users(call: Call) -> UserList:
        items, next_key = page(await users.list(), lambda user: user.name, call.query)
        return UserList(items=[user_out(user) for user in items], next=next_key)

    async def create_user(call: Call) -> UserOut:
        body: UserCreate = call.body
        return user_out(await users.create(call.actor, body.name, body.role, body.password))

    async def get_user(call: Call) -> UserOut:
        return user_out(await users.get(call.path["name"]))

    async def set_user_role(call: Call) -> UserOut:
        body: RoleIn = call.body
        return user_out(await users.set_role(call.actor, call.path["name"], body.role))

    async def disable_user(call: Call) -> UserOut:
        return user_out(await users.set_enabled(call.actor, call.path["name"], False))

    async def enable_user(call: Call) -> UserOut:
        return user_out(await users.set_enabled(call.actor, call.path["name"], True))

    async def list_keys(call: Call) -> KeyList:
        del call
        return KeyList(items=[key_out(key) for key in await keys.list()])

    async def rotate_keys(call: Call) -> KeyOut:
        return key_out(await keys.rotate(call.actor))

    one = "/users/{name}"
    return [
        Operation("GET", "/users", list_users, "List users", "users", UserList, query=ListQuery),
        Operation(
            "POST", "/users", create_user, "Create a user", "users", UserOut, body=UserCreate, status=201, errors=(409,)
        ),
        Operation("GET", one, get_user, "One user", "users", UserOut, errors=(404,)),
        Operation(
            "PUT",
            one + "/role",
            set_user_role,
            "Set a user's role (their sessions end)",
            "users",
            UserOut,
            body=RoleIn,
            errors=(404, 409),
        ),
        Operation("POST", one + "/disable", disable_user, "Disable a user", "users", UserOut, errors=(404, 409)),
        Operation("POST", one + "/enable", enable_user, "Enable a user", "users", UserOut, errors=(404,)),
        Operation("GET", "/keys", list_keys, "Signing keys (public halves)", "keys", KeyList, query=NoQuery),
        Operation("POST", "/keys/rotate", rotate_keys, "Publish a new signing key", "keys", KeyOut, status=201),
    ]
