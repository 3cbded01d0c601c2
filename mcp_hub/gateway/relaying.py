"""The way back from a downstream to the caller of a forwarded request: its log entries and its questions.

Logging (https://modelcontextprotocol.io/specification/2025-11-25/server/utilities/logging and the 2026-07-28
page): a 2025-11-25 client sets its level for the session (`logging/setLevel`), a 2026-07-28 client per
request (`_meta` `io.modelcontextprotocol/logLevel`). A downstream's `notifications/message` during a request
goes to that request's caller on the request's own stream, at or above the caller's level, its `logger` prefixed
with the connector id and the connector named in `_meta` (`CONNECTOR_META_KEY`). A 2025-11-25 downstream's
level is one per shared session, so the hub sets it to the most verbose level any live session asked for and
filters per caller. Entries that belong to no request go to the 2025-11-25 sessions that set a level and may
see that connector, on their standalone stream (2026-07-28 has no stream for them).

Questions (`elicitation/create`, `sampling/createMessage`, `roots/list`) are put to a 2025-11-25 caller as
server-to-client requests related to its request, only if it declared the capability (`elicitation`, `sampling`,
`roots`); otherwise the downstream is refused with -32021 and the caller's request fails the same way. 2026-07-28
callers get questions as `input_required` results (`mcp_hub.gateway.questions`); there the connector is not
named, because that era's schema gives an input request's params no `_meta` (the SDK's wire models drop it).

Roots (https://modelcontextprotocol.io/specification/2025-11-25/client/roots, deprecated but still specified in
2026-07-28) are the caller's own: its answer reaches the downstream unchanged (file:// URIs of the caller's
machine, not the hub's). Not relayed: `notifications/roots/list_changed`. A caller's roots belong to its
requests, and a downstream session is shared by many callers, so the hub neither forwards a caller's
notification nor sends one of its own (a downstream asks again on each request that needs them).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, Final, cast

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND, MISSING_REQUIRED_CLIENT_CAPABILITY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from mcp_hub.catalog.catalog import Catalog
from mcp_hub.credentials import SecretValues
from mcp_hub.domain import ConnectorId
from mcp_hub.downstream.relay import LOG_LEVELS, at_least, severity
from mcp_hub.errors import QuestionRefusedError
from mcp_hub.gateway.caller import Asking
from mcp_hub.gateway.context import HubContext, sdk_context

CONNECTOR_META_KEY: Final = "io.github.mcp-hub/connector"
"""`_meta` key naming the connector a relayed log entry or question comes from."""
DEFAULT_LEGACY_LEVEL: Final = "info"
"""What a 2025-11-25 session gets until it sets a level (the spec lets the server choose)."""

QUESTION_METHODS: Final = ("elicitation/create", "sampling/createMessage", "roots/list")
"""What a downstream may ask the caller during a request."""
RELAYED_CAPABILITIES: Final = ("elicitation", "sampling", "roots")
"""The caller's client capabilities a downstream sees: the ones its questions need."""


