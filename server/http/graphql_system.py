"""`POST /graphql/system`: Directus' GraphQL operations for notifications (contract §7).

The types are in `graphql_types.py`, the resolvers in `graphql_resolvers.py`; this module
assembles the schema, prices and limits a document, and runs it. Documents are refused
before execution when they nest too deep or use too many aliases (contract §8). Errors
follow the GraphQL spec, each with `extensions.code`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from aiohttp import web
from graphql import (
    FieldNode,
    GraphQLArgument,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLString,
    execute,
    parse,
    validate,
)
from graphql.language import (
    DocumentNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    VariableNode,
)

from server.appkeys import SERVICES
from server.errors import ApiError, error_body, invalid_payload
from server.graphql_limits import DocumentTooCostly, Limits, check, literal_int
from server.http import shapes
from server.http.auth import require_session
from server.http.body import read_json
from server.http.graphql_resolvers import (
    GraphQLContext,
    resolve_aggregated,
    resolve_by_id,
    resolve_create_item,
    resolve_create_items,
    resolve_delete_item,
    resolve_delete_items,
    resolve_notifications,
    resolve_update_item,
    resolve_update_items,
)
from server.http.graphql_types import (
    AggregatedType,
    CreateInput,
    DeleteMany,
    DeleteOne,
    FilterType,
    NotificationType,
    UpdateInput,
)
from server.http.openapi import Operation
from server.http.respond import json_response
from server.notifications.query import DEFAULT_LIMIT, MAX_LIMIT

log = logging.getLogger(__name__)

# The standard introspection query needs depth 15, our own types 3. Rows: contract §10.
LIMITS = Limits(max_depth=16, max_aliases=30, max_rows=MAX_LIMIT)
MAX_TOKENS = 5000

# ---------------------------------------------------------------- schema

_LIST_ARGS = {
    "filter": GraphQLArgument(FilterType),
    "sort": GraphQLArgument(GraphQLList(GraphQLString)),
    "limit": GraphQLArgument(GraphQLInt),
    "offset": GraphQLArgument(GraphQLInt),
    "page": GraphQLArgument(GraphQLInt),
    "search": GraphQLArgument(GraphQLString),
}
_ID_ARG = {"id": GraphQLArgument(GraphQLNonNull(GraphQLID))}
_IDS_ARG = {"ids": GraphQLArgument(GraphQLNonNull(GraphQLList(GraphQLID)))}
_UPDATE_DATA = {"data": GraphQLArgument(GraphQLNonNull(UpdateInput))}
_NOTIFICATIONS = GraphQLNonNull(GraphQLList(GraphQLNonNull(NotificationType)))

SCHEMA = GraphQLSchema(
    query=GraphQLObjectType(
        "Query",
        {
            "notifications": GraphQLField(
                _NOTIFICATIONS, args=_LIST_ARGS, resolve=resolve_notifications
            ),
            "notifications_by_id": GraphQLField(
                NotificationType, args=_ID_ARG, resolve=resolve_by_id
            ),
            "notifications_aggregated": GraphQLField(
                GraphQLNonNull(GraphQLList(GraphQLNonNull(AggregatedType))),
                args={**_LIST_ARGS, "groupBy": GraphQLArgument(GraphQLList(GraphQLString))},
                resolve=resolve_aggregated,
            ),
        },
    ),
    mutation=GraphQLObjectType(
        "Mutation",
        {
            "create_notifications_item": GraphQLField(
                NotificationType,
                args={"data": GraphQLArgument(GraphQLNonNull(CreateInput))},
                resolve=resolve_create_item,
            ),
            "create_notifications_items": GraphQLField(
                _NOTIFICATIONS,
                args={
                    "data": GraphQLArgument(
                        GraphQLNonNull(GraphQLList(GraphQLNonNull(CreateInput)))
                    )
                },
                resolve=resolve_create_items,
            ),
            "update_notifications_item": GraphQLField(
                NotificationType, args={**_ID_ARG, **_UPDATE_DATA}, resolve=resolve_update_item
            ),
            "update_notifications_items": GraphQLField(
                _NOTIFICATIONS, args={**_IDS_ARG, **_UPDATE_DATA}, resolve=resolve_update_items
            ),
            "delete_notifications_item": GraphQLField(
                DeleteOne, args=_ID_ARG, resolve=resolve_delete_item
            ),
            "delete_notifications_items": GraphQLField(
                DeleteMany, args=_IDS_ARG, resolve=resolve_delete_items
            ),
        },
    ),
)

# ---------------------------------------------------------------- limits


# Rows each list field may return, priced statically before anything runs (contract §10).
_LIST_FIELDS = {"notifications": "limit", "notifications_aggregated": "limit"}
_BATCH_ARGUMENTS = {
    "create_notifications_items": "data",
    "update_notifications_items": "ids",
    "delete_notifications_items": "ids",
}
_ONE_ROW = frozenset(
    {
        "notifications_by_id",
        "create_notifications_item",
        "update_notifications_item",
        "delete_notifications_item",
    }
)


def row_cost(field: FieldNode, variables: dict[str, Any]) -> int:
    """The most rows `field` may return: an absent limit is the default page (100), and
    `limit: -1` (or a limit given by a variable that is missing) counts as the maximum."""
    name = field.name.value
    if name in _LIST_FIELDS:
        if name == "notifications_aggregated" and not any(
            a.name.value == "groupBy" for a in field.arguments
        ):
            return 1  # one aggregate row without groupBy
        given = any(a.name.value == "limit" for a in field.arguments)
        limit = literal_int(field, "limit", variables)
        if limit is None:
            return MAX_LIMIT if given else DEFAULT_LIMIT
        return MAX_LIMIT if limit == -1 else max(limit, 0)
    if name in _BATCH_ARGUMENTS:
        return _list_length(field, _BATCH_ARGUMENTS[name], variables)
    return 1 if name in _ONE_ROW else 0


def _list_length(field: FieldNode, argument: str, variables: dict[str, Any]) -> int:
    for arg in field.arguments:
        if arg.name.value != argument:
            continue
        if isinstance(arg.value, ListValueNode):
            return len(arg.value.values)
        if isinstance(arg.value, VariableNode):
            given = variables.get(arg.value.name.value)
            return len(given) if isinstance(given, list) else 1
    return 1


# ---------------------------------------------------------------- HTTP


OPENAPI_PATHS = (
    Operation(
        method="post",
        path="/graphql/system",
        operation_id="graphqlSystem",
        tag="ledger",
        summary="Directus' GraphQL operations for notifications.",
        body=shapes.GraphQLRequest,
        example={"query": '{ notifications(limit: 5, sort: ["-id"]) { id status } }'},
        ok=shapes.GraphQLResponse,
        in_data=False,
        errors=(401, 413),
        ok_description="Executed (errors may be in the body)",
        responses={400: (shapes.GraphQLErrors, "Invalid payload or GraphQL document.")},
    ),
)


def setup(app: web.Application) -> None:
    app.router.add_route("POST", "/graphql/system", graphql_system)


def _format_error(error: GraphQLError) -> dict[str, Any]:
    original = error.original_error
    extensions: dict[str, Any]
    if isinstance(original, ApiError):
        message = original.message
        extensions = {"code": original.code, **original.extensions}
    elif original is None or isinstance(original, GraphQLError):
        message = error.message
        extensions = {"code": "GRAPHQL_VALIDATION"}
    else:
        log.error("graphql resolver failed", exc_info=original)
        message = "An unexpected error occurred."
        extensions = {"code": "INTERNAL_SERVER_ERROR"}
    out: dict[str, Any] = {"message": message, "extensions": extensions}
    if error.locations:
        out["locations"] = [{"line": loc.line, "column": loc.column} for loc in error.locations]
    if error.path:
        out["path"] = list(error.path)
    return out


def _mutates(document: DocumentNode) -> bool:
    """Whether the document defines a mutation (whichever operation is chosen to run)."""
    return any(
        isinstance(node, OperationDefinitionNode) and node.operation == OperationType.MUTATION
        for node in document.definitions
    )


def _refuse(errors: list[GraphQLError]) -> web.Response:
    return web.json_response({"errors": [_format_error(e) for e in errors]}, status=400)


async def graphql_system(request: web.Request) -> web.Response:
    """Run one GraphQL document against the notifications schema."""
    session = require_session(request)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise invalid_payload("The body must be a JSON object with a query")
    source = body.get("query")
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if not isinstance(source, str) or not source.strip():
        raise invalid_payload('"query" must be a GraphQL document', field="query")
    if variables is not None and not isinstance(variables, dict):
        raise invalid_payload('"variables" must be an object', field="variables")
    if operation_name is not None and not isinstance(operation_name, str):
        raise invalid_payload('"operationName" must be a string', field="operationName")
    try:
        document = parse(source, max_tokens=MAX_TOKENS)
    except GraphQLError as error:
        return _refuse([error])
    if "Idempotency-Key" in request.headers and _mutates(document):
        # Not supported here (docs/ledger-api.md): a retried mutation would run again, so a
        # caller relying on the key must hear so rather than have it ignored.
        raise invalid_payload(
            "Idempotency-Key is not supported on /graphql/system: a retried mutation would "
            "run again. Send with POST /notifications or POST /v2 (which replay a retry "
            "with the same key), or send this request without the header",
            field="Idempotency-Key",
        )
    try:
        cost = check(document, LIMITS, lambda field: row_cost(field, variables or {}))
    except DocumentTooCostly as refused:
        return web.json_response(
            error_body(
                "GRAPHQL_VALIDATION",
                refused.message,
                limit=refused.limit,
                value=refused.value,
                maximum=refused.maximum,
            ),
            status=400,
        )
    validation_errors = validate(SCHEMA, document)
    if validation_errors:
        return _refuse(validation_errors)
    context = GraphQLContext(request=request, session=session, ledger=request.app[SERVICES].ledger)
    outcome = execute(
        SCHEMA,
        document,
        context_value=context,
        variable_values=variables,
        operation_name=operation_name,
    )
    result = await outcome if isinstance(outcome, Awaitable) else outcome
    errors = result.errors or []
    if result.data is None and errors and all(e.path is None for e in errors):
        # Request errors (bad variables, unknown operation): nothing was executed.
        return _refuse(errors)
    payload: dict[str, Any] = {"data": result.data}
    if errors:
        payload["errors"] = [_format_error(e) for e in errors]
    return await json_response(payload, rows=cost.rows)
