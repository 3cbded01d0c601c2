"""The users pages: list, create (name, role, password), disable (after a confirmation page) and enable.

Changes go through `mcp_hub.admin.users.UserAdmin`, the admin API's service, audited with the signed-in admin as
actor. Disabling a user ends their web sessions at once. An admin cannot disable or demote themself (the service
refuses: a hub keeps an admin who can undo it). Passwords are hashed with Argon2id, as for `mcp-hub users create`.

Routes: `GET /admin/users`, `POST /admin/users`, `GET /admin/users/{name}/confirm?do=disable`,
`POST /admin/users/{name}/{disable|enable|role}`.
"""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.changes import Actor
from mcp_hub.admin.users import UserAdmin
from mcp_hub.console.base import ConsolePage, FieldErrors, see_other
from mcp_hub.credentials import MIN_PASSWORD_LENGTH
from mcp_hub.domain import Role
from mcp_hub.errors import ConflictError, InvalidInputError, NotFoundError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.sessions import WebSession

USERS_PATH: Final = "/admin/users"
_NAME_RULE: Final = "Use 1-64 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit."


class UserPages:
    def __init__(self, page: ConsolePage, admin: UserAdmin) -> None:
        self._page = page
        self._admin = admin

    async def index(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        context: dict[str, object] = {
            "users": await self._admin.list(),
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
                await self._admin.create(Actor.user(viewer.user.name), name, Role(role), password)
            except InvalidInputError:
                errors["name"] = _NAME_RULE
            except ConflictError:
                errors["name"] = f"A user named {name!r} already exists."
            else:
                return see_other(f"{USERS_PATH}?done=created")
        return await self.index(request, viewer, errors=errors, values={"name": name, "role": role})

    async def confirm(self, request: Request, viewer: WebSession) -> Response:
        name = request.path_params["name"]
        try:
            user = await self._admin.get(name)
        except NotFoundError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=USERS_PATH)
        if request.query_params.get("do") != "disable":
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
        actor = Actor.user(viewer.user.name)
        try:
            if action in ("disable", "enable"):
                await self._admin.set_enabled(actor, name, action == "enable")
                return see_other(f"{USERS_PATH}?done={action}d")
            if action == "role":
                role = form.get("role", "")
                if role not in {member.value for member in Role}:
                    return await self.index(request, viewer, errors={f"role-{name}": "Choose admin or approver."})
                await self._admin.set_role(actor, name, Role(role))
                return see_other(f"{USERS_PATH}?done=role")
        except (NotFoundError, ConflictError) as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=USERS_PATH)
        return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such action."))
