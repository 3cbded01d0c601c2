"""Resource URIs inside results: the links, embedded resources and read contents a downstream's answer names.

A `tools/call` result (content blocks), a `prompts/get` result (its messages' content) and a `resources/read`
result (its contents) carry resource URIs (https://modelcontextprotocol.io/specification/2026-07-28/server/tools#resource-links
and the prompts and resources pages). The hub maps them to the names the client knows: public URIs through
`/mcp`, the downstream's own through a connector's profile.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

UriMap = Callable[[str], str]


def _map_content(item: Any, uri: UriMap) -> Any:
    """A content block with its resource URI (link or embedded resource) mapped."""
    if not isinstance(item, dict):
        return item
    block = cast("dict[str, Any]", item)
    kind = block.get("type")
    if kind == "resource_link" and isinstance(block.get("uri"), str):
        return {**block, "uri": uri(block["uri"])}
    resource = block.get("resource")
    if kind == "resource" and isinstance(resource, dict):
        embedded = cast("dict[str, Any]", resource)
        if isinstance(embedded.get("uri"), str):
            return {**block, "resource": {**embedded, "uri": uri(embedded["uri"])}}
    return block


def map_uris(method: str, result: dict[str, Any], uri: UriMap) -> dict[str, Any]:
    """`result` of `method` with every resource URI in it (links, embedded resources, read contents) mapped."""
    if method == "tools/call" and isinstance(result.get("content"), list):
        content = cast("list[Any]", result["content"])
        return {**result, "content": [_map_content(item, uri) for item in content]}
    if method == "resources/read" and isinstance(result.get("contents"), list):
        return {
            **result,
            "contents": [_map_read(item, uri) for item in cast("list[Any]", result["contents"])],
        }
    if method == "prompts/get" and isinstance(result.get("messages"), list):
        return {
            **result,
            "messages": [_map_message(item, uri) for item in cast("list[Any]", result["messages"])],
        }
    return result


def _map_read(item: Any, uri: UriMap) -> Any:
    if not isinstance(item, dict):
        return item
    contents = cast("dict[str, Any]", item)
    found = contents.get("uri")
    return {**contents, "uri": uri(found)} if isinstance(found, str) else contents


def _map_message(item: Any, uri: UriMap) -> Any:
    if not isinstance(item, dict):
        return item
    message = cast("dict[str, Any]", item)
    if "content" not in message:
        return message
    content: Any = message["content"]
    if isinstance(content, list):
        return {**message, "content": [_map_content(block, uri) for block in cast("list[Any]", content)]}
    return {**message, "content": _map_content(content, uri)}
