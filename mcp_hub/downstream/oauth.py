"""The hub's own OAuth client for downstream servers: client credentials (RFC 6749 §4.4), with authlib.

`ClientCredentialsAuth` is an `httpx2.Auth` flow on the connector's HTTP client (and the bearer source of its lean
client, `mcp_hub.downstream.lean_http`): before a request it makes sure
it holds an access token, sends it as `Authorization: Bearer` (RFC 6750 §2.1), renews it shortly before
`expires_in` runs out, and after a 401 renews it once and retries. The token requests themselves are authlib's
(`AsyncOAuth2Client.fetch_token`: the RFC 6749 §4.4.2 form, client authentication, parsing of the §5.1 answer
and the §5.2 errors), with the RFC 8707 `resource` of the downstream on every request. Client secrets are sent
with HTTP Basic encoded as §2.3.1 requires (id and secret form-urlencoded first, which authlib's default
`client_secret_basic` skips), or in the body. The token and secret never appear in logs or errors: a refusal
is `DownstreamAuthError` with the token endpoint's `error` code only, and a token that is not an RFC 6750
`b64token` (a CR or LF would end the header field) is refused as one.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self, cast
from urllib.parse import quote_plus

import anyio
import httpx2
from authlib.integrations.base_client import OAuthError as AuthlibOAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from mcp_hub.config.connectors import DownstreamOAuth
from mcp_hub.domain import ConnectorId, GrantType
from mcp_hub.errors import DownstreamAuthError

_RENEW_BEFORE_SECONDS: Final = 30.0
_B64TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
"""What `Authorization: Bearer` may carry (RFC 6750 §2.1, `b64token`)."""
_DEFAULT_LIFETIME_SECONDS: Final = 300.0

EventHooks = Mapping[str, Sequence[Callable[..., Any]]]


def _client_secret_basic(
    client: Any, method: str, uri: str, headers: dict[str, str], body: str
) -> tuple[str, dict[str, str], str]:
    """RFC 6749 §2.3.1: id and secret are form-urlencoded before the Basic encoding (authlib's default is not)."""
    del method
    pair = f"{quote_plus(str(client.client_id))}:{quote_plus(str(client.client_secret))}"
    headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    return uri, headers, body


class ClientCredentialsAuth(httpx2.Auth):
    """Bearer tokens from a client-credentials grant, obtained and renewed by the hub; use it as a context
    manager (it owns the HTTP client that asks the token endpoint)."""

    def __init__(
        self,
        connector_id: ConnectorId,
        oauth: DownstreamOAuth,
        default_resource: str,
        *,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        event_hooks: EventHooks | None = None,
    ) -> None:
        self._connector_id = connector_id
        self._token_url = oauth.token_url
        self._resource = oauth.resource or default_resource
        self._clock = clock
        # authlib has no type annotations; its client stays behind this class's typed methods.
        self._client: Any = AsyncOAuth2Client(
            client_id=oauth.client_id,
            client_secret=oauth.client_secret,
            token_endpoint_auth_method=oauth.auth_method,
            scope=oauth.scope,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            event_hooks=dict(event_hooks or {}),
        )
        self._client.register_client_auth_method(("client_secret_basic", _client_secret_basic))
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = anyio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_val: BaseException | None, exc_tb: TracebackType | None
    ) -> None:
        await self._client.aclose()

    async def _renew(self) -> str:
        where = f"the token endpoint {self._token_url}"
        try:
            answer: object = await self._client.fetch_token(
                self._token_url, grant_type=GrantType.CLIENT_CREDENTIALS.value, resource=self._resource
            )
        except AuthlibOAuthError as exc:
            raise DownstreamAuthError(self._connector_id, f"{where} refused the hub: {exc.error}") from None
        except httpx2.HTTPStatusError as exc:
            status = exc.response.status_code
            raise DownstreamAuthError(self._connector_id, f"{where} refused the hub: HTTP {status}") from None
        except (httpx2.HTTPError, ValueError) as exc:
            raise DownstreamAuthError(self._connector_id, f"{where} failed ({type(exc).__name__})") from None
        fields: Mapping[str, object] = cast("Mapping[str, object]", answer) if isinstance(answer, Mapping) else {}
        token, token_type = fields.get("access_token"), fields.get("token_type")
        if not isinstance(token, str) or not token or not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise DownstreamAuthError(self._connector_id, f"{where} sent no bearer token")
        if not _B64TOKEN.fullmatch(token):
            # Sent as it is, a CR or LF would end the header field (RFC 9110 §5.5): a request smuggled downstream.
            raise DownstreamAuthError(self._connector_id, f"{where} sent an access token that is not a b64token")
        expires_in = fields.get("expires_in", _DEFAULT_LIFETIME_SECONDS)
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else _DEFAULT_LIFETIME_SECONDS
        self._token = token
        self._renew_at = self._clock() + max(lifetime - _RENEW_BEFORE_SECONDS, lifetime / 2)
        return token

    async def bearer(self) -> str:
        """The access token to send now (fetched or renewed first when needed)."""
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                return await self._renew()
            return self._token

    async def bearer_after_refusal(self, refused: str) -> str:
        """The token to retry with after the downstream answered 401 to `refused` (renewed once, unless another
        request renewed it meanwhile)."""
        async with self._lock:
            if self._token is None or self._token == refused:
                return await self._renew()
            return self._token

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        token = await self.bearer()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {await self.bearer_after_refusal(token)}"
            yield request
