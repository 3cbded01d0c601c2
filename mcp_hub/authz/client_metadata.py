"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; the MCP authorization spec
2025-11-25, "Client Registration", prefers them to DCR).

A client that has no registration uses an https URL as its `client_id`; the document at that URL describes
it (`client_id`, `client_name`, `redirect_uris`, ...). With `[auth] client_id_metadata_documents` on,
`ClientMetadataResolver.resolve` fetches the document through the egress guard (`mcp_hub.authz.egress`),
checks it, and upserts an agent with source `cimd` (no grants: such a client acts only for a user who
consents, like a DCR client), so the rest of the hub deals with one kind of record. Checks:

- The URL (draft §3): https, a host, a path other than `/`, no user info, no fragment, no `.`/`..`
  segments; we also refuse a query string (the draft says SHOULD NOT) and URLs over 512 characters.
- The document: a JSON object whose `client_id` is exactly the URL (simple string comparison, draft §4.1);
  `redirect_uris` as for DCR (`mcp_hub.authz.registration`); `token_endpoint_auth_method` `none` (the
  default) or `private_key_jwt` with `jwks` or `jwks_uri` (fetched through the same guard); the shared-secret
  methods are refused (draft §4.1: there is no way to share a secret); grant types `authorization_code` and
  `refresh_token` only.
- Results are cached per URL (`cache_seconds`, default 5 minutes; failures `failure_seconds`, 30 s, so a
  flood of authorization requests naming one URL costs one fetch), at most `max_concurrent_fetches` fetches
  run at once, and concurrent requests for one URL share one fetch. A document that cannot be fetched or
  fails a check resolves to None: callers refuse the client (fail closed; the stored row stays, unused).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast
from urllib.parse import urlsplit

import anyio
import structlog

from mcp_hub.authz.egress import STRICT_EGRESS, EgressPolicy, fetch_json
from mcp_hub.authz.private_key_jwt import parse_client_jwks
from mcp_hub.authz.registration import grant_types_of, optional_https_uri, optional_text, validate_redirect_uris
from mcp_hub.credentials import sha256_hex
from mcp_hub.db.identities import AgentRecord, ClientMetadata, IdentityStore, NewAgent
from mcp_hub.domain import AgentSource, ClientAuthMethod, ClientId
from mcp_hub.errors import ConflictError, EgressRefusedError, InvalidInputError, OAuthError

logger = structlog.get_logger(__name__)

MAX_CLIENT_ID_LENGTH: Final = 512


def is_metadata_client_id(client_id: str, policy: EgressPolicy = STRICT_EGRESS) -> bool:
    """Does `client_id` look like a metadata document URL (rather than a registered id)?"""
    return client_id.startswith("https://") or (policy.allow_loopback_http and client_id.startswith("http://"))


def check_client_id_url(client_id: str, policy: EgressPolicy = STRICT_EGRESS) -> str:
    """The draft's rules for a client id URL; `EgressRefusedError` naming the broken one."""
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise EgressRefusedError(f"a client id URL is limited to {MAX_CLIENT_ID_LENGTH} characters")
    try:
        parts = urlsplit(client_id)
    except ValueError:
        raise EgressRefusedError("the client id is not a valid URL") from None
    if not is_metadata_client_id(client_id, policy) or not parts.hostname:
        raise EgressRefusedError("a client id URL must be https with a host")
    if parts.username is not None or parts.password is not None or "#" in client_id or parts.query:
        raise EgressRefusedError("a client id URL has no user information, query or fragment")
    segments = parts.path.split("/")
    if parts.path in ("", "/") or any(segment in (".", "..") for segment in segments):
        raise EgressRefusedError("a client id URL needs a path without . or .. segments")
    return client_id


