"""`GET /openapi.json`: the OpenAPI 3.1 document of every JSON route (contract §7), generated.

Each route module declares its operations next to its routes, as `OPENAPI_PATHS: tuple of
Operation`, naming the pydantic models, `TypedDict`s and `Literal`s its bodies are made of;
`build_document` turns them into JSON Schema with pydantic (`TypeAdapter.json_schema`) and
collects every named type under `components/schemas`. So an enum (`delivery_status`, an
error code) is written once, as the type the code uses. A new route module must be added to
`_route_modules`; tests/openapi checks that every route the app serves is described.

`SEARCH /notifications` cannot be expressed in OpenAPI 3.1 (only 3.2 has custom methods); it
is described in the `x-search` extension of the `/notifications` path item.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Annotated, Any, Literal, get_type_hints

from aiohttp import web
from pydantic import BaseModel, Field, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode
from typing_extensions import is_typeddict

from server.errors import ErrorEnvelope

JSON = "application/json"
REF = "#/components/schemas/{model}"
Schema = dict[str, Any]
Method = Literal["get", "put", "post", "patch", "delete", "search"]
Security = Literal["session", "integration", "lifecycle", "public"]

ERROR_TEXT = {
    400: "Invalid payload, query or JSON (INVALID_PAYLOAD, INVALID_QUERY).",
    401: "No valid token (TOKEN_MISSING, TOKEN_MALFORMED, TOKEN_EXPIRED, ...).",
    403: "Not allowed, or the row is missing or not visible (FORBIDDEN, SENDER_NOT_ALLOWED).",
    404: "Not found.",
    409: "Conflict (APP_NOT_INSTALLED, NO_CREDENTIAL, NOT_AWAITING_CLIENT, ...).",
    413: "The request body is larger than 1 MiB (PAYLOAD_TOO_LARGE).",
    422: "Well-formed but refused (IDEMPOTENCY_KEY_REUSED, API_KEY_REJECTED, ...).",
    429: "Too many requests (REQUESTS_EXCEEDED); see Retry-After.",
    502: "monday could not be reached (MONDAY_UNAVAILABLE).",
    503: "Not ready (SERVICE_UNAVAILABLE).",
}


@dataclass(frozen=True, kw_only=True)
class Param:
    """A parameter; `type` is what pydantic turns into its schema."""

    name: str
    type: Any
    where: Literal["query", "path", "header"] = "query"
    description: str = ""
    required: bool = False
    example: Any = None


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method on one path. `ok` is the success body's type (None: 204, no body); with
    `in_data` it is wrapped in `{"data": ...}`. `errors` answer `error_body` (§8 envelope)."""

    method: Method
    path: str
    summary: str
    tag: str
    operation_id: str = ""
    security: Security = "session"
    parameters: Sequence[Param] = ()
    body: Any = None
    example: Any = None
    ok: Any = None
    ok_description: str = "OK"
    in_data: bool = True
    errors: Sequence[int] = ()
    error_body: Any = ErrorEnvelope
    responses: Mapping[int, tuple[Any, str]] = field(default_factory=dict)


ID = Param(name="id", type=int, where="path", required=True, example=1)
FIELDS = Param(
    name="fields", type=str, description="Comma-separated fields to return (`*` for all)."
)
IDEMPOTENCY_KEY = Param(
    name="Idempotency-Key",
    type=Annotated[str, Field(min_length=1, max_length=255, pattern="^[!-~]+$")],
    where="header",
    description="Same key and body within 24 hours replays the first answer.",
)


class _Generator(GenerateJsonSchema):
    """pydantic's JSON Schema without a `title` on every property (noise in a document)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


class Components:
    """`components/schemas`: every named type met while describing the operations."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def schema(self, type_: Any, mode: JsonSchemaMode = "serialization") -> Schema:
        """The JSON Schema of `type_`; a named type (model, TypedDict) becomes a `$ref`."""
        schema = TypeAdapter(type_).json_schema(
            ref_template=REF, schema_generator=_Generator, mode=mode
        )
        for name, definition in schema.pop("$defs", {}).items():
            self._add(name, definition)
        named = inspect.isclass(type_) and (issubclass(type_, BaseModel) or is_typeddict(type_))
        if named and "$ref" not in schema:
            self._add(type_.__name__, schema)
            return {"$ref": REF.format(model=type_.__name__)}
        return schema

    def _add(self, name: str, definition: Schema) -> None:
        if self.schemas.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are named {name!r}")


