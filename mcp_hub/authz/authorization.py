"""The authorization endpoint's protocol, `/oauth/authorize`: RFC 6749 §4.1.1-§4.1.2 with PKCE (RFC 7636) as
OAuth 2.1 §4.1 requires it, RFC 8707 `resource`, and RFC 9207 `iss` in the response. The pages around it (sign-in
and the consent page, threat T06) are `mcp_hub.web.consent`.

A request is checked in two stages (RFC 6749 §4.1.2.1):
1. `client_id` (a registered, enabled agent allowed the `authorization_code` grant) and `redirect_uri`
   (exactly one of the agent's registered URIs, compared as strings: no normalisation of case, slashes,
   ports or query, threat T05). If either is wrong the user sees an error page: the hub never redirects to
   a URI it cannot vouch for.
2. Everything else: `response_type=code`; `code_challenge` present with `code_challenge_method=S256` (a
   missing method means `plain`, RFC 7636 §4.3, and `plain` is refused, threat T04); `resource`, if given,
   is the hub's MCP endpoint; `scope` well formed. Errors here go back to the client's redirect URI with
   `error`, `state` and `iss`.

The user's consent is a single-use consent request (stored as the SHA-256 of its id, bound to the user, valid
`CONSENT_TTL_SECONDS`) that holds every parameter, so nothing from the browser is trusted when the decision
comes back. Approval issues a single-use authorization code (stored as its SHA-256, valid `[auth]
authorization_code_ttl_seconds`), bound to the client, the redirect URI, the user, the PKCE challenge and the
approved scope — decided again against the user's grants at that moment, never more than was shown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from mcp_hub.authz import scopes
from mcp_hub.authz.client_auth import ClientFinder
from mcp_hub.authz.granting import ScopeGranter
from mcp_hub.authz.urls import OAuthUrls
from mcp_hub.bodies import FormData, FormRules, parse_form
from mcp_hub.credentials import new_secret, sha256_hex
from mcp_hub.db.identities import AgentRecord
from mcp_hub.db.oauth import AuthorizationCodeRecord, OAuthStore
from mcp_hub.domain import Clock, GrantType, UserId, utc_now
from mcp_hub.errors import InvalidRequestError, OAuthError

CONSENT_TTL_SECONDS: Final = 600
"""How long a consent page may stay open before its decision is refused."""
CODE_PREFIX: Final = "mcphc_"
AUTHORIZATION_QUERY: Final = FormRules(
    max_bytes=16 * 1024, max_fields=50, keep_blank=False, repeatable=frozenset({"resource"})
)
"""RFC 6749 §3.1: blank parameters count as absent; none may repeat (except RFC 8707 `resource`)."""
_CODE_CHALLENGE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256(verifier)), RFC 7636 §4.2
MAX_STATE_LENGTH: Final = 1024


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A validated authorization request."""

    agent: AgentRecord
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str | None
    resource: str


