#!/bin/sh
# The image's entry point: `mcp-hub <arguments>` with the mounted configuration (MCP_HUB_CONFIG).
# For `serve`, the schema is migrated first unless MCP_HUB_MIGRATE_ON_START=0: `mcp-hub migrate` must not run in
# several replicas at once on PostgreSQL (docs/deployment.md), so replicated deployments migrate in a one-shot
# service or Job and set it to 0.
set -eu
config="${MCP_HUB_CONFIG:-/etc/mcp-hub/config.toml}"
if [ "$#" -eq 0 ]; then
    set -- serve
fi
if [ "$1" = "serve" ] && [ "${MCP_HUB_MIGRATE_ON_START:-1}" = "1" ]; then
    mcp-hub migrate --config "$config"
fi
exec mcp-hub --config "$config" "$@"
