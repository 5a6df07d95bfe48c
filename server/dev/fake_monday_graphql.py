"""The fake monday's GraphQL layer: a small SDL of monday's real shapes, executed with
graphql-core, so a malformed document, a wrong type or a missing variable fails like monday.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLResolveInfo,
    GraphQLSchema,
    OperationDefinitionNode,
    build_schema,
    execute,
    parse,
    validate,
)

from server.dev.fake_monday_records import FakeToken
from server.dev.fake_monday_state import FakeMonday

SDL = """
type Account { id: ID! name: String! slug: String! }
type User {
  id: ID! name: String! email: String! account: Account!
  time_zone_identifier: String utc_hours_diff: Int
}
type Notification { id: ID! text: String }
enum NotificationTargetType { Project Post }
type Complexity { before: Int! after: Int! query: Int! reset_in_x_seconds: Int! }
type Query { me: User users(ids: [ID!]): [User] complexity: Complexity }
type Mutation {
  create_notification(
    user_id: ID!, target_id: ID!, text: String!, target_type: NotificationTargetType!
  ): Notification
  complexity: Complexity
}
"""

SCHEMA: GraphQLSchema = build_schema(SDL)
FIELD_COST = {"create_notification": 10, "me": 1, "users": 1, "complexity": 0}


def monday_error(message: str, code: str, status_code: int = 200, **data: Any) -> GraphQLError:
    extensions: dict[str, Any] = {"code": code, "status_code": status_code}
    if data:
        extensions["error_data"] = data
    return GraphQLError(message, extensions=extensions)


@dataclass
class Execution:
    """The outcome of one document: the body fields `data` and `errors` monday would send."""

    data: Any = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    executed: bool = False


class _Root:
    """Resolvers. graphql-core calls `root.<field>(info, **args)` for each top-level field."""

    def __init__(
        self,
        fake: FakeMonday,
        token: FakeToken,
        request_id: str,
        cost: int,
        invalid_users: set[str] | None,
    ) -> None:
        self.fake = fake
        self.token = token
        self.request_id = request_id
        self.cost = cost
        self.invalid_users = invalid_users  # None: none forced; empty set: every user
        self._complexity: tuple[int, int] | None = None

    def _charge(self) -> tuple[int, int]:
        if self._complexity is None:
            self._complexity = self.fake.charge_complexity(self.token.account_id, self.cost)
        return self._complexity

    def me(self, _info: GraphQLResolveInfo) -> dict[str, Any]:
        self._charge()
        user = self.fake.users.get(self.token.user_id)
        name, slug = self.fake.account_info(self.token.account_id)
        return {
            "id": self.token.user_id,
            "name": user.name if user else f"User {self.token.user_id}",
            "email": user.email if user else "",
            "account": {"id": self.token.account_id, "name": name, "slug": slug},
        }

    def users(self, _info: GraphQLResolveInfo, ids: list[str] | None = None) -> list[Any]:
        """monday's `users(ids:)`: the token's account's users, with their time zone (each
        dev user's is settable: `FakeMonday.set_time_zone`; null when none was set)."""
        self._charge()
        found = []
        for user_id in ids if ids is not None else list(self.fake.users):
            user = self.fake.users.get(str(user_id))
            if user is None or user.account_id != self.token.account_id:
                continue
            name, slug = self.fake.account_info(user.account_id)
            found.append(
                {
                    "id": user.id,
                    "name": user.name,
                    "email": user.email,
                    "account": {"id": user.account_id, "name": name, "slug": slug},
                    "time_zone_identifier": user.time_zone,
                    "utc_hours_diff": None,
                }
            )
        return found

    def complexity(self, _info: GraphQLResolveInfo) -> dict[str, int]:
        before, after = self._charge()
        return {
            "before": before,
            "after": after,
            "query": self.cost,
            "reset_in_x_seconds": self.fake.window_reset_in(self.token.account_id),
        }

    def create_notification(
        self,
        _info: GraphQLResolveInfo,
        *,
        user_id: str,
        target_id: str,
        text: str,
        target_type: str,
    ) -> dict[str, Any]:
        self._charge()
        forced = self.invalid_users is not None and (
            not self.invalid_users or user_id in self.invalid_users
        )
        recipient = self.fake.users.get(user_id)
        if forced or recipient is None or recipient.account_id != self.token.account_id:
            raise monday_error(
                "User with the given id was not found or is not part of this account",
                "InvalidUserIdException",
                user_id=user_id,
            )
        if not target_id.isdigit():
            raise monday_error(
                f"Invalid target id {target_id!r}: it must be a numeric item, board or update id",
                "InvalidArgumentException",
                target_id=target_id,
            )
        if not text.strip():
            raise monday_error("text can't be blank", "InvalidArgumentException")
        delivered = self.fake.deliver(
            token=self.token,
            recipient=user_id,
            target_id=target_id,
            target_type=target_type,
            text=text,
            request_id=self.request_id,
        )
        return {"id": delivered.monday_id, "text": text}


def _format(error: GraphQLError, code: str) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    extensions.setdefault("code", code)
    extensions.setdefault("status_code", 200)
    formatted["extensions"] = extensions
    return formatted


def document_cost(document: DocumentNode) -> int:
    cost = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for selection in definition.selection_set.selections:
                if isinstance(selection, FieldNode):
                    cost += FIELD_COST.get(selection.name.value, 1)
    return cost


def run_document(
    fake: FakeMonday,
    token: FakeToken,
    query: str,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    *,
    request_id: str,
    invalid_users: set[str] | None = None,
) -> Execution:
    """Parse, validate and execute `query` for `token` the way monday's endpoint would."""
    try:
        document = parse(query)
    except GraphQLError as error:
        return Execution(errors=[_format(error, "GRAPHQL_PARSE_FAILED")])
    problems = validate(SCHEMA, document)
    if problems:
        return Execution(errors=[_format(e, "GRAPHQL_VALIDATION_FAILED") for e in problems])
    root = _Root(fake, token, request_id, document_cost(document), invalid_users)
    result = execute(
        SCHEMA,
        document,
        root_value=root,
        variable_values=dict(variables) if variables is not None else None,
        operation_name=operation_name,
    )
    if not isinstance(result, ExecutionResult):  # our resolvers are synchronous
        raise RuntimeError("the fake monday's resolvers must be synchronous")
    errors = [
        _format(e, "INTERNAL_SERVER_ERROR" if e.path else "GRAPHQL_VALIDATION_FAILED")
        for e in (result.errors or [])
    ]
    return Execution(data=result.data, errors=errors, executed=result.data is not None)
