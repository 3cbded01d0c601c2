"""The token endpoint, `POST /oauth/token` (RFC 6749 §3.2): client authentication, `resource`, then the grant.

A form-encoded POST (`mcp_hub.bodies`, no parameter repeated except RFC 8707 `resource`) → the client
authenticates (`client_auth`) → `resource` must name the hub's MCP endpoint → a `DPoP` proof, if the request
carries one, is checked (RFC 9449 §5, `authz.dpop`: `htu` is the token endpoint's public URL; a bad one is
`invalid_dpop_proof`) and its key's thumbprint handed to the grant, which binds the tokens it issues to it →
the handler of `grant_type` answers with the RFC 6749 §5.1 body, or raises `OAuthError`, which
`mcp_hub.authz.http` turns into the §5.2 answer. The grant types are handlers given to the endpoint when it is
built (`grant_client_credentials`, `grant_authorization_code`, `grant_refresh_token`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcp_hub.authz.client_auth import ClientAuthenticator
from mcp_hub.authz.dpop import DpopProofs
from mcp_hub.authz.http import dpop_proof_refused, oauth_error_response, oauth_json, read_oauth_form
from mcp_hub.authz.urls import TOKEN_PATH, OAuthUrls
from mcp_hub.bodies import FormData
from mcp_hub.db.identities import AgentRecord
from mcp_hub.domain import GrantType
from mcp_hub.errors import InvalidDpopProofError, OAuthError


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request after client authentication and `resource` validation."""

    form: FormData
    agent: AgentRecord
    resource: str
    jkt: str | None = None
    """The thumbprint of the key of the request's valid DPoP proof (RFC 9449 §5); None: no proof was sent."""


class GrantHandler(Protocol):
    """One grant type of the token endpoint."""

    grant_type: ClassVar[GrantType]

    async def __call__(self, request: TokenRequest) -> dict[str, Any]:
        """The RFC 6749 §5.1 response body, or `OAuthError`."""
        ...


class RegisteredGrant:
    """Base of the grant handlers: a client may use a grant type only if it is registered for it."""

    grant_type: ClassVar[GrantType]

    def registered_client(self, request: TokenRequest) -> AgentRecord:
        """The requesting client; `unauthorized_client` (RFC 6749 §5.2) if it is not registered for this grant."""
        if not request.agent.may_use(self.grant_type):
            raise OAuthError("unauthorized_client", f"this client is not registered for {self.grant_type}")
        return request.agent


class TokenEndpoint:
    """`POST /oauth/token` over the grant types it is given."""

    def __init__(
        self,
        authenticator: ClientAuthenticator,
        urls: OAuthUrls,
        grants: Sequence[GrantHandler],
        dpop: DpopProofs,
        *,
        on_issued: Callable[[str], None] | None = None,
    ) -> None:
        """`on_issued`: told the grant type of every token response (the metrics)."""
        self._dpop = dpop
        self._on_issued = on_issued
        self._authenticator = authenticator
        self._urls = urls
        self._grants: Mapping[str, GrantHandler] = {grant.grant_type.value: grant for grant in grants}

    def routes(self) -> list[Route]:
        return [Route(TOKEN_PATH, self._token, methods=["POST"])]

    async def _token(self, request: Request) -> Response:
        try:
            return oauth_json(await self.answer(request))
        except OAuthError as exc:
            return oauth_error_response(exc)

    async def answer(self, request: Request) -> dict[str, Any]:
        form = await read_oauth_form(request)
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise OAuthError("invalid_request", "grant_type is required")
        handler = self._grants.get(grant_type)
        if handler is None:
            raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
        agent = await self._authenticator.authenticate(request, form, endpoint_url=self._urls.token_endpoint)
        resource = self._urls.accept_resource(form.all("resource"))
        if resource == self._urls.admin_resource and grant_type != GrantType.CLIENT_CREDENTIALS:
            raise OAuthError("invalid_target", "a token for the admin API is a client_credentials token")
        jkt = await self._proof_key(request.headers.getlist("dpop"))
        answer = await handler(TokenRequest(form=form, agent=agent, resource=resource, jkt=jkt))
        if self._on_issued is not None:
            self._on_issued(grant_type)
        return answer

    async def _proof_key(self, proofs: list[str]) -> str | None:
        if not proofs:
            return None
        try:
            return await self._dpop.verify(proofs, "POST", self._urls.token_endpoint)
        except InvalidDpopProofError as exc:
            raise dpop_proof_refused(exc) from None
