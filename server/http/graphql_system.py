"""`POST /graphql/system`: Directus' GraphQL operations for notifications (contract §7).

The resolvers call the same ledger service as the REST routes (and the same send service
for creates), so both surfaces share one query path and one set of access rules. Documents
are refused before execution when they nest too deep or use too many aliases (contract §8).
Errors follow the GraphQL spec, each with `extensions.code`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from graphql import (
    FieldNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    execute,
    parse,
    validate,
)
from graphql.execution.collect_fields import collect_sub_fields
from graphql.language import (
    FloatValueNode,
    IntValueNode,
    ListValueNode,
    StringValueNode,
    ValueNode,
    VariableNode,
)
from graphql.utilities import value_from_ast_untyped

from server.appkeys import SERVICES
from server.errors import ApiError, error_body, invalid_payload
from server.graphql_limits import DocumentTooCostly, Limits, check, literal_int
from server.http import shapes
from server.http.auth import require_session
from server.http.body import read_json
from server.http.openapi import Operation
from server.http.respond import json_response
from server.http.send import send_from_request
from server.notifications import ledger
from server.notifications.filters import FIELD_KINDS, Context
from server.notifications.query import DEFAULT_LIMIT, MAX_LIMIT, ORDERABLE, parse_query
from server.tokens import Session

log = logging.getLogger(__name__)

# The standard introspection query needs depth 15, our own types 3. Rows: contract §10.
LIMITS = Limits(max_depth=16, max_aliases=30, max_rows=MAX_LIMIT)
MAX_TOKENS = 5000

# ---------------------------------------------------------------- scalars


def _identity(value: Any) -> Any:
    return value


def _json_literal(node: ValueNode, variables: dict[str, Any] | None = None) -> Any:
    return value_from_ast_untyped(node, variables)


JSONScalar = GraphQLScalarType(
    "JSON",
    description="Any JSON value.",
    serialize=_identity,
    parse_value=_identity,
    parse_literal=_json_literal,
)


def _string_or_float_value(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise GraphQLError("GraphQLStringOrFloat takes a string or a number.")
    return value


def _string_or_float_literal(node: ValueNode, _variables: Any = None) -> Any:
    if isinstance(node, StringValueNode):
        return node.value
    if isinstance(node, IntValueNode):
        return int(node.value)
    if isinstance(node, FloatValueNode):
        return float(node.value)
    raise GraphQLError("GraphQLStringOrFloat takes a string or a number.")


StringOrFloat = GraphQLScalarType(
    "GraphQLStringOrFloat",
    description="A string or a number.",
    serialize=_identity,
    parse_value=_string_or_float_value,
    parse_literal=_string_or_float_literal,
)

# ---------------------------------------------------------------- types


def _scalar_type(name: str) -> GraphQLScalarType:
    """A notification field's GraphQL scalar, the same for reading and for update input."""
    scalars = {"int": GraphQLInt, "json": JSONScalar, "bool": GraphQLBoolean}
    return scalars.get(FIELD_KINDS[name], GraphQLString)


def _output_type(name: str) -> GraphQLOutputType:
    return GraphQLNonNull(GraphQLID) if name == "id" else _scalar_type(name)


NotificationType = GraphQLObjectType(
    "directus_notifications",
    {name: GraphQLField(_output_type(name)) for name in FIELD_KINDS},
)


def _operators(name: str, value: GraphQLInputType, *, text: bool) -> GraphQLInputObjectType:
    ops: dict[str, GraphQLInputField] = {}
    for op in ("_eq", "_neq", "_lt", "_lte", "_gt", "_gte"):
        ops[op] = GraphQLInputField(value)
    for op in ("_in", "_nin", "_between", "_nbetween"):
        ops[op] = GraphQLInputField(GraphQLList(value))
    for op in ("_null", "_nnull", "_empty", "_nempty"):
        ops[op] = GraphQLInputField(GraphQLBoolean)
    if text:
        for stem in ("contains", "starts_with", "ends_with"):
            for prefix in ("", "n", "i", "ni"):
                ops[f"_{prefix}{stem}"] = GraphQLInputField(value)
    return GraphQLInputObjectType(name, ops)


