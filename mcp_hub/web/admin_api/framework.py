"""Declared operations → Starlette routes and the OpenAPI 3.1 document, from one declaration each.

An `Operation` names its method and path, its query, body and response models (pydantic), its success status and
the error statuses it may answer. `AdminApi.routes()` serves each one: the admin check (`AdminAccess`), the CSRF
check of cookie-authenticated writes, the query and the body read (bounded, `mcp_hub.bodies`) and validated by
their models, the handler, and the response serialised by its model. `AdminApi.openapi()` writes the document
from the same declarations (the models' JSON Schemas under `components/schemas`), so the two never disagree.

Answers: validation failures are 422 with the field named (`errors[].field`, dotted, e.g. `body.grants.0`);
a body that is not a JSON object 400; another media type 415; a refused change as `mcp_hub.web.errors` maps hub
errors (404, 409), except `InvalidInputError` raised by a service, which is a 422 too (a value the models let
through but the hub refuses). Every answer is `Cache-Control: no-store` (a secret is shown once).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from mcp_hub.admin.changes import Actor
from mcp_hub.bodies import read_json_object
from mcp_hub.credentials import same_text
from mcp_hub.errors import HubError, InvalidInputError, InvalidRequestError, UnsupportedMediaTypeError
from mcp_hub.web.errors import status_and_code
from mcp_hub.web.sessions import CSRF_HEADER

MAX_BODY_BYTES: Final = 64 * 1024
NO_STORE: Final = {"Cache-Control": "no-store"}
T = TypeVar("T")
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class FieldProblem(BaseModel):
    field: str | None
    message: str


class ErrorBody(BaseModel):
    """Every error answer of the admin API."""

    error: str
    message: str
    errors: list[FieldProblem] | None = None


class NoQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler gets: who asks, the path parameters, the validated query and body."""

    actor: Actor
    path: Mapping[str, str]
    query: Any
    body: Any


Handler = Callable[[Call], Awaitable[BaseModel | Response | None]]
"""A handler returns the response model's instance, None (204), or, for an operation of another `media_type`, the
Starlette response itself (a stream)."""


@dataclass(frozen=True, slots=True)
class Operation:
    method: Method
    path: str
    """Under the API's prefix, Starlette's `{name}` parameters."""
    handler: Handler
    summary: str
    tag: str
    response: type[BaseModel] | None
    """None: 204, no body."""
    body: type[BaseModel] | None = None
    query: type[BaseModel] = NoQuery
    status: int = 200
    errors: tuple[int, ...] = ()
    """The statuses besides 401, 403, 422 and 400 that it may answer (404, 409)."""
    media_type: str = "application/json"
    """Another (`application/x-ndjson`): the body is a sequence of `response` objects, one JSON per line."""

    @property
    def writes(self) -> bool:
        return self.method != "GET"

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")


class Authenticated:
    """An admin the access check let in."""

    def __init__(self, actor: Actor, csrf_token: str | None) -> None:
        self.actor = actor
        self.csrf_token = csrf_token
        """The web session's CSRF token (None for a bearer token, which a browser never sends by itself)."""


class Access(Protocol):
    """What `AdminApi` asks of the access check (`mcp_hub.web.admin_api.access.AdminAccess`)."""

    async def authenticate(self, request: Request) -> Authenticated | Response:
        """The admin behind the request, or the refusal to send."""
        ...

    def same_origin(self, request: Request) -> bool:
        """Does a cookie-authenticated write come from the hub's own pages?"""
        ...

    def security_schemes(self) -> dict[str, Any]:
        """The OpenAPI `securitySchemes` of the ways in."""
        ...


def error_response(
    status: int,
    error: str,
    message: str,
    problems: Sequence[FieldProblem] | None = None,
    *,
    challenge: str | None = None,
) -> Response:
    """Every error answer of the admin API: an `ErrorBody`, never stored; `challenge` is its `WWW-Authenticate`."""
    body = ErrorBody(error=error, message=message, errors=list(problems) if problems is not None else None)
    headers = dict(NO_STORE) if challenge is None else {**NO_STORE, "WWW-Authenticate": challenge}
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def _validation_response(where: str, exc: ValidationError) -> Response:
    problems = [
        FieldProblem(field=".".join([where, *(str(part) for part in problem["loc"])]), message=problem["msg"])
        for problem in exc.errors(include_url=False, include_input=False)
    ]
    return error_response(422, "validation_failed", f"the {where} is not valid", problems)


