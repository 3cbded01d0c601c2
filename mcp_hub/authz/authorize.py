"""The authorization endpoint, `/oauth/authorize`: RFC 6749 §4.1.1-§4.1.2 with PKCE (RFC 7636) as OAuth 2.1
§4.1 requires it, RFC 8707 `resource`, and RFC 9207 `iss` in the response.

`GET` checks the request in two stages (RFC 6749 §4.1.2.1):
1. `client_id` (a registered, enabled agent allowed the `authorization_code` grant) and `redirect_uri`
   (exactly one of the agent's registered URIs, compared as strings: no normalisation of case, slashes,
   ports or query, threat T05). If either is wrong the user sees an error page: the hub never redirects to
   a URI it cannot vouch for.
2. Everything else: `response_type=code`; `code_challenge` present with `code_challenge_method=S256` (a
   missing method means `plain`, RFC 7636 §4.3, and `plain` is refused, threat T04); `resource`, if given,
   is the hub's MCP endpoint; `scope` well formed. Errors here go back to the client's redirect URI with
   `error`, `state` and `iss`.

Then a user who is not signed in goes to `/login?next=<this request>`; a signed-in user sees the consent page
(threat T06): the client's name and id, the host it will be sent back to, and the scopes the token would
carry (requested ∩ the user's grants, `mcp_hub.authz.delegated_scopes`), with Approve and Deny. The form
carries a single-use consent id (stored as its SHA-256, bound to the user; it holds every parameter, so
nothing from the browser is trusted at `POST` time) and the session's CSRF token. The page may not be framed.

`POST` (the user's decision) checks the origin and CSRF token, consumes the consent id (a replay gets an
error page), and redirects (303) to the redirect URI with either a single-use authorization code (stored as
its SHA-256, valid `[auth] authorization_code_ttl_seconds`) or `error=access_denied`; always with `state`
and `iss`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute

from mcp_hub.authz import scopes
from mcp_hub.authz._random import new_secret, sha256_hex
from mcp_hub.authz.delegated_scopes import delegated_scopes
from mcp_hub.authz.endpoints import AUTHORIZE_PATH
from mcp_hub.authz.service import AuthService
from mcp_hub.db.auth_store import AgentRecord, AuthorizationCodeRecord
from mcp_hub.errors import OAuthError
from mcp_hub.web.login import login_url, logout_form
from mcp_hub.web.pages import FORM_ACTION_SELF, Html, html, message_page, page_response, page_route, read_own_form
from mcp_hub.web.sessions import WebSession, WebSessions

CONSENT_TTL_SECONDS: Final = 600
"""How long a consent page may stay open before its decision is refused."""
CODE_PREFIX: Final = "mcphc_"
_CODE_CHALLENGE: Final = re.compile(r"^[A-Za-z0-9_-]{43}$")  # BASE64URL(SHA-256(verifier)), RFC 7636 §4.2
_MAX_STATE_LENGTH: Final = 1024
_MAX_QUERY_BYTES: Final = 16 * 1024
_CSP_HOST: Final = re.compile(r"^[A-Za-z0-9.\-\[\]:]+$")
_CSP_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated authorization request."""

    agent: AgentRecord
    redirect_uri: str
    state: str | None
    code_challenge: str
    scope: str | None
    resource: str