_FILTER_OPERATORS: dict[str, GraphQLInputObjectType] = {
    "str": _operators("string_filter_operators", GraphQLString, text=True),
    "int": _operators("number_filter_operators", StringOrFloat, text=False),
    "datetime": _operators("date_filter_operators", GraphQLString, text=False),
    "bool": GraphQLInputObjectType(
        "boolean_filter_operators",
        {
            **{op: GraphQLInputField(GraphQLBoolean) for op in ("_eq", "_neq")},
            **{op: GraphQLInputField(GraphQLBoolean) for op in ("_null", "_nnull")},
        },
    ),
    "json": GraphQLInputObjectType(
        "json_filter_operators",
        {op: GraphQLInputField(GraphQLBoolean) for op in ("_null", "_nnull", "_empty", "_nempty")},
    ),
}


def _filter_fields() -> dict[str, GraphQLInputField]:
    fields = {name: GraphQLInputField(_FILTER_OPERATORS[k]) for name, k in FIELD_KINDS.items()}
    fields["_and"] = GraphQLInputField(GraphQLList(FilterType))
    fields["_or"] = GraphQLInputField(GraphQLList(FilterType))
    return fields


FilterType: GraphQLInputObjectType = GraphQLInputObjectType(
    "directus_notifications_filter", _filter_fields
)

_AGG_COUNT = GraphQLObjectType(
    "directus_notifications_aggregated_count",
    {name: GraphQLField(GraphQLInt) for name in FIELD_KINDS},
)
_AGG_FIELDS = GraphQLObjectType(
    "directus_notifications_aggregated_fields",
    {
        name: GraphQLField(GraphQLInt if FIELD_KINDS[name] == "int" else GraphQLString)
        for name in FIELD_KINDS
        if name in ORDERABLE
    },
)
AggregatedType = GraphQLObjectType(
    "directus_notifications_aggregated",
    {
        "group": GraphQLField(JSONScalar),
        "countAll": GraphQLField(GraphQLInt),
        "count": GraphQLField(_AGG_COUNT),
        "countDistinct": GraphQLField(_AGG_COUNT),
        "min": GraphQLField(_AGG_FIELDS),
        "max": GraphQLField(_AGG_FIELDS),
    },
)

CreateInput = GraphQLInputObjectType(
    "create_directus_notifications_input",
    {
        name: GraphQLInputField(GraphQLString)
        for name in ("recipient", "message", "collection", "item", "subject", "send_as", "send_at")
    }
    | {"urgent": GraphQLInputField(GraphQLBoolean)},
)


UpdateInput = GraphQLInputObjectType(
    "update_directus_notifications_input",
    {name: GraphQLInputField(_scalar_type(name)) for name in FIELD_KINDS if name != "id"},
)
DeleteOne = GraphQLObjectType("delete_one", {"id": GraphQLField(GraphQLNonNull(GraphQLID))})
DeleteMany = GraphQLObjectType(
    "delete_many", {"ids": GraphQLField(GraphQLNonNull(GraphQLList(GraphQLNonNull(GraphQLID))))}
)

# ---------------------------------------------------------------- resolvers


@dataclass(frozen=True, slots=True)
class GraphQLContext:
    request: web.Request
    session: Session
    ledger: ledger.Ledger


def _ctx(info: GraphQLResolveInfo) -> GraphQLContext:
    context: GraphQLContext = info.context
    return context


def _params(args: dict[str, Any]) -> dict[str, Any]:
    names = ("filter", "sort", "limit", "offset", "page", "search", "groupBy")
    return {name: args[name] for name in names if args.get(name) is not None}