def hub_error_response(exc: HubError) -> Response:
    if isinstance(exc, InvalidInputError) and not isinstance(exc, InvalidRequestError | UnsupportedMediaTypeError):
        return error_response(422, "validation_failed", str(exc), [FieldProblem(field=None, message=str(exc))])
    status, code = status_and_code(exc, api=True)
    return error_response(status, code, str(exc) if status != 500 else "the hub could not do this")


@dataclass
class AdminApi:
    """The operations under `prefix`, behind `access`."""

    prefix: str
    access: Access
    operations: list[Operation] = field(default_factory=list[Operation])

    def routes(self) -> list[BaseRoute]:
        by_path: dict[str, list[Operation]] = {}
        for operation in self.operations:
            by_path.setdefault(operation.path, []).append(operation)
        routes: list[BaseRoute] = [Route(self.prefix + "/openapi.json", self._openapi, methods=["GET"])]
        for path, operations in by_path.items():
            routes.append(
                Route(self.prefix + path, self._dispatcher(operations), methods=[o.method for o in operations])
            )
        return routes

    def _dispatcher(self, operations: list[Operation]) -> Callable[[Request], Awaitable[Response]]:
        by_method: dict[str, Operation] = {operation.method: operation for operation in operations}

        async def dispatch(request: Request) -> Response:
            operation = by_method.get(request.method)
            if operation is None:  # HEAD of a GET route
                operation = by_method["GET"]
            return await self._serve(operation, request)

        return dispatch

    async def _serve(self, operation: Operation, request: Request) -> Response:
        admitted = await self.access.authenticate(request)
        if isinstance(admitted, Response):
            return admitted
        if operation.writes and admitted.csrf_token is not None:
            # A browser sends the session cookie by itself: a write must prove it comes from the hub's own page
            # (same origin, and the session's CSRF token, which only a page of the hub can read; threat T06/T20).
            if not self.access.same_origin(request):
                return error_response(403, "forbidden", "cross-site request refused")
            if not same_text(request.headers.get(CSRF_HEADER), admitted.csrf_token):
                return error_response(403, "csrf", f"the {CSRF_HEADER} header is missing or wrong")
        try:
            query = operation.query.model_validate(dict(request.query_params))
        except ValidationError as exc:
            return _validation_response("query", exc)
        body: Any = None
        if operation.body is not None:
            try:
                fields = await read_json_object(request, MAX_BODY_BYTES)
                body = operation.body.model_validate(fields)
            except ValidationError as exc:
                return _validation_response("body", exc)
            except HubError as exc:
                return hub_error_response(exc)
        call = Call(actor=admitted.actor, path=dict(request.path_params), query=query, body=body)
        try:
            result = await operation.handler(call)
        except HubError as exc:
            return hub_error_response(exc)
        headers = dict(NO_STORE)
        if admitted.csrf_token is not None:
            headers[CSRF_HEADER] = admitted.csrf_token
        if result is None:
            return Response(status_code=204, headers=headers)
        if isinstance(result, Response):
            result.headers.update(headers)
            return result
        return JSONResponse(result.model_dump(mode="json"), status_code=operation.status, headers=headers)

    async def _openapi(self, _request: Request) -> Response:
        return JSONResponse(self.openapi())

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the operations."""
        models: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorBody, "serialization")]
        for operation in self.operations:
            if operation.body is not None:
                models.append((operation.body, "validation"))
            if operation.response is not None:
                models.append((operation.response, "serialization"))
        refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
        paths: dict[str, dict[str, Any]] = {}
        for operation in self.operations:
            paths.setdefault(self.prefix + operation.path, {})[operation.method.lower()] = self._operation(
                operation, refs
            )
        return {
            "openapi": "3.1.0",
            "info": {
                "title": "mcp-hub admin API",
                "version": "1",
                "description": "The hub's admin operations (docs/admin-api.md). Every change is audited.",
            },
            "paths": paths,
            "components": {"schemas": definitions.get("$defs", {}), "securitySchemes": self.access.security_schemes()},
            "security": [{name: _scopes(scheme)} for name, scheme in self.access.security_schemes().items()],
        }

    def _operation(self, operation: Operation, refs: Mapping[tuple[Any, JsonSchemaMode], Any]) -> dict[str, Any]:
        error = {"content": {"application/json": {"schema": refs[(ErrorBody, "serialization")]}}}
        responses: dict[str, Any] = {}
        if operation.response is None:
            responses[str(operation.status if operation.status != 200 else 204)] = {"description": "done"}
        elif operation.media_type != "application/json":
            item = refs[(operation.response, "serialization")]
            responses[str(operation.status)] = {
                "description": f"{operation.media_type}: one JSON object per line, each as `x-item-schema`",
                "content": {operation.media_type: {"schema": {"type": "string"}, "x-item-schema": item}},
            }
        else:
            responses[str(operation.status)] = {
                "description": "done",
                "content": {"application/json": {"schema": refs[(operation.response, "serialization")]}},
            }
        for status, why in (
            (400, "the body is not one JSON object"),
            (401, "no admin credentials (a `WWW-Authenticate` challenge says how)"),
            (403, "not an admin, or (a web session's write) cross-site or without the CSRF token"),
            (422, "a field is not valid (named in `errors`)"),
            *(
                (status, {404: "no such thing", 409: "in conflict with the current state"}[status])
                for status in operation.errors
            ),
        ):
            if status == 400 and operation.body is None:
                continue
            responses[str(status)] = {"description": why, **error}
        if operation.body is not None:
            responses["415"] = {"description": "the body is not application/json", **error}
        document: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "tags": [operation.tag],
            "parameters": [*_path_parameters(operation.path), *_query_parameters(operation.query)],
            "responses": responses,
        }
        if operation.body is not None:
            document["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(operation.body, "validation")]}},
            }
        return document


def _scopes(scheme: Mapping[str, Any]) -> list[str]:
    flows: Mapping[str, Any] = scheme.get("flows", {})
    return sorted({scope for flow in flows.values() for scope in flow.get("scopes", {})})


PATH_PARAMETER: Final = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^/]+$"}


def _path_parameters(path: str) -> list[dict[str, Any]]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
    return [{"name": name, "in": "path", "required": True, "schema": PATH_PARAMETER} for name in names]


def _query_parameters(query: type[BaseModel]) -> list[dict[str, Any]]:
    schema = query.model_json_schema()
    required = set(schema.get("required", []))
    properties: dict[str, Any] = schema.get("properties", {})
    return [
        {"name": name, "in": "query", "required": name in required, "schema": _inline(prop, schema.get("$defs", {}))}
        for name, prop in properties.items()
    ]


def _inline(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without `$ref`s into the query model's own definitions (enums)."""
    reference = schema.get("$ref")
    if isinstance(reference, str):
        return dict(definitions[reference.rsplit("/", 1)[-1]])
    if "anyOf" in schema:
        return {**schema, "anyOf": [_inline(item, definitions) for item in schema["anyOf"]]}
    return dict(schema)


class ListQuery(BaseModel):
    """Keyset paging of a list sorted by its key: `after` is the last key of the previous page (its `next`)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=500)
    after: str | None = Field(default=None, min_length=1, max_length=200)


def page(items: Sequence[T], key: Callable[[T], str], query: ListQuery) -> tuple[list[T], str | None]:
    """One page of `items` (sorted by `key`) after `query.after`, and the key to ask for the next (None: last)."""
    rest = [item for item in items if query.after is None or key(item) > query.after]
    chosen = rest[: query.limit]
    return chosen, key(chosen[-1]) if len(rest) > query.limit else None
