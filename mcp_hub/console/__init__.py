"""The admin console: server-rendered pages under `/admin` for users with the `admin` role (issue 13 §2, §8).

Pages: the dashboard (`dashboard`), connectors and the review queue of their definitions (`connectors`, `diff`),
agents and their grants (`agents`), users (`users`), the audit viewer and usage per agent per day (`audit`), the
approval rules (`rules`), the virtual servers (`virtual`), the signing keys (`keys`). Charts are SVG drawn on the
server (`charts`): no script, no external library. Docs: docs/console.md.

The console sits above the front doors (`web`, `admin`): it renders with the web pages' templates, sessions and
security headers, and changes things only through the admin services of `mcp_hub.admin` (the CLI's and the
admin API's), never through a second implementation. Every route is behind `RequireRole({admin})`; every form is
a same-origin POST with the session's CSRF token (`base.ConsolePage.form`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.routing import BaseRoute

from mcp_hub.admin.services import AdminServices
from mcp_hub.approvals.service import ApprovalService
from mcp_hub.catalog.catalog import Catalog
from mcp_hub.catalog.virtual import VirtualView
from mcp_hub.console.agents import AGENTS_PATH, AgentPages
from mcp_hub.console.audit import AUDIT_PATH, USAGE_PATH, AuditPages
from mcp_hub.console.base import ADMIN_PATH, NOT_AN_ADMIN, ConsolePage
from mcp_hub.console.connectors import CONNECTORS_PATH, REVIEW_PATH, ConnectorPages
from mcp_hub.console.dashboard import DashboardPage
from mcp_hub.console.keys import KEYS_PATH, KeyPages
from mcp_hub.console.rules import RulePages
from mcp_hub.console.users import USERS_PATH, UserPages
from mcp_hub.console.virtual import VIRTUAL_PATH, VirtualPages
from mcp_hub.db.audit_query import AuditQueryStore
from mcp_hub.db.catalog import CatalogStore
from mcp_hub.db.dashboard import DashboardStore
from mcp_hub.db.identities import IdentityStore
from mcp_hub.db.pins import PinStore
from mcp_hub.domain import Role
from mcp_hub.downstream.pool import DownstreamPool
from mcp_hub.web.access import RequireRole
from mcp_hub.web.pages import PageRefusals, Pages, page_route
from mcp_hub.web.sessions import WebSessions


@dataclass(frozen=True, slots=True)
class ConsoleParts:
    """What the console reads and whom it asks to change things (built by `mcp_hub.runtime`)."""

    pages: Pages
    sessions: WebSessions
    admin: AdminServices
    identities: IdentityStore
    catalog: Catalog
    catalog_store: CatalogStore
    pins: PinStore
    dashboard: DashboardStore
    audit: AuditQueryStore
    pool: DownstreamPool
    approvals: ApprovalService
    virtual_views: Mapping[str, VirtualView]
    virtual_url: Callable[[str], str]
    """A virtual server's MCP URL, by name."""


def console_routes(parts: ConsoleParts) -> list[BaseRoute]:
    """Every page and form of the console, each behind the admin check."""
    admin = RequireRole(parts.sessions, {Role.ADMIN}, PageRefusals(parts.pages, NOT_AN_ADMIN))
    page = ConsolePage(parts.pages, parts.sessions)
    dashboard = DashboardPage(page, parts.dashboard, parts.pool, parts.approvals, parts.pins)
    connectors = ConnectorPages(
        page,
        parts.pool,
        parts.catalog,
        parts.catalog_store,
        parts.pins,
        parts.admin.connectors,
        parts.admin.review,
    )
    agents = AgentPages(page, parts.admin.agents, parts.admin.limits, parts.identities, parts.catalog)
    users = UserPages(page, parts.admin.users)
    rules = RulePages(page, parts.admin.approval_rules)
    virtual = VirtualPages(page, parts.virtual_views, parts.virtual_url)
    audit = AuditPages(page, parts.audit)
    keys = KeyPages(page, parts.admin.keys)
    get, post = ["GET"], ["POST"]
    return [
        page_route(ADMIN_PATH, admin(dashboard.show), get),
        page_route(CONNECTORS_PATH, admin(connectors.index), get),
        page_route(CONNECTORS_PATH, admin(connectors.add), post),
        page_route(f"{CONNECTORS_PATH}/{{connector_id}}", admin(connectors.detail), get),
        page_route(f"{CONNECTORS_PATH}/{{connector_id}}/confirm", admin(connectors.confirm), get),
        page_route(f"{CONNECTORS_PATH}/{{connector_id}}/edit", admin(connectors.edit), post),
        page_route(f"{CONNECTORS_PATH}/{{connector_id}}/{{action}}", admin(connectors.act), post),
        page_route(REVIEW_PATH, admin(connectors.review), get),
        page_route(f"{REVIEW_PATH}/definition", admin(connectors.definition), get),
        page_route(f"{REVIEW_PATH}/decision", admin(connectors.decide), post),
        page_route(AGENTS_PATH, admin(agents.index), get),
        page_route(AGENTS_PATH, admin(agents.create), post),
        page_route(f"{AGENTS_PATH}/{{name}}", admin(agents.detail), get),
        page_route(f"{AGENTS_PATH}/{{name}}/grants", admin(agents.add_grant), post),
        page_route(f"{AGENTS_PATH}/{{name}}/limits", admin(agents.set_limits), post),
        page_route(f"{AGENTS_PATH}/{{name}}/confirm", admin(agents.confirm), get),
        page_route(f"{AGENTS_PATH}/{{name}}/{{action}}", admin(agents.act), post),
        page_route(USERS_PATH, admin(users.index), get),
        page_route(USERS_PATH, admin(users.create), post),
        page_route(f"{USERS_PATH}/{{name}}/confirm", admin(users.confirm), get),
        page_route(f"{USERS_PATH}/{{name}}/{{action}}", admin(users.act), post),
        page_route(AUDIT_PATH, admin(audit.audit), get),
        page_route(USAGE_PATH, admin(audit.usage), get),
        page_route(f"{ADMIN_PATH}/rules", admin(rules.index), get),
        page_route(VIRTUAL_PATH, admin(virtual.index), get),
        page_route(KEYS_PATH, admin(keys.index), get),
        page_route(f"{KEYS_PATH}/confirm", admin(keys.confirm), get),
        page_route(f"{KEYS_PATH}/rotate", admin(keys.rotate), post),
    ]