async def _describe(url: str, document: object, policy: EgressPolicy) -> ClientMetadata:
    """What a valid document says about its client; `InvalidInputError` (or, for its `jwks_uri`,
    `EgressRefusedError`) saying why it is refused."""
    if not isinstance(document, dict):
        raise InvalidInputError("the client metadata document is not a JSON object")
    metadata = cast("dict[str, Any]", document)
    if metadata.get("client_id") != url:
        raise InvalidInputError("the document's client_id is not the URL it was fetched from")
    method = metadata.get("token_endpoint_auth_method", ClientAuthMethod.NONE)
    if method not in (ClientAuthMethod.NONE, ClientAuthMethod.PRIVATE_KEY_JWT):
        raise InvalidInputError(
            "token_endpoint_auth_method must be none or private_key_jwt (a document cannot carry a shared secret)"
        )
    jwks: dict[str, Any] | None = None
    if method == ClientAuthMethod.PRIVATE_KEY_JWT:
        raw_jwks: object = metadata.get("jwks")
        jwks_uri: object = metadata.get("jwks_uri")
        if (raw_jwks is None) == (jwks_uri is None):
            raise InvalidInputError("private_key_jwt needs exactly one of jwks and jwks_uri")
        if isinstance(jwks_uri, str):
            raw_jwks = await fetch_json(jwks_uri, policy)
        elif jwks_uri is not None:
            raise InvalidInputError("jwks_uri must be a URL")
        jwks = parse_client_jwks(raw_jwks)
    try:
        return ClientMetadata(
            auth_method=ClientAuthMethod(method),
            jwks=jwks,
            redirect_uris=validate_redirect_uris(metadata.get("redirect_uris")),
            grant_types=grant_types_of(metadata),
            display_name=optional_text(metadata, "client_name"),
            client_uri=optional_https_uri(metadata, "client_uri"),
        )
    except OAuthError as exc:
        raise InvalidInputError(exc.description) from None


class ClientMetadataResolver:
    """Resolves client ids: registered ones from the database, metadata document URLs by fetching them."""

    def __init__(
        self,
        identities: IdentityStore,
        *,
        enabled: bool,
        egress: EgressPolicy = STRICT_EGRESS,
        cache_seconds: float = 300.0,
        failure_seconds: float = 30.0,
        max_concurrent_fetches: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._identities = identities
        self._enabled = enabled
        self._egress = egress
        self._cache_seconds = cache_seconds
        self._failure_seconds = failure_seconds
        self._max_concurrent_fetches = max_concurrent_fetches
        self._clock = clock
        self._cache: dict[str, tuple[float, AgentRecord | None]] = {}
        self._inflight: dict[str, anyio.Event] = {}
        self._fetches: anyio.Semaphore | None = None

    async def resolve(self, client_id: str) -> AgentRecord | None:
        """The client behind `client_id`, or None if there is none (or its document is refused).

        A disabled agent is returned as stored: callers check `enabled`, as for `agent_by_client_id`.
        """
        store = self._identities
        if not is_metadata_client_id(client_id, self._egress):
            return await store.agent_by_client_id(client_id)
        if not self._enabled:
            return None
        while True:
            cached = self._cache.get(client_id)
            if cached is not None and cached[0] > self._clock():
                # The document is fresh; the row is read again so that an admin's `disable` shows at once.
                return None if cached[1] is None else await store.agent_by_client_id(client_id)
            running = self._inflight.get(client_id)
            if running is None:
                break
            await running.wait()
        done = self._inflight[client_id] = anyio.Event()
        try:
            agent = await self._refresh(client_id)
            lifetime = self._cache_seconds if agent is not None else self._failure_seconds
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[client_id] = (self._clock() + lifetime, agent)
            return agent
        finally:
            del self._inflight[client_id]
            done.set()

    def forget(self, client_id: str | None = None) -> None:
        """Drop the cached answer for `client_id` (or all of them)."""
        if client_id is None:
            self._cache.clear()
        else:
            self._cache.pop(client_id, None)

    async def _refresh(self, url: str) -> AgentRecord | None:
        existing = await self._identities.agent_by_client_id(url)
        if existing is not None and existing.source is not AgentSource.CIMD:
            return existing
        if self._fetches is None:
            self._fetches = anyio.Semaphore(self._max_concurrent_fetches)
        try:
            check_client_id_url(url, self._egress)
            async with self._fetches:
                described = await _describe(url, await fetch_json(url, self._egress), self._egress)
        except (EgressRefusedError, InvalidInputError) as exc:
            logger.warning("client metadata document refused", client_id=url, reason=str(exc))
            return None
        return await self._upsert(url, existing, described)

    async def _upsert(self, url: str, existing: AgentRecord | None, described: ClientMetadata) -> AgentRecord | None:
        store = self._identities
        if existing is None:
            try:
                return await store.create_agent(
                    NewAgent(
                        name="cimd-" + sha256_hex(url)[:16],
                        client_id=ClientId(url),
                        source=AgentSource.CIMD,
                        metadata=described,
                    )
                )
            except ConflictError:  # another request or replica stored it first: update that row
                existing = await store.agent_by_client_id(url)
                if existing is None or existing.source is not AgentSource.CIMD:
                    return existing
        await store.update_client_metadata(existing.id, described)
        return await store.agent_by_id(existing.id)