def required_capability(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The client capability a question needs (wire form), e.g. `{"elicitation": {"url": {}}}`."""
    if method == "elicitation/create":
        mode = params.get("mode", "form")
        return {"elicitation": {"url": {}} if mode == "url" else {"form": {}}}
    if method == "sampling/createMessage":
        return {"sampling": {"tools": {}} if params.get("tools") else {}}
    if method == "roots/list":
        return {"roots": {}}
    return {method: {}}


def declares(capabilities: Mapping[str, Any], required: Mapping[str, Any]) -> bool:
    """Did a client that declared `capabilities` declare `required`? (An empty `elicitation` means form.)"""
    for name, needs in required.items():
        declared = capabilities.get(name)
        if not isinstance(declared, Mapping):
            return False
        declared_map = cast("Mapping[str, Any]", declared)
        for sub in cast("Mapping[str, Any]", needs):
            implicit_form = name == "elicitation" and sub == "form" and not declared_map
            if sub not in declared_map and not implicit_form:
                return False
    return True


def question_from(connector_id: ConnectorId, params: Mapping[str, Any]) -> dict[str, Any]:
    """A downstream's question as the caller gets it: the connector named in `_meta`."""
    meta = params.get("_meta")
    meta = dict(cast("Mapping[str, Any]", meta)) if isinstance(meta, Mapping) else {}
    return {**params, "_meta": {**meta, CONNECTOR_META_KEY: connector_id}}


def _connection_of(ctx: HubContext) -> Connection:
    return sdk_context(ctx).session._connection  # pyright: ignore[reportPrivateUsage]


def client_capabilities(ctx: HubContext) -> dict[str, Any]:
    """What the caller declared (wire form): per request on 2026-07-28, at `initialize` on 2025-11-25."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        declared = (ctx.meta or {}).get(types.CLIENT_CAPABILITIES_META_KEY)
        return dict(cast("Mapping[str, Any]", declared)) if isinstance(declared, Mapping) else {}
    capabilities = ctx.session.client_capabilities
    return capabilities.model_dump(by_alias=True, mode="json", exclude_none=True) if capabilities else {}


def _tagged(connector_id: ConnectorId, params: Mapping[str, Any]) -> dict[str, Any]:
    logger = params.get("logger")
    meta = params.get("_meta")
    meta = dict(cast("Mapping[str, Any]", meta)) if isinstance(meta, Mapping) else {}
    return {
        **params,
        "logger": f"{connector_id}/{logger}" if isinstance(logger, str) and logger else connector_id,
        "_meta": {**meta, CONNECTOR_META_KEY: connector_id},
    }


class LogLevels:
    """The log levels of live 2025-11-25 sessions, and the entries that belong to no request (a `LogSink`)."""

    def __init__(self, catalog: Catalog, secrets: SecretValues | None = None) -> None:
        self._catalog = catalog
        self.secrets = secrets if secrets is not None else SecretValues()
        """The hub's own secret values: scrubbed from every log entry and question on the way back (T30)."""
        self._sessions: weakref.WeakKeyDictionary[Connection, tuple[str, Asking]] = weakref.WeakKeyDictionary()
        self._changed = anyio.Event()

    def level_of(self, ctx: HubContext) -> str | None:
        """The least severe level this request's caller wants, or None for no log entries."""
        if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            requested = (ctx.meta or {}).get(types.LOG_LEVEL_META_KEY)
            return requested if isinstance(requested, str) and requested in LOG_LEVELS else None
        found = self._sessions.get(_connection_of(ctx))
        return found[0] if found is not None else DEFAULT_LEGACY_LEVEL

    def set_level(self, ctx: HubContext, level: str, asking: Asking) -> None:
        """A 2025-11-25 session's `logging/setLevel`."""
        self._sessions[_connection_of(ctx)] = (level, asking)
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    def wanted_level(self) -> str | None:
        """The most verbose level a live session asked for (None until one asks)."""
        levels = [level for level, _ in self._sessions.values()]
        return min(levels, key=severity) if levels else None

    def level_changes(self) -> anyio.Event:
        return self._changed

    async def unsolicited(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        """A connector's log entry that belongs to no request: to the sessions that asked and may see it."""
        tagged = self.secrets.scrub_json(_tagged(connector_id, params))
        for connection, (level, asking) in list(self._sessions.items()):
            if at_least(params.get("level"), level) and self._catalog.visible_to(connector_id, asking.allows):
                await connection.notify("notifications/message", tagged)


class CallerRelay:
    """One forwarded request's `Relay` (`mcp_hub.downstream.relay`): its caller's stream and capabilities."""

    def __init__(self, ctx: HubContext, levels: LogLevels) -> None:
        self._ctx = ctx
        self._secrets = levels.secrets
        self.declared = client_capabilities(ctx)
        self._level = levels.level_of(ctx)
        self.missing: dict[str, Any] | None = None
        """Set when a downstream asked for a capability the caller did not declare: the caller's request fails."""

    @property
    def client_capabilities(self) -> Mapping[str, Any]:
        return {key: value for key, value in self.declared.items() if key in RELAYED_CAPABILITIES}

    @property
    def log_level(self) -> str | None:
        return self._level

    async def log(self, connector_id: ConnectorId, params: Mapping[str, Any]) -> None:
        if not at_least(params.get("level"), self._level):
            return
        notification = types.LoggingMessageNotification(
            params=types.LoggingMessageNotificationParams.model_validate(
                self._secrets.scrub_json(_tagged(connector_id, params)), by_name=False
            )
        )
        await self._ctx.session.send_notification(notification, related_request_id=self._ctx.request_id)

    async def ask(self, connector_id: ConnectorId, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """A downstream's question, mid-call: to a 2025-11-25 caller that declared what it needs."""
        if method not in QUESTION_METHODS:
            raise QuestionRefusedError(METHOD_NOT_FOUND, f"mcp-hub does not relay {method}")
        required = required_capability(method, params)
        if not declares(self.declared, required) or self._ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
            self.missing = required
            raise QuestionRefusedError(MISSING_REQUIRED_CLIENT_CAPABILITY, "the client did not declare the capability")
        return await self.ask_caller(method, self._secrets.scrub_json(question_from(connector_id, params)))

    async def ask_caller(self, method: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Put a question to this 2025-11-25 caller on its request's stream; its error becomes a refusal."""
        if not self._ctx.session.can_send_request:
            raise QuestionRefusedError(INVALID_REQUEST, "the client cannot be asked during this request")
        outbound = sdk_context(self._ctx).session._request_outbound  # pyright: ignore[reportPrivateUsage]
        try:
            return await outbound.send_raw_request(method, dict(params), None)
        except MCPError as exc:
            raise QuestionRefusedError(exc.error.code, exc.error.message) from None
