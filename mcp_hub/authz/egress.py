"""The egress guard: how the hub fetches a URL that someone outside named (threat T11, server-side request forgery).

Used for Client ID Metadata Documents and their `jwks_uri` (`mcp_hub.authz.client_metadata`). https only; the
host is resolved once and every address it resolves to must be public (`is_global`, not multicast; IPv4-mapped,
6to4, Teredo and NAT64 addresses are judged by the IPv4 address inside), so loopback, RFC 1918, link-local (cloud
metadata at 169.254.169.254), CGNAT, multicast and reserved ranges are refused; the connection goes to the address
that was checked (TLS still verifies the certificate for the host name), so DNS rebinding between check and
connect does not work; no redirect is followed; no proxy from the environment; 5 s for the whole fetch; 64 KiB
at most, read without content decoding.

`EgressPolicy(allow_loopback_http=True)` additionally admits plain http and loopback addresses, for tests that
serve documents from a local server. It is reachable only from code (the `egress` argument of `runtime.Hub`),
never from settings.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import anyio
import httpx2

from mcp_hub.bodies import parse_json
from mcp_hub.errors import EgressRefusedError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_JSON_TYPES: Final = ("application/json",)


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
        return parse_json(bytes(body))
    except ValueError:
        raise EgressRefusedError(f"{url} did not answer with valid JSON") from None
