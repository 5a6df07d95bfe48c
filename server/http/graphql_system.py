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
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
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
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    execute,
    parse,
    validate,
)
from graphql.language import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from graphql.utilities import value_from_ast_untyped

from server.appkeys import SERVICES
from server.errors import ApiError, error_body, invalid_payload
from server.http import shapes
from server.http.auth import require_session
from server.http.body import read_json
from server.http.openapi import Operation
from server.http.send import send_from_request
from server.notifications import ledger
from server.notifications.filters import FIELD_KINDS, Context
from server.notifications.query import ORDERABLE, parse_query
from server.tokens import Session

log = logging.getLogger(__name__)

MAX_DEPTH = 16  # the standard introspection query needs 15; our own types need 3
MAX_ALIASES = 30
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
    return {"int": GraphQLInt, "json": JSONScalar}.get(FIELD_KINDS[name], GraphQLString)


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
        for name in ("recipient", "message", "collection", "item", "subject", "send_as")
    },
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


def _selected(
    selection_set: SelectionSetNode | None, info: GraphQLResolveInfo, seen: frozenset[str]
) -> list[FieldNode]:
    """The fields of a selection set, fragments flattened."""
    found: list[FieldNode] = []
    if selection_set is None:
        return found
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            found.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            found.extend(_selected(selection.selection_set, info, seen))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = info.fragments.get(name)
            if fragment is not None and name not in seen:
                found.extend(_selected(fragment.selection_set, info, seen | {name}))
    return found


async def resolve_aggregated(_root: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
    """Directus reads the wanted aggregates from the selection: `countAll`, `count { id }`."""
    ctx = _ctx(info)
    aggregate: dict[str, list[str]] = {}
    for node in info.field_nodes:
        for field in _selected(node.selection_set, info, frozenset()):
            function = field.name.value
            if function == "countAll":
                aggregate.setdefault("countAll", ["*"])
            elif function in ("count", "countDistinct", "min", "max"):
                names = [
                    sub.name.value
                    for sub in _selected(field.selection_set, info, frozenset())
                    if not sub.name.value.startswith("__")
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


def document_limits(document: DocumentNode) -> tuple[int, int]:
    """(deepest operation's depth, most aliases an operation resolves), fragments expanded.

    Memoised per fragment and cycle-safe, so a hostile document can't make this slow.
    """
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    memo: dict[str, tuple[int, int]] = {}

    def walk(selection_set: SelectionSetNode | None, stack: frozenset[str]) -> tuple[int, int]:
        if selection_set is None:
            return 0, 0
        depth, aliases = 0, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                sub_depth, sub_aliases = walk(selection.selection_set, stack)
                depth = max(depth, 1 + sub_depth)
                aliases += sub_aliases + (1 if selection.alias else 0)
            elif isinstance(selection, InlineFragmentNode):
                sub_depth, sub_aliases = walk(selection.selection_set, stack)
                depth, aliases = max(depth, sub_depth), aliases + sub_aliases
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in stack or name not in fragments:
                    continue  # cycles and unknown fragments are left to validation
                if name not in memo:
                    memo[name] = walk(fragments[name].selection_set, stack | {name})
                sub_depth, sub_aliases = memo[name]
                depth, aliases = max(depth, sub_depth), aliases + sub_aliases
        return depth, aliases

    worst_depth, worst_aliases = 0, 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth, aliases = walk(definition.selection_set, frozenset())
            worst_depth, worst_aliases = max(worst_depth, depth), max(worst_aliases, aliases)
    return worst_depth, worst_aliases


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
    depth, aliases = document_limits(document)
    if depth > MAX_DEPTH or aliases > MAX_ALIASES:
        reason = (
            f"The document is nested {depth} levels deep; the limit is {MAX_DEPTH}."
            if depth > MAX_DEPTH
            else f"The document uses {aliases} aliases; the limit is {MAX_ALIASES}."
        )
        return web.json_response(
            error_body("GRAPHQL_VALIDATION", reason, max_depth=MAX_DEPTH, max_aliases=MAX_ALIASES),
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
    return web.json_response(payload)