def _query_context(ctx: GraphQLContext) -> Context:
    return Context(user_id=ctx.session.user_id, now=datetime.now(UTC))


async def resolve_notifications(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    ctx = _ctx(info)
    query = parse_query(_params(args), _query_context(ctx))
    return (await ctx.ledger.read_by_query(ctx.session, query)).data


async def resolve_by_id(_root: Any, info: GraphQLResolveInfo, id: str) -> Any:
    ctx = _ctx(info)
    return await ctx.ledger.read_one(ctx.session, ledger.path_key(str(id)))


async def resolve_aggregated(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Directus reads the wanted aggregates from the selection: `countAll`, `count { id }`."""
    ctx = _ctx(info)
    aggregate: dict[str, list[str]] = {}
    # graphql-core's own field collection: each fragment once, @skip/@include honoured.
    wanted = collect_sub_fields(
        info.schema, info.fragments, info.variable_values, AggregatedType, info.field_nodes
    )
    for nodes in wanted.values():
        function = nodes[0].name.value
        if function == "countAll":
            aggregate.setdefault("countAll", ["*"])
        elif function in ("count", "countDistinct", "min", "max"):
            sub_type = AggregatedType.fields[function].type
            assert isinstance(sub_type, GraphQLObjectType)
            names = [
                name
                for sub in collect_sub_fields(
                    info.schema, info.fragments, info.variable_values, sub_type, nodes
                ).values()
                if not (name := sub[0].name.value).startswith("__")
            ]
            aggregate.setdefault(function, [])
            aggregate[function] = list(dict.fromkeys(aggregate[function] + names))
    aggregate = {k: v for k, v in aggregate.items() if v}
    params = _params(args)
    if not aggregate and not params.get("groupBy"):
        aggregate = {"countAll": ["*"]}
    if aggregate:
        params["aggregate"] = aggregate
    query = parse_query(params, _query_context(ctx))
    rows = (await ctx.ledger.read_by_query(ctx.session, query)).data
    out = []
    for row in rows:
        shaped = {k: v for k, v in row.items() if k not in query.group_by}
        shaped["group"] = {k: row[k] for k in query.group_by} if query.group_by else None
        out.append(shaped)
    return out


async def resolve_create_item(_root: Any, info: GraphQLResolveInfo, data: Any) -> Any:
    return (await _send(info, [dict(data)]))[0]


async def resolve_create_items(_root: Any, info: GraphQLResolveInfo, data: Any) -> Any:
    return await _send(info, [dict(item) for item in data])


async def _send(info: GraphQLResolveInfo, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The send service of contract §6, shared with `POST /notifications`."""
    ctx = _ctx(info)
    return await send_from_request(ctx.request, ctx.session, items, surface="graphql")


async def resolve_update_item(
    _root: Any,
    info: GraphQLResolveInfo,
    id: str,
    data: Any,
) -> Any:
    ctx = _ctx(info)
    return await ctx.ledger.update_one(ctx.session, ledger.path_key(str(id)), data)


async def resolve_update_items(
    _root: Any, info: GraphQLResolveInfo, ids: list[Any], data: Any
) -> Any:
    ctx = _ctx(info)
    keys = ledger.parse_keys(list(ids), field="ids")
    return await ctx.ledger.update_many(ctx.session, keys, data)


async def resolve_delete_item(_root: Any, info: GraphQLResolveInfo, id: str) -> Any:
    ctx = _ctx(info)
    key = await ctx.ledger.delete_one(ctx.session, ledger.path_key(str(id)))
    return {"id": key}


async def resolve_delete_items(_root: Any, info: GraphQLResolveInfo, ids: list[Any]) -> Any:
    ctx = _ctx(info)
    keys = ledger.parse_keys(list(ids), field="ids")
    await ctx.ledger.delete_many(ctx.session, keys)
    return {"ids": keys}


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
