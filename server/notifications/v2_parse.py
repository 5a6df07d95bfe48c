"""Reading a monday-shaped GraphQL request for `POST /v2` (contract §6).

Only documents made of `create_notification` mutation fields are accepted: literals or
variables, aliases, several fields per document, fragments on `Notification`. Everything
else is refused *before* anything is written or sent, with errors in monday's shape
(monday-platform.md §5.4): `{"message", "locations", "path"?, "extensions": {"code",
"status_code", "error_data"?}}`.

Pure functions over graphql-core: no aiohttp, no database, so every refusal is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    Lexer,
    OperationDefinitionNode,
    OperationType,
    Source,
    TokenKind,
    build_schema,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.collect_fields import collect_fields, collect_sub_fields
from graphql.execution.values import get_argument_values, get_variable_values
from pydantic import ValidationError

from server.graphql_limits import DocumentTooCostly, Limits, check
from server.notifications.inputs import NotificationInput

FIELD = "create_notification"
# One request may carry at most this many create_notification fields (aliases).
MAX_FIELDS = 100
# mutation -> create_notification -> id is depth 2; the margin leaves room for fragments.
MAX_DEPTH = 4
# Each field may alias itself and its two subfields; more is not a real request.
MAX_ALIASES = 3 * MAX_FIELDS
# 100 notifications, each aliased with its answer's fields, are 200-300 selections.
LIMITS = Limits(
    max_depth=MAX_DEPTH,
    max_aliases=MAX_ALIASES,
    max_rows=MAX_FIELDS,
    max_selections=400,
    max_fields=600,
)
MAX_TOKENS = 20_000
MAX_VALIDATION_ERRORS = 20

# monday's own types for the one mutation we speak (monday-platform.md §5.3).
SCHEMA: GraphQLSchema = build_schema(
    """
    type Notification { id: ID! text: String }
    enum NotificationTargetType { Project Post }
    type Query { _unused: Boolean }
    type Mutation {
      create_notification(
        user_id: ID!, target_id: ID!, text: String!, target_type: NotificationTargetType!
      ): Notification
    }
    """
)
_MUTATION: GraphQLObjectType = SCHEMA.mutation_type  # type: ignore[assignment]
_NOTIFICATION: GraphQLObjectType = SCHEMA.type_map["Notification"]  # type: ignore[assignment]

# Our field names back to monday's argument names, for error messages.
_ARGUMENT_OF = {
    "recipient": "user_id",
    "item": "target_id",
    "message": "text",
    "collection": "target_type",
}
# graphql-core token kinds in the names monday's (Ruby) parser prints.
_TOKEN_NAMES = {
    TokenKind.BRACE_L: "LCURLY",
    TokenKind.BRACE_R: "RCURLY",
    TokenKind.PAREN_L: "LPAREN",
    TokenKind.PAREN_R: "RPAREN",
    TokenKind.BRACKET_L: "LBRACKET",
    TokenKind.BRACKET_R: "RBRACKET",
    TokenKind.COLON: "COLON",
    TokenKind.NAME: "IDENTIFIER",
    TokenKind.STRING: "STRING",
    TokenKind.BLOCK_STRING: "STRING",
    TokenKind.INT: "INT",
    TokenKind.FLOAT: "FLOAT",
    TokenKind.DOLLAR: "VAR_SIGN",
    TokenKind.BANG: "BANG",
    TokenKind.EQUALS: "EQUALS",
    TokenKind.AT: "DIR_SIGN",
    TokenKind.SPREAD: "ELLIPSIS",
    TokenKind.PIPE: "PIPE",
    TokenKind.AMP: "AMP",
}

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INVALID_ARGUMENT = "InvalidArgumentException"


@dataclass(frozen=True, slots=True)
class MondayError:
    """One entry of monday's `errors` array."""

    message: str
    code: str
    status_code: int = 400
    locations: tuple[tuple[int, int], ...] = ()
    path: tuple[str, ...] | None = None
    error_data: Mapping[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        extensions: dict[str, Any] = {"code": self.code, "status_code": self.status_code}
        if self.error_data:
            extensions["error_data"] = dict(self.error_data)
        out: dict[str, Any] = {
            "message": self.message,
            "locations": [{"line": line, "column": column} for line, column in self.locations],
        }
        if self.path is not None:
            out["path"] = list(self.path)
        out["extensions"] = extensions
        return out


class V2Refused(Exception):
    """The request is refused as a whole; `http_status` is 200 for GraphQL-level errors."""

    def __init__(self, errors: list[MondayError], http_status: int = 200) -> None:
        super().__init__(errors[0].message if errors else "refused")
        self.errors = errors
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class NotificationField:
    """One `create_notification` field: its response key, input and selected subfields."""

    key: str
    notification: NotificationInput
    # (response key, field name) in the order the client selected them.
    selections: tuple[tuple[str, str], ...]
    location: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class V2Request:
    query: str
    variables: dict[str, Any] = field(default_factory=dict)
    operation_name: str | None = None


def read_request(body: Any) -> V2Request:
    """`{"query", "variables"?, "operationName"?}` as monday accepts it; 400 otherwise."""
    if not isinstance(body, dict):
        raise _transport("The request body must be a JSON object", "JsonParseException")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise _transport("No query string was present", "BadRequest")
    variables = body.get("variables")
    # monday 2025-04: variables must be a JSON object, never a JSON-encoded string.
    if variables is not None and not isinstance(variables, dict):
        kind = "a string" if isinstance(variables, str) else f"a JSON {type(variables).__name__}"
        raise _transport(
            f"Variables must be a JSON object, not {kind}: send "
            '"variables": {"name": value} (a JSON-encoded string is refused since API 2025-04)',
            "BadRequest",
        )
    operation = body.get("operationName")
    if operation is not None and not isinstance(operation, str):
        raise _transport("operationName must be a string", "BadRequest")
    return V2Request(query, dict(variables or {}), operation or None)


def _transport(message: str, code: str) -> V2Refused:
    return V2Refused([MondayError(message, code, 400)], http_status=400)


def parse_notifications(request: V2Request) -> list[NotificationField]:
    """The document's create_notification fields, in order; `V2Refused` for anything else."""
    document = _parse(request.query)
    _check_limits(document)
    _check_operations(document)
    problems = validate(SCHEMA, document, max_errors=MAX_VALIDATION_ERRORS)
    if problems:
        raise V2Refused([_from_graphql(error, VALIDATION_FAILED) for error in problems])
    operation = get_operation_ast(document, request.operation_name)
    if operation is None:
        message = (
            f'Unknown operation named "{request.operation_name}".'
            if request.operation_name
            else "Must provide operation name if query contains multiple operations."
        )
        raise V2Refused([MondayError(message, VALIDATION_FAILED)])
    coerced = get_variable_values(
        SCHEMA, operation.variable_definitions, request.variables, max_errors=10
    )
    if isinstance(coerced, list):
        raise V2Refused([_from_graphql(error, VALIDATION_FAILED) for error in coerced])
    return _fields(document, operation, coerced)


def _parse(query: str) -> DocumentNode:
    try:
        return parse(query, max_tokens=MAX_TOKENS)
    except GraphQLSyntaxError as error:
        raise V2Refused([_parse_error(query, error)]) from None


def _parse_error(query: str, error: GraphQLSyntaxError) -> MondayError:
    """monday's wording: `Parse error on "}" (RCURLY) at [1, 19]`."""
    locations = tuple((loc.line, loc.column) for loc in error.locations or ())
    line, column = locations[0] if locations else (1, 1)
    positions = list(error.positions or ())
    position = positions[0] if positions else 0
    what = _token_at(query, position)
    detail = error.message.removeprefix("Syntax Error: ")
    return MondayError(
        f"Parse error on {what} at [{line}, {column}]",
        PARSE_FAILED,
        locations=locations,
        error_data={"detail": detail},
    )


def _token_at(query: str, position: int) -> str:
    lexer = Lexer(Source(query))
    try:
        token = lexer.token
        while token.kind != TokenKind.EOF and token.end <= position:
            token = lexer.advance()
    except GraphQLSyntaxError:
        return "bad input"
    if token.kind == TokenKind.EOF:
        return "end of document"
    value = token.value if token.value is not None else token.kind.value
    return f'"{value}" ({_TOKEN_NAMES.get(token.kind, token.kind.name)})'


def _location(node: Any) -> tuple[tuple[int, int], ...]:
    loc = getattr(node, "loc", None)
    if loc is None:
        return ()
    source_location = loc.source.get_location(loc.start)
    return ((source_location.line, source_location.column),)


def _from_graphql(error: GraphQLError, code: str) -> MondayError:
    locations = tuple((loc.line, loc.column) for loc in error.locations or ())
    return MondayError(error.message, code, locations=locations)


def _invalid(node: Any, message: str, **error_data: Any) -> MondayError:
    """A validation refusal located at `node`."""
    return MondayError(message, VALIDATION_FAILED, locations=_location(node), error_data=error_data)


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _check_limits(document: DocumentNode) -> None:
    """Refuse oversized documents before validation does any work on them (contract §10):
    depth, aliases and create_notification fields counted with fragments expanded, by the
    one memoised walker (server/graphql_limits.py), so the check is linear in the text."""
    try:
        check(document, LIMITS, lambda _field: 1)  # every root field is one notification
    except DocumentTooCostly as refused:
        if refused.limit == "depth":
            message = (
                f"The document is nested too deeply: at most {MAX_DEPTH} levels "
                "of fields are allowed."
            )
            data: dict[str, int] = {"max_depth": MAX_DEPTH}
        elif refused.limit == "rows":
            message = (
                f"Too many fields: at most {MAX_FIELDS} create_notification "
                "fields (aliases) are allowed in one request; split it."
            )
            data = {"max_fields": MAX_FIELDS}
        elif refused.limit in ("repeats", "selections", "fields"):
            message, data = refused.message, {f"max_{refused.limit}": refused.maximum}
        else:
            message, data = refused.message, {"max_aliases": MAX_ALIASES}
        raise V2Refused([MondayError(message, VALIDATION_FAILED, error_data=data)]) from None


def _check_operations(document: DocumentNode) -> None:
    """Only mutations, and only create_notification at their root."""
    errors: list[MondayError] = []
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        if definition.operation != OperationType.MUTATION:
            kind = definition.operation.value
            message = (
                f'This endpoint only runs create_notification mutations; "{kind}" '
                "operations are not supported here. Send them to monday's API "
                "(https://api.monday.com/v2)."
            )
            errors.append(_invalid(definition, message, operation=kind))
            continue
        for selection in definition.selection_set.selections:
            if isinstance(selection, FieldNode) and selection.name.value != FIELD:
                errors.append(_not_supported(selection))
    if errors:
        raise V2Refused(errors)


def _not_supported(node: FieldNode) -> MondayError:
    name = node.name.value
    message = (
        f'Field "{name}" is not supported here: this endpoint only runs create_notification '
        "mutations. Send other operations to monday's API (https://api.monday.com/v2)."
    )
    return _invalid(node, message, field=name)


def _fields(
    document: DocumentNode, operation: OperationDefinitionNode, variables: dict[str, Any]
) -> list[NotificationField]:
    fragments = _fragments(document)
    grouped = collect_fields(SCHEMA, fragments, variables, _MUTATION, operation.selection_set)
    errors: list[MondayError] = []
    out: list[NotificationField] = []
    for key, nodes in grouped.items():
        node = nodes[0]
        if node.name.value != FIELD:  # e.g. __typename, or a field inside a root fragment
            errors.append(_not_supported(node))
            continue
        try:
            args = get_argument_values(_MUTATION.fields[FIELD], node, variables)
        except GraphQLError as error:
            errors.append(_from_graphql(error, VALIDATION_FAILED))
            continue
        sub = collect_sub_fields(SCHEMA, fragments, variables, _NOTIFICATION, nodes)
        selections = tuple((sub_key, sub_nodes[0].name.value) for sub_key, sub_nodes in sub.items())
        location = _location(node)
        try:
            notification = NotificationInput(
                recipient=args["user_id"],
                item=args["target_id"],
                message=args["text"],
                collection=args["target_type"],
            )
        except ValidationError as error:
            ours, problem = _first_problem(error)
            argument = _ARGUMENT_OF.get(ours, ours)
            errors.append(
                MondayError(
                    f'Invalid value for argument "{argument}" of {FIELD} "{key}": {problem}',
                    INVALID_ARGUMENT,
                    locations=location,
                    path=(key,),
                    error_data={"argument": argument},
                )
            )
            continue
        out.append(
            NotificationField(key, notification, selections, location[0] if location else None)
        )
    if errors:
        raise V2Refused(errors)
    return out


def _first_problem(error: ValidationError) -> tuple[str, str]:
    first = error.errors()[0]
    name = str(first["loc"][0]) if first["loc"] else ""
    return name, str(first["msg"]).removeprefix("Value error, ")
