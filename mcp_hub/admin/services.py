"""Every admin operation, one service per resource: what the admin API (`mcp_hub.web.admin_api`) and the console
call, built once by the composition root (`runtime.admin_services`). Each change takes the `Actor` who asks and
leaves an audit row naming them (`mcp_hub.admin.changes`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mcp_hub.admin.agents import AgentAdmin
from mcp_hub.admin.audit_log import AuditLog
from mcp_hub.admin.changes import AdminAudit
from mcp_hub.admin.connectors import ConnectorAdmin
from mcp_hub.admin.limits import LimitAdmin
from mcp_hub.admin.review import CatalogReview
from mcp_hub.admin.signing_keys import KeyAdmin
from mcp_hub.admin.users import UserAdmin
from mcp_hub.config.settings import ApprovalRule
from mcp_hub.config.virtual import VirtualServerSpec


@dataclass(frozen=True, slots=True)
class AdminServices:
    """The admin side of one hub process. Approval rules and virtual servers are configuration files
    (`config.toml`, `virtual/<name>.toml`), read here, changed by editing those files."""

    audit: AdminAudit
    agents: AgentAdmin
    users: UserAdmin
    connectors: ConnectorAdmin
    review: CatalogReview
    keys: KeyAdmin
    limits: LimitAdmin
    audit_log: AuditLog
    approval_rules: Sequence[ApprovalRule]
    virtual_servers: Callable[[], Sequence[VirtualServerSpec]]
