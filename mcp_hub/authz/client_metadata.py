"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; the MCP authorization spec
2025-11-25, "Client Registration", prefers them to DCR), and the egress guard that fetches them (threat T11).

A client that has no registration uses an https URL as its `client_id`; the document at that URL describes
it (`client_id`, `client_name`, `redirect_uris`, ...). With `[auth] client_id_metadata_documents` on,
`resolve_client(service, client_id)` fetches the document, checks it, and upserts an agent with source
`cimd` (no grants: such a client acts only for a user who consents, like a DCR client), so the rest of the
hub deals with one kind of record. Checks:

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

The egress guard (`fetch_json`, `resolve_public`, `check_address`): https only; the host is resolved once and
every address it resolves to must be public (`is_global`, not multicast; IPv4-mapped, 6to4, Teredo and
NAT64 addresses are judged by the IPv4 address inside), so loopback, RFC 1918, link-local (cloud metadata at
169.254.169.254), CGNAT, multicast and reserved ranges are refused; the connection goes to the address that
was checked (TLS still verifies the certificate for the host name), so DNS rebinding between check and
connect does not work; no redirect is followed; no proxy from the environment; 5 s for the whole fetch;
64 KiB at most, read without content decoding. `EgressPolicy(allow_loopback_http=True)` additionally admits
plain http and loopback addresses: for tests that serve documents from a local server. It is reachable
only from code (`ClientMetadataResolver(service, egress=...)` and `install_resolver`), never from settings.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit
from weakref import WeakKeyDictionary

import anyio
import httpx2
import structlog

from mcp_hub.authz._random import sha256_hex
from mcp_hub.authz.private_key_jwt import parse_client_jwks
from mcp_hub.authz.registration import grant_types_of, optional_https_uri, optional_text, validate_redirect_uris
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord, NewAgent
from mcp_hub.errors import ConflictError, OAuthError

logger = structlog.get_logger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_CLIENT_ID_LENGTH: Final = 512
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_JSON_TYPES: Final = ("application/json",)


