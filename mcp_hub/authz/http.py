"""OAuth errors and bearer challenges on the wire.

RFC 6749 §5.2 (token endpoint error responses, JSON, `Cache-Control: no-store`), RFC 6750 §3
(`WWW-Authenticate: Bearer` with `error`, `error_description`, `scope`) and RFC 9728 §5.1
(`resource_metadata` in the challenge, so a client finds the authorization server).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from mcp_hub.errors import OAuthError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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