class AuthorizationRequests:
    """Checks authorization requests, keeps them while the user decides, and answers the client."""

    def __init__(
        self,
        find_client: ClientFinder,
        urls: OAuthUrls,
        granter: ScopeGranter,
        store: OAuthStore,
        *,
        code_ttl_seconds: int,
        clock: Clock = utc_now,
    ) -> None:
        self._find_client = find_client
        self._urls = urls
        self._granter = granter
        self._store = store
        self._code_ttl = timedelta(seconds=code_ttl_seconds)
        self._clock = clock

    @staticmethod
    def parse_query(query: str) -> FormData:
        try:
            return parse_form(query, AUTHORIZATION_QUERY)
        except InvalidRequestError as exc:
            raise OAuthError("invalid_request", str(exc)) from None

    async def client_and_redirect(self, params: FormData | dict[str, str]) -> tuple[AgentRecord, str]:
        """Stage 1: failures here must not redirect anywhere."""
        client_id = params.get("client_id")
        if client_id is None:
            raise OAuthError("invalid_request", "the request names no client (client_id is missing)")
        agent = await self._find_client(client_id)
        if agent is None or not agent.enabled:
            raise OAuthError("invalid_client", "the application is not registered with this hub, or is disabled")
        if not agent.may_use(GrantType.AUTHORIZATION_CODE):
            raise OAuthError("unauthorized_client", "this application may not ask users for access")
        redirect_uri = params.get("redirect_uri")
        if redirect_uri is None:
            raise OAuthError("invalid_request", "the request names no redirect_uri")
        # T05: exact string comparison against the registration, and never a URI with a fragment (§3.1.2).
        if redirect_uri not in agent.redirect_uris or "#" in redirect_uri:
            raise OAuthError("invalid_request", "the redirect_uri is not one this application registered")
        return agent, redirect_uri

    def rest_of_request(self, agent: AgentRecord, redirect_uri: str, params: FormData) -> AuthorizationRequest:
        """Stage 2: failures here are sent back to the client."""
        if params.get("response_type") != "code":
            raise OAuthError("unsupported_response_type", "response_type must be code")
        challenge = params.get("code_challenge")
        if challenge is None:
            raise OAuthError("invalid_request", "code_challenge is required (PKCE, RFC 7636)")
        if params.get("code_challenge_method") != "S256":
            raise OAuthError("invalid_request", "code_challenge_method must be S256; plain is not supported")
        if not _CODE_CHALLENGE.match(challenge):
            raise OAuthError("invalid_request", "code_challenge is not a base64url SHA-256 digest")
        state = params.get("state")
        if state is not None and len(state) > MAX_STATE_LENGTH:
            raise OAuthError("invalid_request", f"state is longer than {MAX_STATE_LENGTH} characters")
        resource = self._urls.accept_resource(params.all("resource"))
        scope = params.get("scope")
        try:
            scopes.parse_scope(scope)
        except ValueError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        return AuthorizationRequest(agent, redirect_uri, state, challenge, scope, resource)

    async def scopes_for(self, agent: AgentRecord, user_id: UserId, scope: str | None) -> list[str]:
        """What the token would carry: requested ∩ the user's grants (`OAuthError` if nothing remains)."""
        return await self._granter.for_user(agent, user_id, scope)

    async def open_consent(self, request: AuthorizationRequest, user_id: UserId, granted: list[str]) -> str:
        """Keep the request while the user decides; the returned consent id goes into the page's form."""
        consent_id = new_secret()
        parameters: dict[str, Any] = {
            "client_id": request.agent.client_id,
            "redirect_uri": request.redirect_uri,
            "state": request.state,
            "code_challenge": request.code_challenge,
            "scope": scopes.format_scope(granted),
            "resource": request.resource,
        }
        expires_at = self._clock() + timedelta(seconds=CONSENT_TTL_SECONDS)
        await self._store.create_consent_request(
            sha256_hex(consent_id), user_id, request.agent.id, parameters, expires_at
        )
        return consent_id

    async def close_consent(self, consent_id: str, user_id: UserId) -> dict[str, Any] | None:
        """The stored parameters of a consent request, for the one decision it gets; None if used or expired."""
        return await self._store.consume_consent_request(sha256_hex(consent_id), user_id)

    async def approve(self, agent: AgentRecord, redirect_uri: str, user_id: UserId, parameters: dict[str, Any]) -> str:
        """The redirect for an approved request: a new authorization code (grants are decided again)."""
        state = _text(parameters.get("state"))
        try:
            # Grants may have changed while the page was open: decide again, never more than was shown.
            granted = await self._granter.for_user(agent, user_id, str(parameters["scope"]))
        except OAuthError as exc:
            return self.error_to_client(redirect_uri, exc, state)
        code = new_secret(CODE_PREFIX)
        await self._store.add_authorization_code(
            sha256_hex(code),
            AuthorizationCodeRecord(
                agent_id=agent.id,
                user_id=user_id,
                redirect_uri=redirect_uri,
                code_challenge=str(parameters["code_challenge"]),
                scope=scopes.format_scope(granted),
                resource=str(parameters["resource"]),
                expires_at=self._clock() + self._code_ttl,
                family_id=None,
            ),
        )
        return self.back_to_client(redirect_uri, code=code, state=state)

    def back_to_client(self, redirect_uri: str, **params: str | None) -> str:
        """RFC 6749 §4.1.2: the response parameters added to the redirect URI's query (which is kept, §3.1.2)."""
        parts = urlsplit(redirect_uri)
        answer = {key: value for key, value in {**params, "iss": self._urls.issuer}.items() if value is not None}
        added = urlencode(answer)
        query = f"{parts.query}&{added}" if parts.query else added
        return urlunsplit(parts._replace(query=query))

    def error_to_client(self, redirect_uri: str, error: OAuthError, state: str | None) -> str:
        return self.back_to_client(redirect_uri, error=error.error, error_description=error.description, state=state)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
