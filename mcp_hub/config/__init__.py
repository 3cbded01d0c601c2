"""Typed configuration: the hub's `config.toml` and one `connectors/<id>.toml` per downstream server."""

from mcp_hub.config.connectors import ConnectorSpec, load_connectors
from mcp_hub.config.settings import HubSettings, load_settings

__all__ = ["ConnectorSpec", "HubSettings", "load_connectors", "load_settings"]
