"""`GET /admin/virtual`: the virtual servers (`virtual/<name>.toml`, issue 11 §6), read-only, with what each serves
now.

Virtual servers are configuration files, changed by editing them (the hub reads them at start): the page shows
each one's URL (its own OAuth resource), what it selects, its renames and description overrides, its meta-tools
mode, and how many tools, prompts and resources of the live catalog it offers at this moment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from mcp_hub.catalog.virtual import VirtualView
from mcp_hub.config.virtual import VirtualServerSpec
from mcp_hub.console.base import ADMIN_PATH, ConsolePage
from mcp_hub.web.sessions import WebSession

VIRTUAL_PATH = f"{ADMIN_PATH}/virtual"


@dataclass(frozen=True, slots=True)
class VirtualRow:
    spec: VirtualServerSpec
    url: str
    tools: int
    prompts: int
    resources: int
    """Listed resources and resource templates together."""


class VirtualPages:
    def __init__(self, page: ConsolePage, views: Mapping[str, VirtualView], url_of: Callable[[str], str]) -> None:
        """`views`: each virtual server's view of the live catalog, by name; `url_of(name)`: its MCP URL."""
        self._page = page
        self._views = views
        self._url_of = url_of

    async def index(self, request: Request, viewer: WebSession) -> Response:
        rows = [
            VirtualRow(
                spec=view.spec,
                url=self._url_of(name),
                tools=len(view.tools),
                prompts=len(view.prompts),
                resources=len(view.resources) + len(view.templates),
            )
            for name, view in sorted(self._views.items())
        ]
        return self._page.render(request, viewer, "virtual.html", {"servers": rows}, section="virtual")