def _media(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _operation(op: Operation, components: Components) -> Schema:
    out: Schema = {}
    if op.operation_id:
        out["operationId"] = op.operation_id
    out["summary"] = op.summary
    out["tags"] = [op.tag]
    out["security"] = [] if op.security == "public" else [{op.security: []}]
    if op.parameters:
        out["parameters"] = [_parameter(p, components) for p in op.parameters]
    if op.body is not None:
        media: Schema = {"schema": components.schema(op.body, "validation")}
        if op.example is not None:
            media["example"] = op.example
        out["requestBody"] = {"required": True, "content": {JSON: media}}
    responses: dict[str, Schema] = {}
    if op.ok is None:
        responses["204"] = {"description": "Done; empty body."}
    else:
        ok = components.schema(op.ok)
        if op.in_data:
            ok = {"type": "object", "properties": {"data": ok}, "required": ["data"]}
        responses["200"] = _media(ok, op.ok_description)
    error = components.schema(op.error_body)
    for status in op.errors:
        responses[str(status)] = _media(error, ERROR_TEXT[status])
        if status == 429:
            responses["429"]["headers"] = {
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}
            }
    for status, (type_, description) in op.responses.items():
        responses[str(status)] = _media(components.schema(type_), description)
    out["responses"] = dict(sorted(responses.items()))
    return out


def _parameter(param: Param, components: Components) -> Schema:
    out: Schema = {"name": param.name, "in": param.where}
    if param.description:
        out["description"] = param.description
    if param.required:
        out["required"] = True
    out["schema"] = components.schema(param.type, "validation")
    if param.example is not None:
        out["example"] = param.example
    return out


def query_parameters(type_: Any) -> tuple[Param, ...]:
    """One query parameter per key of a TypedDict (its annotations carry the schema)."""
    described = TypeAdapter(type_).json_schema(mode="validation")["properties"]
    hints = get_type_hints(type_, include_extras=True)
    return tuple(
        Param(name=name, type=hints[name], description=spec.get("description", ""))
        for name, spec in described.items()
    )


SECURITY_SCHEMES = {
    "session": "monday session token (`<jwt>` or `Bearer <jwt>`).",
    "integration": "monday integration (automation) JWT.",
    "lifecycle": "monday lifecycle webhook JWT.",
}


def _route_modules() -> list[ModuleType]:
    # Imported here: the route modules import `Operation` from this one.
    from server.http import (
        actions,
        graphql_system,
        health,
        installations,
        ledger_rest,
        monday_v2,
        mutes,
        oauth,
        send,
    )

    return [
        health,
        send,
        ledger_rest,
        graphql_system,
        monday_v2,
        actions,
        installations,
        oauth,
        mutes,
    ]


def operations() -> list[Operation]:
    """Every described operation, from every route module (and this one)."""
    found = list(OPENAPI_PATHS)
    for module in _route_modules():
        found.extend(module.OPENAPI_PATHS)
    return found


def build_document() -> dict[str, Any]:
    """The OpenAPI document (a fresh one each call; callers may mutate it)."""
    components = Components()
    paths: dict[str, Schema] = {}
    for op in operations():
        key = "x-search" if op.method == "search" else op.method
        item = paths.setdefault(op.path, {})
        if key in item:
            raise ValueError(f"{op.method.upper()} {op.path} is described twice")
        item[key] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "monday-notify",
            "version": "0.1.0",
            "description": "A monday.com app backend: sends `create_notification` as the app or "
            "the installing user and keeps a ledger served with the Directus notifications API. "
            'Every error is `{"errors": [{"message", "extensions": {"code"}}]}`. Unknown routes '
            "answer 404 ROUTE_NOT_FOUND, wrong methods 405 METHOD_NOT_ALLOWED.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "security": [{"session": []}],
        "tags": [{"name": tag} for tag in ("send", "ledger", "installation", "monday", "health")]
        + [{"name": "meta"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                name: {"type": "apiKey", "in": "header", "name": "Authorization", "description": d}
                for name, d in SECURITY_SCHEMES.items()
            },
            "schemas": dict(sorted(components.schemas.items())),
        },
    }


OPENAPI_PATHS = (
    Operation(
        method="get",
        path="/openapi.json",
        operation_id="openapi",
        summary="This document.",
        tag="meta",
        security="public",
        ok=dict[str, Any],
        ok_description="OpenAPI 3.1",
        in_data=False,
    ),
)


@functools.cache  # built once: the document only depends on the code
def _serialized() -> str:
    return json.dumps(build_document(), separators=(",", ":"))


async def openapi_json(_request: web.Request) -> web.Response:
    return web.Response(
        text=_serialized(),
        content_type="application/json",
        headers={"Cache-Control": "no-cache", "Access-Control-Allow-Origin": "*"},
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/openapi.json", openapi_json)
