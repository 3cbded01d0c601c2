"""The front door: the hub's own MCP server, served over Streamable HTTP (both eras) and stdio."""
