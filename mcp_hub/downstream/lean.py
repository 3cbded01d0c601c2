"""The lean path of a 2026-07-28 connection: forwarded requests without the SDK client's models (issue 12 §1).

A 2026-07-28 request carries its whole context (https://modelcontextprotocol.io/specification/2026-07-28/basic):
`params._meta` names the protocol version, the client's capabilities and information (and optionally its log level
and a progress token), and over HTTP the `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers repeat the
routing fields (https://modelcontextprotocol.io/specification/2026-07-28/basic/transports#custom-headers). Once the
SDK client has negotiated the era, a `LeanForwarder` copies what its session stamps (one probe of its stamp, so the
client information and declared capabilities stay the SDK client's) and stamps every forwarded request the same
way, then sends it over the connector's lean transport: `lean_http.LeanHttpClient` (Streamable HTTP) or
`lean_stdio.RawLane` (stdio, beside the SDK session). The SDK client keeps everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.client.session import ClientSession
from mcp.shared.dispatcher import CallOptions, ProgressFnT
from mcp.shared.inbound import MCP_METHOD_HEADER, MCP_NAME_HEADER, NAME_BEARING_METHODS, encode_header_value

from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.lean_http import LeanHttpClient, StreamHandlers, result_of
from mcp_hub.downstream.lean_stdio import RawLane

_METHOD_HEADER = MCP_METHOD_HEADER  # the SDK's names, in lower case as its stamp writes them
_NAME_HEADER = MCP_NAME_HEADER


class LeanForwarder:
    """Stamps and sends one connection's forwarded 2026-07-28 requests over its lean transport."""

    def __init__(
        self,
        connector_id: ConnectorId,
        session: ClientSession,
        *,
        http: LeanHttpClient | None = None,
        lane: RawLane | None = None,
    ) -> None:
        """Copies `session`'s stamp (negotiated at 2026-07-28); exactly one of `http` and `lane`."""
        probe: dict[str, Any] = {"method": "tools/call", "params": {}}
        opts: CallOptions = {}
        session._stamp(probe, opts)  # pyright: ignore[reportPrivateUsage]
        self._id = connector_id
        self._meta: dict[str, Any] = dict(probe["params"].get("_meta", {}))
        self._headers = {
            key: value for key, value in opts.get("headers", {}).items() if key not in (_METHOD_HEADER, _NAME_HEADER)
        }
        self._http = http
        self._lane = lane

    async def request(
        self,
        request_id: str,
        method: str,
        params: Mapping[str, Any],
        *,
        meta: Mapping[str, Any],
        param_headers: Mapping[str, str],
        on_progress: ProgressFnT | None,
        handlers: StreamHandlers,
    ) -> dict[str, Any] | None:
        """Send one request; its result (a `DownstreamError` on failure), or None when a stdio child's output ended
        before the answer (the connection reports that as the SDK path does)."""
        out_meta: dict[str, Any] = {**params.get("_meta", {}), **self._meta, **meta}
        if on_progress is not None:
            out_meta["progressToken"] = request_id
        message = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {**params, "_meta": out_meta}}
        if self._lane is not None:
            answer = await self._lane.request(message, on_progress)
            return None if answer is None else result_of(self._id, answer)
        if self._http is None:
            raise ValueError("a LeanForwarder needs an HTTP client or a stdio lane")
        headers = {**self._headers, _METHOD_HEADER: method}
        name_key = NAME_BEARING_METHODS.get(method)
        if name_key is not None and isinstance(name := params.get(name_key), str):
            headers[_NAME_HEADER] = encode_header_value(name)
        headers.update(param_headers)
        return await self._http.request(message, headers, handlers)
