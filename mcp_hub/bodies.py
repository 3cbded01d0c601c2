"""Request bodies the hub reads from outside: forms and small JSON objects, each bounded while it is read.

Forms are `application/x-www-form-urlencoded` (WHATWG URL §5, as `urllib.parse` reads it). Every form the hub
reads, from an OAuth client (token, revocation and introspection endpoints, RFC 6749 §3.2; the authorization
request's query, §3.1) or from a browser (sign-in, consent and approval pages), goes through
`read_form` or `parse_form` with the limits of its `FormRules`: a size cap checked while reading, a cap on the
number of fields, and no repeated field except the ones named (RFC 6749 §3.1 and §3.2: "parameters MUST NOT
be included more than once"; RFC 8707 `resource` is the exception). Failures are `InvalidRequestError`,
which each surface answers in its own way (a wrong media type is `UnsupportedMediaTypeError`).

JSON bodies (dynamic client registration, the approvals API) are read by `read_json_object`: the media type
`application/json`, at most `limit` bytes, one JSON object. Every JSON the hub parses from outside (bodies, a
downstream's SSE data, fetched documents, token payloads) goes through `parse_json`, whose nesting depth is
bounded (pydantic-core's parser refuses deeper documents with a `ValueError`), so no document can exhaust the
stack (`RecursionError` is not a `ValueError`, and would be a 500).

Every body is also bounded in time: `BodyDeadline` answers 408 to a client that sends it too slowly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast
from urllib.parse import parse_qsl

import anyio
import pydantic_core
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcp_hub.errors import InvalidRequestError, UnsupportedMediaTypeError

FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
JSON_MEDIA_TYPE: Final = "application/json"


@dataclass(frozen=True, slots=True)
class FormRules:
    """The limits one kind of form is read with."""

    max_bytes: int
    max_fields: int
    keep_blank: bool
    """False: a field with an empty value counts as absent (RFC 6749 §3.1); True: it is an empty string."""
    repeatable: frozenset[str] = field(default_factory=frozenset[str])


@dataclass(frozen=True, slots=True)
class FormData:
    """Decoded fields: the value of each, and every value of those allowed to repeat."""

    values: Mapping[str, str]
    repeated: Mapping[str, tuple[str, ...]]

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def all(self, name: str) -> tuple[str, ...]:
        """Every value of `name`, in order (one at most, unless the rules let it repeat)."""
        return self.repeated.get(name, ())

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)


def parse_form(text: str, rules: FormRules) -> FormData:
    """Decode `text` (a body or a query string) under `rules`; `InvalidRequestError` naming what is wrong."""
    if len(text.encode()) > rules.max_bytes:
        raise InvalidRequestError(f"the request is larger than {rules.max_bytes} bytes")
    try:
        pairs = parse_qsl(text, keep_blank_values=rules.keep_blank, max_num_fields=rules.max_fields)
    except ValueError:
        raise InvalidRequestError(f"the request has more than {rules.max_fields} fields") from None
    every: dict[str, list[str]] = {}
    for name, value in pairs:
        every.setdefault(name, []).append(value)
    for name, values in every.items():
        if len(values) > 1 and name not in rules.repeatable:
            raise InvalidRequestError(f"parameter {name!r} is repeated")
    return FormData(
        values={name: values[-1] for name, values in every.items()},
        repeated={name: tuple(values) for name, values in every.items()},
    )


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_bounded(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses (a 500 instead of reading the body).
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise InvalidRequestError(f"the request is larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise InvalidRequestError(f"the request is larger than {limit} bytes")
    return bytes(body)


async def read_form(request: Request, rules: FormRules) -> FormData:
    """The request's body as form data: the media type checked, at most `rules.max_bytes` read."""
    if _media_type(request) != FORM_MEDIA_TYPE:
        raise UnsupportedMediaTypeError(f"the body must be {FORM_MEDIA_TYPE}")
    body = await _read_bounded(request, rules.max_bytes)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise InvalidRequestError("the body is not valid form data (not UTF-8)") from None
    return parse_form(text, rules)


def parse_json(data: str | bytes | bytearray) -> Any:
    """JSON from outside, its depth bounded: `ValueError` for anything that is not JSON, too deep included."""
    return pydantic_core.from_json(data)


async def read_json_object(request: Request, limit: int) -> dict[str, Any]:
    """An `application/json` body of at most `limit` bytes that holds one JSON object."""
    if _media_type(request) != JSON_MEDIA_TYPE:
        raise UnsupportedMediaTypeError(f"the body must be {JSON_MEDIA_TYPE}")
    body = await _read_bounded(request, limit)
    try:
        parsed: object = parse_json(body)
    except ValueError:
        raise InvalidRequestError("the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("the body must be a JSON object")
    return cast("dict[str, Any]", parsed)


_TIMED_OUT_HEADERS: Final = [(b"content-type", b"text/plain"), (b"connection", b"close")]


class BodyDeadline:
    """ASGI middleware: a request's whole body must arrive within `seconds` of the request (slow-body attacks
    hold a worker and its buffers forever otherwise; uvicorn has no such timeout).

    Past the deadline the client gets 408 and the connection is closed (`Connection: close`); the app reading
    the body is told the client went away (`http.disconnect`), and whatever it sends afterwards is dropped.
    Once the body is complete, `receive` is the server's own again (streams wait on it for the disconnect).
    """

    def __init__(self, app: ASGIApp, *, seconds: float) -> None:
        self._app = app
        self._seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        body = TimedBody(receive, send, self._seconds)

        async def guarded_send(message: Message) -> None:
            if body.timed_out:
                return  # answered with 408 already
            if message["type"] == "http.response.start":
                body.response_started = True
            await send(message)

        await self._app(scope, body.receive, guarded_send)


class TimedBody:
    """One request's body under a deadline: `receive` is the app's `receive` until the body is complete or the
    deadline passes; then the client is answered 408 through `answer` (unless `response_started`) and the app
    is told the client went away. `BodyDeadline` and the MCP front door (`gateway/front_door.py`) share it."""

    __slots__ = ("_answer", "_deadline", "_receive", "body_done", "response_started", "timed_out")

    def __init__(self, receive: Receive, answer: Send, seconds: float) -> None:
        self._receive = receive
        self._answer = answer
        self._deadline = anyio.current_time() + seconds
        self.body_done = False
        self.timed_out = False
        self.response_started = False
        """Set by the caller's `send` once a response start went out: then no 408 can be sent."""

    async def receive(self) -> Message:
        """The next message of the request, bounded by the deadline while the body is incomplete."""
        if self.timed_out:
            return {"type": "http.disconnect"}
        if self.body_done:
            return await self._receive()
        message: Message | None = None
        with anyio.move_on_after(max(self._deadline - anyio.current_time(), 0)):
            message = await self._receive()
        if message is None:
            self.timed_out = True
            if not self.response_started:
                await self._answer({"type": "http.response.start", "status": 408, "headers": _TIMED_OUT_HEADERS})
                await self._answer({"type": "http.response.body", "body": b"request body not received in time"})
            return {"type": "http.disconnect"}
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.body_done = True
        return message
