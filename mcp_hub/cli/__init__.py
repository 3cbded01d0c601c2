"""The `mcp-hub` command: `main` parses and dispatches (`cli.main`); the admin commands (`cli.admin`) and the
approval commands (`cli.approvals`) work over `runtime.admin_tools()`."""

from mcp_hub.cli.main import main

__all__ = ["main"]
