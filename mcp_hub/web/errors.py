"""The one place where hub errors become HTTP answers of the web pages and the approvals JSON API.

| error | status | API `error` |
|---|---|---|
| `UnsupportedMediaTypeError` | 415 (API), 400 (page forms) | `unsupported_media_type` |
| `InvalidRequestError`, other `InvalidInputError` | 400 | `invalid_request` |
| `ActionNotFoundError`, `NotFoundError` | 404 | `not_found` |
| `DecisionForbiddenError` | 403 | `forbidden` |
| `DecisionConflictError`, `ConflictError` | 409 | `conflict` |
| any other `HubError` | 500 | `internal_error` |
| `OAuthError` on the consent page (the client or redirect URI cannot be trusted) | 400, "Cannot continue" | - |

Pages show a `Problem` (the status, a title from `TITLES`, the message) in the hub's message page
(`templates/message.html`, through `mcp_hub.web.pages.Pages.problem`); the API answers
`{"error": ..., "message": ...}`, refusals of the session check included (401 `unauthenticated`, 403
`forbidden`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from starlette.responses import JSONResponse

from mcp_hub.errors import (
    ActionNotFoundError,
    ConflictError,
    DecisionConflictError,
    DecisionForbiddenError,
    HubError,
    InvalidInputError,
    NotFoundError,
    OAuthError,
    UnsupportedMediaTypeError,
)

TITLES: Final = {400: "Bad request", 403: "Not allowed", 404: "Not found", 409: "Already decided", 415: "Bad request"}


def status_and_code(exc: HubError, *, api: bool) -> tuple[int, str]:
    """The HTTP status and the API's `error` for `exc` (a page form with the wrong media type is a 400)."""
    if isinstance(exc, UnsupportedMediaTypeError):
        return (415 if api else 400), "unsupported_media_type"
    if isinstance(exc, InvalidInputError):
        return 400, "invalid_request"
    if isinstance(exc, ActionNotFoundError | NotFoundError):
        return 404, "not_found"
    if isinstance(exc, DecisionForbiddenError):
        return 403, "forbidden"
    if isinstance(exc, DecisionConflictError | ConflictError):
        return 409, "conflict"
    return 500, "internal_error"


@dataclass(frozen=True, slots=True)
class Problem:
    """What a page says when it cannot do what was asked."""

    status: int
    title: str
    message: str


def problem_for(exc: HubError) -> Problem:
    """The page's answer to `exc`."""
    if isinstance(exc, OAuthError):
        return Problem(400, "Cannot continue", exc.description)
    status, _ = status_and_code(exc, api=False)
    return Problem(status, TITLES.get(status, "Refused"), str(exc))


def api_error(status: int, error: str, message: str) -> JSONResponse:
    """An error of the JSON API."""
    return JSONResponse({"error": error, "message": message}, status_code=status)


def api_error_for(exc: HubError) -> JSONResponse:
    """The API's answer to `exc`."""
    status, code = status_and_code(exc, api=True)
    return api_error(status, code, str(exc))
