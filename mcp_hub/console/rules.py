"""`GET /admin/rules`: the approval rules as configured (`[[approvals.rules]]` in config.toml), read-only.

Rules are configuration, changed by editing the file and restarting (or by the admin API where it offers them):
the page shows each rule's matchers, conditions and approvers, in the order the hub applies them.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.config.settings import ApprovalRule
from mcp_hub.console.base import ConsolePage
from mcp_hub.web.sessions import WebSession


class RulePages:
    def __init__(self, page: ConsolePage, rules: Sequence[ApprovalRule]) -> None:
        self._page = page
        self._rules = rules

    async def index(self, request: Request, viewer: WebSession) -> Response:
        return self._page.render(request, viewer, "rules.html", {"rules": self._rules}, section="rules")
