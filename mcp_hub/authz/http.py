"""OAuth on the wire: reading the endpoints' forms, and the one place OAuth errors and bearer challenges are written.

RFC 6749 §3.2 (form-encoded requests, no parameter twice), §5.2 (token endpoint error responses, JSON,
`Cache-Control: no-store`), RFC 6750 §3 (`WWW-Authenticate: Bearer` with `error`, `error_description`,
`scope`) and RFC 9728 §5.1 (`resource_metadata` in the challenge, so a client finds the authorization server).

- `OAuthError` → its `status` (400 unless set) and `{"error", "error_description"}`; `invalid_client` is always
  401 with `WWW-Authenticate: Basic realm="mcp-hub"`;
- `InvalidTokenError` → 401 with `WWW-Authenticate: Bearer resource_metadata=..., error=...,
  scope="tool:* prompt:* resource:*"`; a refusal about DPoP, or any refusal where DPoP is required, challenges
  with `DPoP` instead (RFC 9449 §7.1: `algs` names the proof algorithms, `error="invalid_dpop_proof"` a bad
  proof); `InvalidDpopProofError` at the token endpoint is the OAuth error `invalid_dpop_proof` (400, §5);
- `AccessDeniedError` → 403 with `WWW-Authenticate: Bearer ..., error="insufficient_scope", scope=<the tool's>`.
"""

from __future__ import annotations

from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_hub.authz.dpop import DPOP_ALGORITHMS
from mcp_hub.bodies import FormData, FormRules, read_form
from mcp_hub.errors import (
    AccessDeniedError,
    InvalidDpopProofError,
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)

NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
OAUTH_FORM: Final = FormRules(max_bytes=64 * 1024, max_fields=100, keep_blank=False, repeatable=frozenset({"resource"}))
"""What the token, revocation and introspection endpoints accept (RFC 6749 §3.2: blank means absent)."""
EVERY_SCOPE: Final = ("tool:*", "prompt:*", "resource:*")
"""What a client may ask for to get everything its grants allow (the challenge's `scope`, metadata's list)."""
"""What a 401 suggests a client ask for: the token endpoint narrows it to the subject's grants."""


async def read_oauth_form(request: Request) -> FormData:
    """The form of an OAuth endpoint; a form the hub cannot read is `invalid_request` (RFC 6749 §5.2)."""
    try:
        return await read_form(request, OAUTH_FORM)
    except InvalidRequestError as exc:
        raise OAuthError("invalid_request", str(exc)) from None


def oauth_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    """A JSON answer of an OAuth endpoint: never cached (RFC 6749 §5.1)."""
    return JSONResponse(body, status_code=status, headers=NO_STORE)


def oauth_error_response(error: OAuthError) -> JSONResponse:
    """RFC 6749 §5.2. `invalid_client` is always 401, whoever raised it, with a `WWW-Authenticate` challenge
    (RFC 9110 §15.5.2 requires one on every 401; §5.2 requires the Basic scheme when the client used it)."""
    status = 401 if error.error == "invalid_client" else error.status
    response = oauth_json({"error": error.error, "error_description": error.description}, status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="mcp-hub"'
    return response


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    resource_metadata: str, *, error: str | None = None, description: str | None = None, scope: str | None = None
) -> str:
    """The `WWW-Authenticate` value of a 401 or 403 from the resource server."""
    parts = [f"resource_metadata={_quoted(resource_metadata)}"]
    if error is not None:
        parts.append(f"error={_quoted(error)}")
    if description is not None:
        parts.append(f"error_description={_quoted(description)}")
    if scope is not None:
        parts.append(f"scope={_quoted(scope)}")
    return "Bearer " + ", ".join(parts)


def token_challenge(
    error: InvalidTokenError, resource_metadata: str, *, scope: str | None = None, dpop_required: bool = False
) -> str:
    """The `WWW-Authenticate` value of a 401: `Bearer` (RFC 6750 §3), or `DPoP` with `algs` (RFC 9449 §7.1) for
    a refusal about DPoP and wherever DPoP is required."""
    if not (error.dpop or dpop_required):
        return bearer_challenge(resource_metadata, error=error.error, description=error.description, scope=scope)
    parts = [f"resource_metadata={_quoted(resource_metadata)}", f"algs={_quoted(' '.join(DPOP_ALGORITHMS))}"]
    if error.error is not None:
        parts.append(f"error={_quoted(error.error)}")
        parts.append(f"error_description={_quoted(error.description)}")
    if scope is not None:
        parts.append(f"scope={_quoted(scope)}")
    return "DPoP " + ", ".join(parts)


def unauthorized_response(
    error: InvalidTokenError, resource_metadata: str, *, dpop_required: bool = False
) -> JSONResponse:
    """401 for a missing or unusable access token (RFC 6750 §3.1; no `error` at all when no token was sent)."""
    challenge = token_challenge(error, resource_metadata, scope=" ".join(EVERY_SCOPE), dpop_required=dpop_required)
    body = {"error": error.error or "unauthorized", "error_description": error.description}
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def dpop_proof_refused(error: InvalidDpopProofError) -> OAuthError:
    """A bad proof at the token endpoint: RFC 9449 §5 `invalid_dpop_proof` (400)."""
    return OAuthError("invalid_dpop_proof", error.description)


def insufficient_scope_challenge(error: AccessDeniedError, resource_metadata: str) -> str:
    """The `WWW-Authenticate` value of a 403 for a tool outside the caller's grants (RFC 6750 §3.1)."""
    return bearer_challenge(
        resource_metadata, error="insufficient_scope", description=str(error), scope=error.required_scope
    )