def _query(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    """RFC 6749 §3.1: blank parameters count as absent; none may repeat (except RFC 8707 `resource`)."""
    if len(request.url.query) > _MAX_QUERY_BYTES:
        raise OAuthError("invalid_request", "the request is too long")
    multi = parse_qs(request.url.query, keep_blank_values=False, max_num_fields=50)
    for key, values in multi.items():
        if len(values) > 1 and key != "resource":
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
    return {key: values[-1] for key, values in multi.items()}, multi


ClientFinder = Callable[[str], Awaitable[AgentRecord | None]]
"""client_id → the agent (for a Client ID Metadata Document client, resolved and stored), or None."""


async def _client_and_redirect(find_client: ClientFinder, params: dict[str, str]) -> tuple[AgentRecord, str]:
    """Stage 1: failures here must not redirect anywhere."""
    client_id = params.get("client_id")
    if client_id is None:
        raise OAuthError("invalid_request", "the request names no client (client_id is missing)")
    agent = await find_client(client_id)
    if agent is None or not agent.enabled:
        raise OAuthError("invalid_client", "the application is not registered with this hub, or is disabled")
    if "authorization_code" not in agent.grant_types:
        raise OAuthError("unauthorized_client", "this application may not ask users for access")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise OAuthError("invalid_request", "the request names no redirect_uri")
    # T05: exact string comparison against the registration, and never a URI with a fragment (§3.1.2).
    if redirect_uri not in agent.redirect_uris or "#" in redirect_uri:
        raise OAuthError("invalid_request", "the redirect_uri is not one this application registered")
    return agent, redirect_uri


def _rest_of_request(
    service: AuthService, agent: AgentRecord, redirect_uri: str, params: dict[str, str], resources: list[str]
) -> _Request:
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
    if state is not None and len(state) > _MAX_STATE_LENGTH:
        raise OAuthError("invalid_request", f"state is longer than {_MAX_STATE_LENGTH} characters")
    resource = service.validate_resource(params, resources)
    scope = params.get("scope")
    try:
        scopes.parse_scope(scope)
    except ValueError as exc:
        raise OAuthError("invalid_scope", str(exc)) from None
    return _Request(agent, redirect_uri, state, challenge, scope, resource)


def _back_to_client(service: AuthService, redirect_uri: str, **params: str | None) -> Response:
    """RFC 6749 §4.1.2: the response parameters added to the redirect URI's query (which is kept, §3.1.2)."""
    parts = urlsplit(redirect_uri)
    added = urlencode({key: value for key, value in {**params, "iss": service.issuer}.items() if value is not None})
    query = f"{parts.query}&{added}" if parts.query else added
    return RedirectResponse(urlunsplit(parts._replace(query=query)), status_code=303)


def _error_to_client(service: AuthService, redirect_uri: str, error: OAuthError, state: str | None) -> Response:
    return _back_to_client(service, redirect_uri, error=error.error, error_description=error.description, state=state)


def _form_action(redirect_uri: str) -> str:
    """The CSP `form-action` of the consent page: the hub, and the redirect URI the decision redirects to."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https") and parts.hostname and _CSP_HOST.match(parts.netloc.rpartition("@")[2]):
        return f"{FORM_ACTION_SELF} {parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    if parts.scheme not in ("http", "https") and _CSP_SCHEME.match(parts.scheme):
        return f"{FORM_ACTION_SELF} {parts.scheme}:"  # a native app's private-use scheme (RFC 8252 §7.1)
    return FORM_ACTION_SELF


def _redirect_host(redirect_uri: str) -> str:
    parts = urlsplit(redirect_uri)
    return parts.netloc.rpartition("@")[2] or f"{parts.scheme}: (an app on this device)"


def _consent_page(
    session: WebSession, agent: AgentRecord, redirect_uri: str, granted: list[str], consent_id: str
) -> Html:
    items = [html("<li><code>{scope}</code></li>", scope=scope) for scope in granted]
    return html(
        "<h1>Allow {client} to use mcp-hub?</h1>\n"
        "<p><strong>{client}</strong> (client id <code>{client_id}</code>) asks to use mcp-hub on your behalf,"
        " as <strong>{user}</strong>.</p>\n"
        "<p>If you allow it, it will be sent back to <strong>{host}</strong> and may call these tools:</p>\n"
        '<ul aria-label="Scopes">{items}</ul>\n'
        "<p>It will never get more than your own grants allow. Only allow applications you started yourself.</p>\n"
        '<form method="post" action="{action}">\n'
        '<input type="hidden" name="consent" value="{consent}">\n'
        '<input type="hidden" name="csrf" value="{csrf}">\n'
        '<div class="actions">'
        '<button type="submit" name="decision" value="approve">Approve</button>'
        '<button type="submit" name="decision" value="deny">Deny</button>'
        "</div>\n</form>\n<footer>Not {user}? {logout}</footer>",
        client=agent.display_name or agent.name,
        client_id=agent.client_id,
        user=session.user.name,
        host=_redirect_host(redirect_uri),
        items=items,
        action=AUTHORIZE_PATH,
        consent=consent_id,
        csrf=session.csrf_token,
        logout=logout_form(session),
    )


def authorize_routes(
    service: AuthService, sessions: WebSessions, *, find_client: ClientFinder | None = None
) -> list[BaseRoute]:
    """The authorization endpoint; `find_client` defaults to the agents already in the database."""
    find = find_client or service.store.agent_by_client_id
    code_lifetime = timedelta(seconds=service.settings.auth.authorization_code_ttl_seconds)

    async def ask(request: Request) -> Response:
        try:
            params, multi = _query(request)
            agent, redirect_uri = await _client_and_redirect(find, params)
        except OAuthError as exc:
            return message_page("Cannot continue", exc.description, status=400)
        state = params.get("state")
        try:
            wanted = _rest_of_request(service, agent, redirect_uri, params, multi.get("resource", []))
        except OAuthError as exc:
            return _error_to_client(
                service, redirect_uri, exc, state if state and len(state) <= _MAX_STATE_LENGTH else None
            )

        session = await sessions.current(request)
        if session is None:
            return RedirectResponse(login_url(f"{AUTHORIZE_PATH}?{request.url.query}"), status_code=303)
        try:
            granted = await delegated_scopes(service, agent, session.user.id, wanted.scope)
        except OAuthError as exc:
            return _error_to_client(service, redirect_uri, exc, wanted.state)

        consent_id = new_secret()
        parameters: dict[str, Any] = {
            "client_id": agent.client_id,
            "redirect_uri": redirect_uri,
            "state": wanted.state,
            "code_challenge": wanted.code_challenge,
            "scope": scopes.format_scope(granted),
            "resource": wanted.resource,
        }
        expires_at = datetime.now(UTC) + timedelta(seconds=CONSENT_TTL_SECONDS)
        await service.store.create_consent_request(
            sha256_hex(consent_id), session.user.id, agent.id, parameters, expires_at
        )
        return page_response(
            "Allow access",
            _consent_page(session, agent, redirect_uri, granted, consent_id),
            form_action=_form_action(redirect_uri),
        )

    async def decide(request: Request) -> Response:
        form = await read_own_form(request, same_origin=sessions.same_origin(request))
        if not isinstance(form, dict):
            return form
        session = await sessions.current(request)
        if session is None:
            return message_page("Signed out", "Your session has ended. Start again from the application.", status=403)
        if not session.csrf_ok(form.get("csrf")):
            return message_page("Refused", "This form has expired. Start again from the application.", status=403)
        decision = form.get("decision")
        consent_id = form.get("consent")
        if decision not in ("approve", "deny") or not consent_id:
            return message_page("Bad request", "The form is incomplete.", status=400)
        parameters = await service.store.consume_consent_request(sha256_hex(consent_id), session.user.id)
        if parameters is None:
            return message_page(
                "Already answered", "This request was already answered, or it expired. Start again.", status=400
            )
        try:
            agent, redirect_uri = await _client_and_redirect(
                find, {key: value for key, value in parameters.items() if isinstance(value, str)}
            )
        except OAuthError as exc:
            return message_page("Cannot continue", exc.description, status=400)
        state = parameters.get("state")
        state = state if isinstance(state, str) else None
        if decision == "deny":
            return _error_to_client(
                service, redirect_uri, OAuthError("access_denied", "the user denied the request"), state
            )

        try:
            # Grants may have changed while the page was open: decide again, never more than was shown.
            granted = await delegated_scopes(service, agent, session.user.id, str(parameters["scope"]))
        except OAuthError as exc:
            return _error_to_client(service, redirect_uri, exc, state)
        code = new_secret(CODE_PREFIX)
        await service.store.add_authorization_code(
            sha256_hex(code),
            AuthorizationCodeRecord(
                agent_id=agent.id,
                user_id=session.user.id,
                redirect_uri=redirect_uri,
                code_challenge=str(parameters["code_challenge"]),
                scope=scopes.format_scope(granted),
                resource=str(parameters["resource"]),
                expires_at=datetime.now(UTC) + code_lifetime,
                family_id=None,
            ),
        )
        return _back_to_client(service, redirect_uri, code=code, state=state)

    return [
        page_route(AUTHORIZE_PATH, ask, methods=["GET"]),
        page_route(AUTHORIZE_PATH, decide, methods=["POST"]),
    ]