class EgressRefusedError(ValueError):
    """The egress guard refused a URL or an address; the message says why."""


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What the egress guard lets through. The default is the strict guard every production fetch uses."""

    allow_loopback_http: bool = False
    """Tests only: also allow plain http and loopback addresses (private and link-local stay refused)."""
    timeout_seconds: float = 5.0
    max_bytes: int = 64 * 1024


STRICT_EGRESS: Final = EgressPolicy()


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def check_address(address: IPAddress, *, allow_loopback: bool = False) -> None:
    """Refuse (`EgressRefusedError`) any address that is not public; loopback only if `allow_loopback`."""
    judged: IPAddress = address
    if isinstance(address, ipaddress.IPv6Address):
        judged = _embedded_ipv4(address) or address
    if allow_loopback and judged.is_loopback:
        return
    if not judged.is_global or judged.is_multicast:
        raise EgressRefusedError(
            f"{address} is not a public address (loopback, private, link-local, multicast or reserved)"
        )


async def resolve_public(host: str, port: int, policy: EgressPolicy = STRICT_EGRESS) -> list[IPAddress]:
    """Every address `host` resolves to, all checked by `check_address`; a literal IP is checked without DNS.

    If any address is refused the host is refused: an answer that mixes public and private addresses is
    how rebinding attacks start.
    """
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        try:
            with anyio.fail_after(policy.timeout_seconds):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError):
            raise EgressRefusedError(f"cannot resolve {host!r}") from None
        addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not addresses:
        raise EgressRefusedError(f"{host!r} resolves to no address")
    for address in addresses:
        check_address(address, allow_loopback=policy.allow_loopback_http)
    return addresses


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";")[0].strip().lower()
    return media_type in _JSON_TYPES or (media_type.startswith("application/") and media_type.endswith("+json"))


async def fetch_json(url: str, policy: EgressPolicy = STRICT_EGRESS) -> object:
    """GET `url` through the egress guard and parse it as JSON; `EgressRefusedError` on any refusal or failure."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EgressRefusedError(f"{url!r} is not a valid URL") from None
    scheme, host = parts.scheme, parts.hostname
    if scheme != "https" and not (scheme == "http" and policy.allow_loopback_http):
        raise EgressRefusedError("only https URLs are fetched")
    if not host or parts.username is not None or parts.password is not None:
        raise EgressRefusedError("the URL must have a host and no user information")
    port = port or (443 if scheme == "https" else 80)
    addresses = await resolve_public(host, port, policy)
    if scheme == "http" and not all(address.is_loopback for address in addresses):
        raise EgressRefusedError("plain http is allowed only to a loopback address")
    address = addresses[0]
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    target = urlunsplit((scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
    headers = {"Host": parts.netloc, "Accept": "application/json", "Accept-Encoding": "identity"}
    extensions = {"sni_hostname": host} if scheme == "https" else {}
    body = bytearray()
    try:
        with anyio.fail_after(policy.timeout_seconds):
            async with (
                httpx2.AsyncClient(follow_redirects=False, trust_env=False, timeout=policy.timeout_seconds) as client,
                client.stream("GET", target, headers=headers, extensions=extensions) as response,
            ):
                if response.status_code != 200:
                    redirect = " (redirects are not followed)" if response.is_redirect else ""
                    raise EgressRefusedError(f"{url} answered HTTP {response.status_code}{redirect}")
                if response.headers.get("content-encoding", "identity").lower() != "identity":
                    raise EgressRefusedError(f"{url} sent an encoded body")
                if not _is_json(response.headers.get("content-type", "")):
                    raise EgressRefusedError(f"{url} did not answer with JSON")
                async for chunk in response.aiter_raw():
                    body.extend(chunk)
                    if len(body) > policy.max_bytes:
                        raise EgressRefusedError(f"{url} sent more than {policy.max_bytes} bytes")
    except TimeoutError:
        raise EgressRefusedError(f"{url} did not answer within {policy.timeout_seconds} s") from None
    except httpx2.HTTPError as exc:
        raise EgressRefusedError(f"fetching {url} failed ({type(exc).__name__})") from None
    try:
        return json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError):
        raise EgressRefusedError(f"{url} did not answer with valid JSON") from None


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


@dataclass(frozen=True, slots=True)
class _Described:
    """What a valid document says about its client."""

    auth_method: str
    jwks: dict[str, Any] | None
    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    client_name: str | None
    client_uri: str | None


async def _describe(url: str, document: object, policy: EgressPolicy) -> _Described:
    if not isinstance(document, dict):
        raise EgressRefusedError("the client metadata document is not a JSON object")
    metadata = cast("dict[str, Any]", document)
    if metadata.get("client_id") != url:
        raise EgressRefusedError("the document's client_id is not the URL it was fetched from")
    method = metadata.get("token_endpoint_auth_method", "none")
    if method not in ("none", "private_key_jwt"):
        raise EgressRefusedError(
            "token_endpoint_auth_method must be none or private_key_jwt (a document cannot carry a shared secret)"
        )
    jwks: dict[str, Any] | None = None
    if method == "private_key_jwt":
        raw_jwks: object = metadata.get("jwks")
        jwks_uri: object = metadata.get("jwks_uri")
        if (raw_jwks is None) == (jwks_uri is None):
            raise EgressRefusedError("private_key_jwt needs exactly one of jwks and jwks_uri")
        if isinstance(jwks_uri, str):
            raw_jwks = await fetch_json(jwks_uri, policy)
        elif jwks_uri is not None:
            raise EgressRefusedError("jwks_uri must be a URL")
        try:
            jwks = parse_client_jwks(raw_jwks)
        except ValueError as exc:
            raise EgressRefusedError(str(exc)) from None
    try:
        return _Described(
            auth_method=method,
            jwks=jwks,
            redirect_uris=validate_redirect_uris(metadata.get("redirect_uris")),
            grant_types=grant_types_of(metadata),
            client_name=optional_text(metadata, "client_name"),
            client_uri=optional_https_uri(metadata, "client_uri"),
        )
    except OAuthError as exc:
        raise EgressRefusedError(exc.description) from None


class ClientMetadataResolver:
    """Resolves client ids: registered ones from the database, metadata document URLs by fetching them."""

    def __init__(
        self,
        service: AuthService,
        *,
        egress: EgressPolicy = STRICT_EGRESS,
        cache_seconds: float = 300.0,
        failure_seconds: float = 30.0,
        max_concurrent_fetches: int = 8,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
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
        store = self._service.store
        if not is_metadata_client_id(client_id, self._egress):
            return await store.agent_by_client_id(client_id)
        if not self._service.settings.auth.client_id_metadata_documents:
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
        store = self._service.store
        existing = await store.agent_by_client_id(url)
        if existing is not None and existing.source != "cimd":
            return existing
        if self._fetches is None:
            self._fetches = anyio.Semaphore(self._max_concurrent_fetches)
        try:
            check_client_id_url(url, self._egress)
            async with self._fetches:
                described = await _describe(url, await fetch_json(url, self._egress), self._egress)
        except EgressRefusedError as exc:
            logger.warning("client metadata document refused", client_id=url, reason=str(exc))
            return None
        return await self._upsert(url, existing, described)

    async def _upsert(self, url: str, existing: AgentRecord | None, described: _Described) -> AgentRecord | None:
        store = self._service.store
        if existing is None:
            try:
                return await store.create_agent(
                    NewAgent(
                        name="cimd-" + sha256_hex(url)[:16],
                        client_id=url,
                        source="cimd",
                        auth_method=described.auth_method,
                        jwks=described.jwks,
                        redirect_uris=described.redirect_uris,
                        grant_types=described.grant_types,
                        display_name=described.client_name,
                        client_uri=described.client_uri,
                    )
                )
            except ConflictError:  # another request or replica stored it first: update that row
                existing = await store.agent_by_client_id(url)
                if existing is None or existing.source != "cimd":
                    return existing
        await store.update_agent_metadata(
            existing.id,
            auth_method=described.auth_method,
            jwks=described.jwks,
            redirect_uris=list(described.redirect_uris),
            grant_types=list(described.grant_types),
            display_name=described.client_name,
            client_uri=described.client_uri,
        )
        return await store.agent_by_id(existing.id)


_resolvers: WeakKeyDictionary[AuthService, ClientMetadataResolver] = WeakKeyDictionary()


def install_resolver(service: AuthService, resolver: ClientMetadataResolver) -> None:
    """Use `resolver` for `service` (tests install one with a loopback-permitting `EgressPolicy`)."""
    _resolvers[service] = resolver


def resolver_for(service: AuthService) -> ClientMetadataResolver:
    """The service's resolver; a strict one is created on first use."""
    resolver = _resolvers.get(service)
    if resolver is None:
        resolver = _resolvers[service] = ClientMetadataResolver(service)
    return resolver


async def resolve_client(service: AuthService, client_id: str) -> AgentRecord | None:
    """The agent `client_id` names: a registered client, or (an https URL, with Client ID Metadata Documents
    on) the client its metadata document describes, fetched and upserted as source `cimd`. None: unknown,
    refused, or documents are off. The caller still checks `agent.enabled`."""
    return await resolver_for(service).resolve(client_id)
