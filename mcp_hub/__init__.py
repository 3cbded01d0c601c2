"""mcp-hub: an MCP aggregation gateway."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mcp-hub")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
