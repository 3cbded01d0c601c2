"""The agents pages: list and create, one agent's grants (picked from the catalog) and effective tools, its
secret rotated (shown once), disabled and enabled (issue 13 §2).

Every change goes through `mcp_hub.admin.agents.AgentAdmin`, the admin API's service (over the CLI's
`IdentityAdmin`: no second implementation), audited with the signed-in admin as its actor; this process's
decisions see it at once and the others' within `[auth] decision_cache_seconds`.

Destructive actions (disable, rotate the secret, remove a grant) take two steps without any script: the button
opens a confirmation page (`GET .../confirm?do=...`) whose form makes the change.

Routes: `GET /admin/agents`, `POST /admin/agents` (create; the secret is shown on the answer, once, never
stored), `GET /admin/agents/{name}`, `POST /admin/agents/{name}/grants`, `GET /admin/agents/{name}/confirm`,
`POST /admin/agents/{name}/{disable|enable|rotate|remove-grant}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.admin.agents import AgentAdmin
from mcp_hub.admin.changes import Actor
from mcp_hub.admin.limits import LimitAdmin
from mcp_hub.catalog.catalog import Catalog, CatalogEntry
from mcp_hub.console.base import ConsolePage, FieldErrors, see_other
from mcp_hub.db.identities import AgentRecord, IdentityStore
from mcp_hub.errors import ConflictError, InvalidInputError, NotFoundError
from mcp_hub.web.errors import Problem, problem_for
from mcp_hub.web.sessions import WebSession

AGENTS_PATH: Final = "/admin/agents"
_NAME_RULE: Final = "Use 1-64 lowercase letters, digits, '_', '.' or '-', starting with a letter or digit."


@dataclass(frozen=True, slots=True)
class Confirmation:
    """What a destructive action's confirmation page says and posts."""

    action: str
    question: str
    consequence: str
    button: str
    danger: bool = True


CONFIRMATIONS: Final = {
    "disable": Confirmation(
        "disable",
        "Disable agent {name}?",
        "Its tokens stop working within seconds and it can get no new ones until it is enabled again.",
        "Disable the agent",
    ),
    "rotate": Confirmation(
        "rotate",
        "Rotate the secret of agent {name}?",
        "The current secret stops working at once; the new one is shown once, on the next page.",
        "Rotate the secret",
    ),
    "remove-grant": Confirmation(
        "remove-grant",
        "Remove the grant {pattern} from agent {name}?",
        "Calls it allowed are refused within seconds.",
        "Remove the grant",
    ),
}


