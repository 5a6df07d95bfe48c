"""The GraphQL types of `POST /graphql/system` (contract §7): Directus' names and shapes.

Every notification field's type comes from the field catalogue (`notifications.fields`
`FIELD_KINDS`), so a new field appears here without editing this module. The schema itself
(which root field resolves how) is assembled in `graphql_system.py`.
"""

from __future__ import annotations

from typing import Any

from graphql import (
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
    GraphQLScalarType,
    GraphQLString,
)
from graphql.language import FloatValueNode, IntValueNode, StringValueNode, ValueNode
from graphql.utilities import value_from_ast_untyped

from server.notifications.fields import FIELD_KINDS
from server.notifications.query import ORDERABLE

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
# min/max of a field: an int's is an Int, a boolean's a Boolean, the rest (text, datetimes)
# a String.
_AGG_SCALARS = {"int": GraphQLInt, "bool": GraphQLBoolean}
_AGG_FIELDS = GraphQLObjectType(
    "directus_notifications_aggregated_fields",
    {
        name: GraphQLField(_AGG_SCALARS.get(FIELD_KINDS[name], GraphQLString))
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
