"""The hub's own OAuth client for downstream servers: client credentials (RFC 6749 §4.4).

An `httpx2.Auth` flow on the connector's HTTP client: before a request it makes sure it holds an access
token (asking the token endpoint, RFC 6749 §4.4.2, with the RFC 8707 `resource` of the downstream), sends
it as `Authorization: Bearer` (RFC 6750 §2.1), renews it shortly before `expires_in` runs out, and after a
401 renews it once and retries. The token request goes through the same HTTP client (the auth flow yields
it), so timeouts and connection reuse apply to it too. The token and secret never appear in logs or errors.
"""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncGenerator, Callable
from typing import Any, Final
from urllib.parse import quote_plus

import anyio
import httpx2

from mcp_hub.config.connectors import DownstreamOAuth

_RENEW_BEFORE_SECONDS: Final = 30.0
_DEFAULT_LIFETIME_SECONDS: Final = 300.0


class DownstreamTokenError(httpx2.HTTPError):
    """The downstream's token endpoint refused or answered garbage (the connector goes down and retries)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


class ClientCredentialsAuth(httpx2.Auth):
    """Bearer tokens from a client-credentials grant, obtained and renewed by the hub."""

    def __init__(
        self, oauth: DownstreamOAuth, default_resource: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._oauth = oauth
        self._resource = oauth.resource or default_resource
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = anyio.Lock()

    def _token_request(self) -> httpx2.Request:
        form: dict[str, str] = {"grant_type": "client_credentials", "resource": self._resource}
        if self._oauth.scope:
            form["scope"] = self._oauth.scope
        headers = {"Accept": "application/json"}
        if self._oauth.auth_method == "client_secret_post":
            form |= {"client_id": self._oauth.client_id, "client_secret": self._oauth.client_secret}
        else:
            # RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding.
            pair = f"{quote_plus(self._oauth.client_id)}:{quote_plus(self._oauth.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        return httpx2.Request("POST", self._oauth.token_url, data=form, headers=headers)

    async def _accept(self, response: httpx2.Response) -> None:
        await response.aread()  # the SDK streams responses; the token answer is small and read whole
        if response.status_code != 200:
            error = _field(response, "error") or f"HTTP {response.status_code}"
            raise DownstreamTokenError(f"the token endpoint {self._oauth.token_url} refused the hub: {error}")
        token = _field(response, "access_token")
        token_type = _field(response, "token_type") or ""
        if not token or token_type.lower() != "bearer":
            raise DownstreamTokenError(f"the token endpoint {self._oauth.token_url} sent no bearer token")
        expires_in: Any = _json(response).get("expires_in", _DEFAULT_LIFETIME_SECONDS)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else _DEFAULT_LIFETIME_SECONDS
        self._token = token
        self._renew_at = self._clock() + max(lifetime - _RENEW_BEFORE_SECONDS, lifetime / 2)

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                await self._accept((yield self._token_request()))
            token = self._token
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            async with self._lock:
                if self._token == token:  # nobody renewed it meanwhile
                    await self._accept((yield self._token_request()))
                token = self._token
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


def _json(response: httpx2.Response) -> dict[str, Any]:
    try:
        body: Any = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}  # pyright: ignore[reportUnknownVariableType]


def _field(response: httpx2.Response, name: str) -> str | None:
    value = _json(response).get(name)
    return value if isinstance(value, str) else None
