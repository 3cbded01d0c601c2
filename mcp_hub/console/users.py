"""The users pages: list, create (name, role, password), disable (after a confirmation page) and enable.

Changes go through `mcp_hub.admin.identity.IdentityAdmin`, as the CLI's do. Disabling a user ends their web
sessions at once. An admin cannot disable themself here (they would lock themself out mid-page; the CLI can).
Passwords are hashed with Argon2id by `IdentityAdmin.create_user`, as for `mcp-hub users create`.

Routes: `GET /admin/users`, `POST /admin/users`, `GET /admin/users/{name}/confirm?do=disable`,
`POST /admin/users/{name}/{disable|enable}`.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.identity import IdentityAdmin
from mcp_hub.console.base import ConsolePage, FieldErrors, see_other
from mcp_hub.credentials import MIN_PASSWORD_LENGTH
from mcp_hub.db.identities import IdentityStore
from mcp_hub.domain import Role
from mcp_hub.errors import ConflictError, InvalidInputError, NotFoundError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.sessions import WebSession

USERS_PATH: Final = "/admin/users"
_NAME_RULE: Final = "Use 1-64 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit."


class UserPages:
    def __init__(self, page: ConsolePage, admin: IdentityAdmin, identities: IdentityStore) -> None:
        self._page = page
        self._admin = admin
        self._identities = identities

    async def index(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        context: dict[str, object] = {
            "users": await self._identities.list_users(),
            "roles": [role.value for role in Role],
            "errors": errors or {},
            "values": values or {},
            "min_password": MIN_PASSWORD_LENGTH,
            "done": request.query_params.get("done"),
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "users.html", context, section="users", status=status)

    async def create(self, request: Request, viewer: WebSession) -> Response:
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=USERS_PATH)
        name, role, password = form.get("name", "").strip(), form.get("role", ""), form.get("password", "")
        errors: FieldErrors = {}
        if not name:
            errors["name"] = "Enter a name. " + _NAME_RULE
        if role not in {member.value for member in Role}:
            errors["role"] = "Choose admin or approver."
        if len(password) < MIN_PASSWORD_LENGTH:
            errors["password"] = f"A password needs at least {MIN_PASSWORD_LENGTH} characters."
        if not errors:
            try:
                await self._admin.create_user(name, Role(role), password)
            except InvalidInputError:
                errors["name"] = _NAME_RULE
            except ConflictError:
                errors["name"] = f"A user named {name!r} already exists."
            else:
                return see_other(f"{USERS_PATH}?done=created")
        return await self.index(request, viewer, errors=errors, values={"name": name, "role": role})

    async def confirm(self, request: Request, viewer: WebSession) -> Response:
        name = request.path_params["name"]
        user = await self._identities.user_by_name(name)
        if user is None or request.query_params.get("do") != "disable":
            return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such user or action."))
        context: dict[str, object] = {
            "title": f"Disable user {user.name}?",
            "consequence": "They are signed out at once and cannot sign in; tokens acting for them stop working.",
            "button": "Disable the user",
            "danger": True,
            "action": f"{USERS_PATH}/{user.name}/disable",
            "fields": {},
            "back": USERS_PATH,
        }
        return self._page.render(request, viewer, "confirm.html", context, section="users")

    async def act(self, request: Request, viewer: WebSession) -> Response:
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=USERS_PATH)
        name, action = request.path_params["name"], request.path_params["action"]
        if action not in ("disable", "enable"):
            return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such action."))
        if name == viewer.user.name:
            refusal = Problem(400, "Refused", "You cannot disable or enable yourself here.")
            return self._page.problem(request, viewer, refusal, back=USERS_PATH)
        try:
            await self._admin.set_user_enabled(name, action == "enable")
        except NotFoundError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=USERS_PATH)
        return see_other(f"{USERS_PATH}?done={action}d")