def tool_groups(tools: Sequence[CatalogEntry]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The grant picker's options: per connector, "every tool" first, then each tool (grant pattern, label)."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for entry in tools:
        options = groups.setdefault(entry.connector_id, [(f"tool:{entry.connector_id}__*", "every tool of it")])
        options.append((f"tool:{entry.public_name}", entry.public_name))
    return [(f"Connector {connector}", options) for connector, options in sorted(groups.items())]


_RATE_FIELDS: Final = {
    "per_agent": ("rate", "burst"),
    "per_agent_connector": ("connector_rate", "connector_burst"),
    "per_agent_tool": ("tool_rate", "tool_burst"),
}
"""Each rate limit of an agent (`AgentLimits`) and its pair of form fields: calls per second, burst."""
_LIMIT_FIELDS: Final = (*(field for pair in _RATE_FIELDS.values() for field in pair), "daily_calls", "monthly_calls")


def _limit_values(limits: dict[str, Any]) -> dict[str, str]:
    """The limits form's fields from an agent's own limits."""
    values: dict[str, str] = {}
    for limit, (rate, burst) in _RATE_FIELDS.items():
        bucket: dict[str, Any] = limits.get(limit) or {}
        values[rate], values[burst] = str(bucket.get("rate", "")), str(bucket.get("burst", ""))
    values["daily_calls"] = str(limits.get("daily_calls", ""))
    values["monthly_calls"] = str(limits.get("monthly_calls", ""))
    return values


def _limit_changes(values: dict[str, str]) -> tuple[dict[str, Any], FieldErrors]:
    """The changes the limits form asks for (None drops a limit), or the fields that are not numbers."""
    errors: FieldErrors = {}
    numbers: dict[str, float | None] = {}
    for name in _LIMIT_FIELDS:
        text = values[name]
        try:
            numbers[name] = float(text) if text else None
        except ValueError:
            errors[name] = "Enter a number, or leave it empty for no limit of its own."
    whole = ("daily_calls", "monthly_calls", *(burst for _, burst in _RATE_FIELDS.values()))
    for name in whole:
        number = numbers.get(name)
        if number is not None and (number != int(number) or number < 0):
            errors[name] = "Enter a whole number, 0 or more."
    for rate_field, burst_field in _RATE_FIELDS.values():
        if rate_field in errors or burst_field in errors:
            continue
        if (numbers[rate_field] is None) != (numbers[burst_field] is None):
            missing = rate_field if numbers[rate_field] is None else burst_field
            errors[missing] = "Give both the rate and the burst, or neither."
    if errors:
        return {}, errors
    changes: dict[str, Any] = {}
    for limit, (rate_field, burst_field) in _RATE_FIELDS.items():
        rate, burst = numbers[rate_field], numbers[burst_field]
        changes[limit] = None if rate is None or burst is None else {"rate": rate, "burst": int(burst)}
    daily, monthly = numbers["daily_calls"], numbers["monthly_calls"]
    changes["daily_calls"] = None if daily is None else int(daily)
    changes["monthly_calls"] = None if monthly is None else int(monthly)
    return changes, {}


def _field_of(problem: str) -> str:
    """The form field a refusal of `merged_limits` names (its message starts with the limit's path)."""
    for limit, (rate_field, burst_field) in _RATE_FIELDS.items():
        if problem.startswith(f"{limit}.burst"):
            return burst_field
        if problem.startswith((limit + ".", limit + ":")):
            return rate_field
    return next((name for name in ("daily_calls", "monthly_calls") if problem.startswith(name)), "rate")


class AgentPages:
    def __init__(
        self, page: ConsolePage, admin: AgentAdmin, limits: LimitAdmin, identities: IdentityStore, catalog: Catalog
    ) -> None:
        self._page = page
        self._admin = admin
        self._limits = limits
        self._identities = identities
        self._catalog = catalog

    async def _agent(self, request: Request, viewer: WebSession) -> AgentRecord | Response:
        try:
            return await self._admin.get(request.path_params["name"])
        except NotFoundError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=AGENTS_PATH)

    async def _posted(self, request: Request, viewer: WebSession) -> tuple[AgentRecord, dict[str, str]] | Response:
        """The agent a form was posted to and the form (same origin, CSRF-checked), or the page to show instead."""
        agent = await self._agent(request, viewer)
        if isinstance(agent, Response):
            return agent
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=f"{AGENTS_PATH}/{agent.name}")
        return agent, form

    async def index(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        agents = await self._admin.list()
        users = {user.id: user.name for user in await self._identities.list_users()}
        grants = {agent.name: await self._identities.grants_of(agent_id=agent.id) for agent in agents}
        context: dict[str, object] = {
            "agents": agents,
            "owners": users,
            "grants": grants,
            "errors": errors or {},
            "values": values or {},
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "agents.html", context, section="agents", status=status)

    async def create(self, request: Request, viewer: WebSession) -> Response:
        form = await self._page.form(request, viewer)
        if isinstance(form, Problem):
            return self._page.problem(request, viewer, form, back=AGENTS_PATH)
        name, owner = form.get("name", "").strip(), form.get("owner", "").strip()
        errors: FieldErrors = {}
        if not name:
            errors["name"] = "Enter a name. " + _NAME_RULE
        elif owner and await self._identities.user_by_name(owner) is None:
            errors["owner"] = f"There is no user {owner!r}."
        if not errors:
            try:
                created = await self._admin.create(Actor.user(viewer.user.name), name, [], owner=owner or None)
            except InvalidInputError:
                errors["name"] = _NAME_RULE
            except ConflictError:
                errors["name"] = f"An agent named {name!r} already exists."
            else:
                context: dict[str, object] = {"agent": created.agent, "secret": created.client_secret, "created": True}
                return self._page.render(request, viewer, "agent_secret.html", context, section="agents", status=201)
        return await self.index(request, viewer, errors=errors, values={"name": name, "owner": owner})

    async def detail(
        self,
        request: Request,
        viewer: WebSession,
        *,
        errors: FieldErrors | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        agent = await self._agent(request, viewer)
        if isinstance(agent, Response):
            return agent
        tools = self._catalog.tools.entries()
        granted = await self._admin.grants(agent.name)
        effective = await self._admin.effective(agent.name)
        owner = await self._identities.user_by_id(agent.owner_user_id) if agent.owner_user_id else None
        limits = await self._limits.own(agent.name)
        context: dict[str, object] = {
            "agent": agent,
            "owner": owner,
            "grants": granted,
            "effective": effective,
            "tools": tools,
            "tool_groups": tool_groups(tools),
            "errors": errors or {},
            "values": {**_limit_values(limits), **(values or {})},
            "limits": limits,
            "done": request.query_params.get("done"),
        }
        status = 400 if errors else 200
        return self._page.render(request, viewer, "agent.html", context, section="agents", status=status)

    async def set_limits(self, request: Request, viewer: WebSession) -> Response:
        """`POST /admin/agents/{name}/limits`: its own rate limit and quotas (a blank field drops that limit)."""
        posted = await self._posted(request, viewer)
        if isinstance(posted, Response):
            return posted
        agent, form = posted
        back = f"{AGENTS_PATH}/{agent.name}"
        values = {name: form.get(name, "").strip() for name in _LIMIT_FIELDS}
        changes, errors = _limit_changes(values)
        if not errors:
            try:
                await self._limits.set(Actor.user(viewer.user.name), agent.name, changes)
            except InvalidInputError as exc:
                errors = {_field_of(str(exc)): str(exc)}
            else:
                return see_other(f"{back}?done=limits")
        return await self.detail(request, viewer, errors=errors, values=values)

    async def add_grant(self, request: Request, viewer: WebSession) -> Response:
        posted = await self._posted(request, viewer)
        if isinstance(posted, Response):
            return posted
        agent, form = posted
        back = f"{AGENTS_PATH}/{agent.name}"
        typed = form.get("pattern", "").strip()
        pattern = typed or form.get("tool", "").strip()
        if not pattern:
            return await self.detail(request, viewer, errors={"pattern": "Pick a tool or type a pattern."})
        try:
            await self._admin.grant(Actor.user(viewer.user.name), agent.name, pattern)
        except InvalidInputError as exc:
            field = "pattern" if typed else "tool"
            return await self.detail(request, viewer, errors={field: str(exc)}, values={"pattern": typed})
        return see_other(f"{back}?done=granted")

    async def confirm(self, request: Request, viewer: WebSession) -> Response:
        agent = await self._agent(request, viewer)
        if isinstance(agent, Response):
            return agent
        confirmation = CONFIRMATIONS.get(request.query_params.get("do", ""))
        if confirmation is None:
            problem = Problem(404, "Not found", "There is no such action.")
            return self._page.problem(request, viewer, problem, back=f"{AGENTS_PATH}/{agent.name}")
        pattern = request.query_params.get("pattern", "")[:300]
        context: dict[str, object] = {
            "title": confirmation.question.format(name=agent.name, pattern=pattern),
            "consequence": confirmation.consequence,
            "button": confirmation.button,
            "danger": confirmation.danger,
            "action": f"{AGENTS_PATH}/{agent.name}/{confirmation.action}",
            "fields": {"pattern": pattern} if confirmation.action == "remove-grant" else {},
            "back": f"{AGENTS_PATH}/{agent.name}",
        }
        return self._page.render(request, viewer, "confirm.html", context, section="agents")

    async def act(self, request: Request, viewer: WebSession) -> Response:
        """`POST /admin/agents/{name}/{action}`: disable, enable, rotate, remove-grant."""
        posted = await self._posted(request, viewer)
        if isinstance(posted, Response):
            return posted
        agent, form = posted
        back = f"{AGENTS_PATH}/{agent.name}"
        action = request.path_params["action"]
        actor = Actor.user(viewer.user.name)
        try:
            if action in ("disable", "enable"):
                await self._admin.set_enabled(actor, agent.name, action == "enable")
                return see_other(f"{back}?done={action}d")
            if action == "remove-grant":
                await self._admin.revoke(actor, agent.name, form.get("pattern", ""))
                return see_other(f"{back}?done=removed")
            if action == "rotate":
                secret = await self._admin.rotate_secret(actor, agent.name)
                context: dict[str, object] = {"agent": agent, "secret": secret, "created": False}
                return self._page.render(request, viewer, "agent_secret.html", context, section="agents")
        except InvalidInputError as exc:
            return self._page.problem(request, viewer, problem_for(exc), back=back)
        return self._page.problem(request, viewer, Problem(404, "Not found", "There is no such action."), back=back)
