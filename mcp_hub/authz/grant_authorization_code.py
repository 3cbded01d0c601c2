"""The `authorization_code` grant: RFC 6749 §4.1.3-§4.1.4 with PKCE (RFC 7636 §4.5-§4.6), as OAuth 2.1 §4.1.3.

The request must carry `code`, `redirect_uri` and `code_verifier`; they are checked for form before the code
is touched, so a malformed request does not burn it. Then the code is consumed with one conditional UPDATE
(`OAuthStore.consume_authorization_code`): single use, even under concurrent exchanges. It must have been
issued to the same client, for the identical `redirect_uri` (§4.1.3), within its lifetime, and
BASE64URL(SHA-256(code_verifier)) must equal the stored `code_challenge` (RFC 7636 §4.6, compared in
constant time). Any failure is `invalid_grant`, as is a user disabled since the code was issued (§5.2).

A replayed code (threat T04, RFC 6749 §4.1.2: "SHOULD revoke ... all tokens previously issued based on
that authorization code") revokes the refresh family the first exchange created: its refresh tokens die at
once, its access tokens (which carry the family id as `sid`) within `[auth] decision_cache_seconds`. A
replay that arrives in the few milliseconds between the first exchange's consume and the moment it records
its family still fails, but cannot revoke.

Success starts a refresh family (`grant_refresh_token`) and answers with an access token for the user
(`sub` = user id; scope: the approved scope, decided again against the user's current grants) and, if the
client may refresh, a refresh token. With a DPoP proof the access token is bound to its key, and so is the family
of a public client (RFC 9449 §5: a public client's refresh tokens need a proof by that key ever after).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any, ClassVar, Final

from mcp_hub.authz import scopes
from mcp_hub.authz.grant_refresh_token import FamilyGrant
from mcp_hub.authz.token_endpoint import TokenRequest
from mcp_hub.credentials import sha256_hex
from mcp_hub.domain import Consumption, GrantType
from mcp_hub.errors import OAuthError

_CODE_VERIFIER: Final = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")  # RFC 7636 §4.1
_MAX_CODE_LENGTH: Final = 256


def s256_code_challenge(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))), without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _required(request: TokenRequest, name: str) -> str:
    value = request.form.get(name)
    if value is None:
        raise OAuthError("invalid_request", f"{name} is required")
    return value


def _invalid_grant() -> OAuthError:
    # One answer for every mismatch, so the endpoint tells an attacker nothing about a stolen code.
    return OAuthError("invalid_grant", "the authorization code is invalid, expired, or was issued to another client")


class AuthorizationCodeGrant(FamilyGrant):
    grant_type: ClassVar[GrantType] = GrantType.AUTHORIZATION_CODE

    async def __call__(self, request: TokenRequest) -> dict[str, Any]:
        agent = self.registered_client(request)
        code = _required(request, "code")
        redirect_uri = _required(request, "redirect_uri")
        verifier = _required(request, "code_verifier")
        if not _CODE_VERIFIER.match(verifier):
            raise OAuthError("invalid_request", "code_verifier must be 43-128 characters of A-Z a-z 0-9 - . _ ~")
        if len(code) > _MAX_CODE_LENGTH:
            raise _invalid_grant()

        code_sha256 = sha256_hex(code)
        consumed = await self._store.consume_authorization_code(code_sha256)
        record = consumed.record
        if record is None:
            raise _invalid_grant()
        if consumed.outcome is Consumption.REUSED:
            if record.family_id is not None:
                await self._store.revoke_family(record.family_id, "authorization code replayed")
            raise OAuthError("invalid_grant", "the authorization code was already used; its tokens are revoked")
        if (
            consumed.outcome is not Consumption.FIRST_USE
            or record.agent_id != agent.id
            or record.redirect_uri != redirect_uri
        ):
            raise _invalid_grant()
        if not hmac.compare_digest(s256_code_challenge(verifier).encode(), record.code_challenge.encode()):
            raise OAuthError("invalid_grant", "the code_verifier does not match the code_challenge")
        if record.resource != request.resource:
            raise OAuthError("invalid_grant", "the authorization code was issued for another resource")

        granted = await self._granter.for_user_at_token_endpoint(agent, record.user_id, record.scope)
        family = await self._store.create_refresh_family(
            agent.id,
            record.user_id,
            scopes.format_scope(granted),
            record.resource,
            dpop_jkt=request.jkt if agent.is_public else None,
        )
        await self._store.bind_code_to_family(code_sha256, family.id)
        refresh = await self._refresh_tokens.issue(family.id) if agent.may_use(GrantType.REFRESH_TOKEN) else None
        return self._tokens.token_response(
            agent.client_id,
            granted,
            user_id=record.user_id,
            family_id=family.id,
            refresh_token=refresh,
            audience=record.resource,
            jkt=request.jkt,
        )
