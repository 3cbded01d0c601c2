"""Each surface maps the one error tree to its wire in one place (issue 8); these are those places, class by class.

The tables are the docstrings of `mcp_hub.errors`, `mcp_hub.gateway.errors`, `mcp_hub.authz.http` and
`mcp_hub.web.errors`. Codes named by a specification are cited; the others are our choices.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from mcp_types.jsonrpc import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
)

from mcp_hub import errors
from mcp_hub.authz.http import insufficient_scope_challenge, oauth_error_response, unauthorized_response
from mcp_hub.cli.main import exit_for
from mcp_hub.errors import (
    AccessDeniedError,
    ActionNotFoundError,
    ConfigError,
    ConflictError,
    ConnectorUnavailableError,
    DatabaseError,
    DecisionConflictError,
    DecisionForbiddenError,
    DownstreamRejectedError,
    DownstreamTimeoutError,
    HeaderMismatchError,
    HubError,
    InvalidCursorError,
    InvalidInputError,
    InvalidRequestError,
    InvalidTokenError,
    MissingCapabilityError,
    NotFoundError,
    OAuthError,
    QuestionRefusedError,
    ResourceNotFoundError,
    TooManyPendingError,
    UnknownPromptError,
    UnknownToolError,
    UnsupportedMediaTypeError,
)
from mcp_hub.gateway.errors import FORBIDDEN, jsonrpc_error, jsonrpc_error_body, tool_result_for
from mcp_hub.web.errors import Problem, problem_for, status_and_code

EVERY_HUB_ERROR = sorted(
    (member for member in vars(errors).values() if inspect.isclass(member) and issubclass(member, HubError)),
    key=lambda member: member.__name__,
)


def an_instance(kind: type[HubError]) -> HubError:
    """One instance of `kind`, whatever its constructor takes."""
    special: dict[type[HubError], HubError] = {
        ConfigError: ConfigError("config.toml", "hub.mcp_path", "must start with '/'"),
        UnknownToolError: UnknownToolError("nope__tool"),
        AccessDeniedError: AccessDeniedError("faults__pid", "tool:faults__pid"),
        OAuthError: OAuthError("invalid_grant", "the code was used"),
        InvalidTokenError: InvalidTokenError("the access token has expired"),
        MissingCapabilityError: MissingCapabilityError("Missing required client capability", {"extensions": {}}),
        DownstreamRejectedError: DownstreamRejectedError("faults", INVALID_PARAMS, "no such thing"),
        QuestionRefusedError: QuestionRefusedError(INVALID_REQUEST, "the client did not declare elicitation"),
    }
    if kind in special:
        return special[kind]
    if issubclass(kind, errors.DownstreamError):
        return kind("faults", "connector 'faults' failed")
    return kind("what went wrong")


@pytest.mark.parametrize(
    ("error", "code", "data"),
    [
        (UnknownToolError("nope__tool"), INVALID_PARAMS, None),
        (InvalidCursorError("Invalid cursor: 'x'"), INVALID_PARAMS, None),
        (ActionNotFoundError("Failed to retrieve task: Task not found"), INVALID_PARAMS, None),
        (
            AccessDeniedError("faults__pid", "tool:faults__pid"),
            FORBIDDEN,
            {"error": "insufficient_scope", "scope": "tool:faults__pid"},
        ),
        (InvalidTokenError("the access token has been revoked"), FORBIDDEN, {"error": "invalid_token"}),
        (
            MissingCapabilityError("Missing required client capability", {"extensions": {"x": {}}}),
            MISSING_REQUIRED_CLIENT_CAPABILITY,
            {"requiredCapabilities": {"extensions": {"x": {}}}},
        ),
        (HeaderMismatchError("Mcp-Name header does not match"), HEADER_MISMATCH, None),
        (DatabaseError("the database is down"), INTERNAL_ERROR, None),
        (UnknownPromptError("nope__prompt"), INVALID_PARAMS, None),
        (ResourceNotFoundError("mcp-hub://nope/x"), INVALID_PARAMS, {"uri": "mcp-hub://nope/x"}),
        (DownstreamRejectedError("faults", -32042, "the downstream's own words", {"k": 1}), -32042, {"k": 1}),
        (ConnectorUnavailableError("faults", "connector 'faults' is not connected (down)"), INTERNAL_ERROR, None),
    ],
)
def test_mcp_errors_get_their_json_rpc_code_and_data(error: HubError, code: int, data: Any) -> None:
    """MCP spec (tools: -32602 for unknown tools; resources: -32602 for a resource not found, the URI in `data`;
    2026-07-28: -32020 header mismatch, -32021 missing capability); -32003 is ours; a downstream's JSON-RPC error
    keeps its code and data (issue 9 §5). The message is the error's own text (for a downstream's: behind its
    connector)."""
    mapped = jsonrpc_error(error)
    body = jsonrpc_error_body(error, 7)

    assert (mapped.error.code, mapped.error.message, mapped.error.data) == (code, str(error), data)
    assert body["id"] == 7
    assert body["error"]["code"] == code
    assert body["error"].get("data") == data


@pytest.mark.parametrize("kind", EVERY_HUB_ERROR, ids=lambda kind: kind.__name__)
def test_every_hub_error_has_an_answer_on_every_surface(kind: type[HubError]) -> None:
    """Our choice: no hub error reaches a client as an unmapped exception; the catch-all is an internal error."""
    error = an_instance(kind)

    assert jsonrpc_error(error).error.code in {
        INVALID_PARAMS,
        FORBIDDEN,
        HEADER_MISMATCH,
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        INTERNAL_ERROR,
    }
    assert status_and_code(error, api=True)[0] in {400, 403, 404, 409, 415, 500}
    assert status_and_code(error, api=False)[0] in {400, 403, 404, 409, 500}


@pytest.mark.parametrize(
    "error",
    [
        ConnectorUnavailableError("faults", "connector 'faults' is not connected (down)"),
        TooManyPendingError("agent 'a' already has 10 actions waiting"),
    ],
)
def test_failures_of_a_call_are_tool_results_the_model_reads(
    error: ConnectorUnavailableError | TooManyPendingError,
) -> None:
    """MCP spec (tools, error handling): execution failures are results with `isError: true`; a refusal at the
    pending cap carries its reason in `_meta` (our choice)."""
    result = tool_result_for(error)

    assert result["isError"] is True
    assert result["content"] == [{"type": "text", "text": f"[mcp-hub] {error}"}]
    if isinstance(error, TooManyPendingError):
        assert result["_meta"] == {"io.github.mcp-hub/approval": {"refused": "too_many_pending"}}


def test_a_timeout_names_the_connector_in_the_result() -> None:
    result = tool_result_for(DownstreamTimeoutError("faults", "connector 'faults' did not answer within 10 s"))

    assert "connector 'faults'" in result["content"][0]["text"]


@pytest.mark.parametrize(
    ("error", "status", "basic_challenge"),
    [
        (OAuthError("invalid_client", "client authentication failed", 401), 401, True),
        (OAuthError("invalid_client", "raised as a 400 by mistake"), 401, True),
        (OAuthError("invalid_grant", "the code was used"), 400, False),
        (OAuthError("server_error", "try again", status=500), 500, False),
    ],
)
def test_oauth_errors_are_rfc_6749_answers(error: OAuthError, status: int, basic_challenge: bool) -> None:
    """RFC 6749 §5.2: JSON `error` and `error_description`, never cached; `invalid_client` is always 401 with a
    `WWW-Authenticate` challenge (RFC 9110 §15.5.2)."""
    response = oauth_error_response(error)

    assert response.status_code == status
    assert response.headers["cache-control"] == "no-store"
    assert ("www-authenticate" in response.headers) is basic_challenge


def test_bearer_refusals_carry_rfc_6750_challenges() -> None:
    """RFC 6750 §3, RFC 9728 §5.1: the challenge names the resource metadata; a missing token has no `error`."""
    metadata = "https://hub.example/.well-known/oauth-protected-resource/mcp"
    missing = unauthorized_response(InvalidTokenError("an access token is required", error=None), metadata)
    expired = unauthorized_response(InvalidTokenError("the access token has expired"), metadata)
    denied = insufficient_scope_challenge(AccessDeniedError("faults__pid", "tool:faults__pid"), metadata)

    assert missing.status_code == expired.status_code == 401
    assert "error=" not in missing.headers["www-authenticate"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]
    assert f'resource_metadata="{metadata}"' in denied
    assert 'error="insufficient_scope"' in denied
    assert 'scope="tool:faults__pid"' in denied


@pytest.mark.parametrize(
    ("error", "api_answer", "page_status"),
    [
        (UnsupportedMediaTypeError("the body must be application/json"), (415, "unsupported_media_type"), 400),
        (InvalidRequestError("the request is larger than 16384 bytes"), (400, "invalid_request"), 400),
        (ActionNotFoundError("no action 'apv_x'"), (404, "not_found"), 404),
        (NotFoundError("no user named 'x'"), (404, "not_found"), 404),
        (DecisionForbiddenError("you own the agent that asks"), (403, "forbidden"), 403),
        (DecisionConflictError("decisions are final"), (409, "conflict"), 409),
        (ConflictError("a user named 'x' already exists"), (409, "conflict"), 409),
        (DatabaseError("the database is down"), (500, "internal_error"), 500),
    ],
)
def test_web_answers_have_the_status_of_their_error(
    error: HubError, api_answer: tuple[int, str], page_status: int
) -> None:
    """Our choice (RFC 9110 status semantics): 404 for what does not exist, 403 for separation of duties, 409
    for a decision already made; the API says 415 for a body that is not JSON, a page form says 400."""
    assert status_and_code(error, api=True) == api_answer
    assert status_and_code(error, api=False)[0] == page_status


@pytest.mark.parametrize(
    ("error", "problem"),
    [
        (
            InvalidRequestError("parameter 'csrf' is repeated"),
            Problem(400, "Bad request", "parameter 'csrf' is repeated"),
        ),
        (ActionNotFoundError("There is no action apv_x."), Problem(404, "Not found", "There is no action apv_x.")),
        (DecisionForbiddenError("you own the agent"), Problem(403, "Not allowed", "you own the agent")),
        (DecisionConflictError("decisions are final"), Problem(409, "Already decided", "decisions are final")),
        (OAuthError("invalid_request", "unknown client"), Problem(400, "Cannot continue", "unknown client")),
    ],
)
def test_web_pages_say_what_went_wrong_with_the_status_of_their_error(error: HubError, problem: Problem) -> None:
    """Our choice: a page shows the error's message under a title for its status; an OAuth error on the consent
    page (a client or redirect URI that cannot be trusted) is shown, never redirected (RFC 6749 §4.1.2.1)."""
    assert problem_for(error) == problem


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (ConfigError("config.toml", "hub.mcp_path", "must start with '/'"), 2, "configuration error: config.toml: "),
        (InvalidInputError("'tool:a b' is not a grant pattern"), 2, "'tool:a b' is not a grant pattern"),
        (InvalidRequestError("the request is larger than 10 bytes"), 2, "the request is larger"),
        (NotFoundError("no agent named 'nobody'"), 1, "no agent named 'nobody'"),
        (DecisionConflictError("decisions are final"), 1, "decisions are final"),
        (DatabaseError("the database is down"), 1, "the database is down"),
    ],
)
def test_the_command_exits_2_for_bad_input_and_1_for_a_refusal(error: HubError, code: int, message: str) -> None:
    """Our choice (docs/oauth.md): a configuration error or bad input exits 2, a refusal 1, with the message
    (never a traceback; `tests/authz/test_admin_cli.py` runs the installed command end to end)."""
    exit_code, printed = exit_for(error)

    assert exit_code == code
    assert printed.startswith(message)
