"""The admin JSON API under `/admin/api/` (issue 13 §1; docs/admin-api.md), with its OpenAPI document.

Every operation is a call of an admin service (`mcp_hub.admin.services.AdminServices`, shared with the console),
behind one access check (`access.AdminAccess`: an admin's web session, CSRF-checked on writes, or an admin token
on the admin API's own audience) and declared once (`framework.Operation`): the routes and the OpenAPI 3.1
document at `/admin/api/openapi.json` are both made from the declarations.

- `agents`: agents, grants, effective tools, own limits;
- `users`: users and signing keys;
- `catalog`: connectors (files the live reload picks up), the review queue, virtual servers, approval rules;
- `audit`: the audit trail (filters, pages, JSON lines export) and usage per agent per day.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from mcp_hub.admin.services import AdminServices
from mcp_hub.authz.urls import ADMIN_API_PATH
from mcp_hub.web.admin_api import agents, audit, catalog, users
from mcp_hub.web.admin_api.framework import Access, AdminApi


def admin_api(services: AdminServices, access: Access) -> AdminApi:
    """Every operation of the admin API."""
    return AdminApi(
        prefix=ADMIN_API_PATH,
        access=access,
        operations=[
            *agents.operations(services),
            *users.operations(services),
            *catalog.operations(services),
            *audit.operations(services),
        ],
    )


def admin_api_routes(services: AdminServices, access: Access) -> list[BaseRoute]:
    return admin_api(services, access).routes()
