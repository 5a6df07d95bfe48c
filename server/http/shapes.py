"""Request and response shapes of routes that read or build their JSON by hand.

Types, so `GET /openapi.json` is generated from them (`server/http/openapi.py`); the rules
stay in the handlers and services (Directus' query language in `notifications/query.py`,
the GraphQL executors). A handler that moves to `parse_model` can take its model from here.
Response shapes are `TypedDict`s: a key that is sometimes absent is `NotRequired`, not null.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, RootModel, with_config
from typing_extensions import TypedDict

from server.installations.model import CredentialKind
from server.notifications.api_types import NotificationFields, Status
from server.notifications.inputs import MondayId
from server.notifications.query import AGGREGATE_FUNCTIONS
from server.notifications.serialize import API_FIELDS
from server.sender import SenderPolicy

# ---------------------------------------------------------------- health


class Healthy(TypedDict):
    status: Literal["ok"]


class Ready(TypedDict):
    status: Literal["ready"]


# ---------------------------------------------------------------- the Directus ledger

Strings = str | list[str]
Keys = Annotated[list[Annotated[int, Field(ge=1)] | str], Field(min_length=1)]


class QueryParameters(TypedDict, total=False):
    """Directus' global query parameters (contract §7), as the URL carries them."""

    fields: Annotated[str, Field(description="Comma-separated fields to return (`*` for all).")]
    filter: Annotated[
        str, Field(description='A Directus filter as JSON, e.g. `{"status":{"_eq":"inbox"}}`.')
    ]
    search: str
    sort: Annotated[str, Field(description="Comma-separated fields, `-` for descending.")]
    limit: Annotated[int, Field(ge=-1, description="Default 100; -1 means all (up to the max).")]
    offset: Annotated[int, Field(ge=0)]
    page: Annotated[int, Field(ge=1)]
    meta: Literal["total_count", "filter_count", "*"]
    aggregate: Annotated[
        str,
        Field(
            description='JSON, e.g. `{"count":"*"}`; functions: ' + ", ".join(AGGREGATE_FUNCTIONS)
        ),
    ]
    groupBy: str


# Explicit: a TypedDict without a config takes the one of the type it is nested in.
@with_config(extra="ignore")
class QueryObject(TypedDict, total=False):
    """Directus' query: the same keys as the URL parameters, as JSON values."""

    fields: Strings
    filter: dict[str, Any]
    search: str
    sort: Strings
    limit: int
    offset: int
    page: int
    meta: str
    aggregate: dict[str, Any]
    groupBy: Strings


@with_config(extra="ignore")
class StatusData(TypedDict, total=False):
    """Only `status` can change; any other field is 403 FORBIDDEN."""

    status: Status


@with_config(extra="forbid")
class PatchByKeys(TypedDict):
    keys: Keys
    data: StatusData


@with_config(extra="forbid")
class PatchByQuery(TypedDict):
    query: QueryObject
    data: StatusData


class PatchItem(TypedDict):
    id: Annotated[int, Field(ge=1)]
    status: NotRequired[Status]


PatchBody = PatchByKeys | PatchByQuery | list[PatchItem]


@with_config(extra="forbid")
class DeleteByKeys(TypedDict):
    keys: Keys


@with_config(extra="forbid")
class DeleteByQuery(TypedDict):
    query: QueryObject


DeleteBody = Keys | DeleteByKeys | DeleteByQuery


class SearchByQuery(TypedDict, total=False):
    query: QueryObject


class SearchByKeys(TypedDict, total=False):
    keys: Keys


SearchBody = SearchByQuery | SearchByKeys


class AggregateRow(RootModel[dict[str, Any]]):
    """An aggregate row: the functions, plus the groupBy columns."""

    model_config = {
        "json_schema_extra": {"propertyNames": {"enum": [*AGGREGATE_FUNCTIONS, *API_FIELDS]}}
    }


class PageMeta(TypedDict, total=False):
    total_count: int
    filter_count: int


class NotificationPage(TypedDict):
    data: list[NotificationFields | AggregateRow]
    meta: NotRequired[PageMeta]


# ---------------------------------------------------------------- GraphQL, /v2


class GraphQLRequest(TypedDict):
    query: Annotated[str, Field(min_length=1)]
    variables: NotRequired[dict[str, Any] | None]
    operationName: NotRequired[str | None]


class GraphQLErrorEntry(TypedDict):
    """The error envelope's entry, as GraphQL places it (`locations`, `path`)."""

    message: str
    extensions: dict[str, Any]
    locations: NotRequired[list[dict[str, int]]]
    path: NotRequired[list[str | int]]


class GraphQLResponse(TypedDict):
    data: dict[str, Any] | None
    errors: NotRequired[list[GraphQLErrorEntry]]


class GraphQLErrors(TypedDict):
    errors: Annotated[list[GraphQLErrorEntry], Field(min_length=1)]


class MondayErrorExtensions(TypedDict):
    code: str
    status_code: NotRequired[int]


class MondayError(TypedDict):
    """monday's GraphQL error entry (monday's codes, not ours)."""

    message: str
    locations: NotRequired[list[dict[str, int]]]
    path: NotRequired[list[str | int]]
    extensions: MondayErrorExtensions


class CreatedNotification(TypedDict, total=False):
    id: str
    text: str


class MondayResponse(TypedDict, total=False):
    """monday's answer shape: `data` by alias, monday-shaped `errors`."""

    data: dict[str, CreatedNotification | None] | None
    errors: list[MondayError]
    extensions: dict[str, Any]
    account_id: int


class MondayErrorBody(TypedDict):
    """A refusal in monday's shape: `errors` always."""

    errors: Annotated[list[MondayError], Field(min_length=1)]
    data: NotRequired[dict[str, CreatedNotification | None] | None]
    extensions: NotRequired[dict[str, Any]]
    account_id: NotRequired[int]


# ---------------------------------------------------------------- the automation action


class ActionInputs(TypedDict, total=False):
    userId: MondayId
    itemId: MondayId
    boardId: MondayId
    text: Annotated[str, Field(min_length=1)]


class ActionPayload(TypedDict, total=False):
    inboundFieldValues: ActionInputs


class ActionMetadata(TypedDict, total=False):
    actionUuid: str


class ActionRequest(TypedDict):
    payload: ActionPayload
    runtimeMetadata: NotRequired[ActionMetadata]


@with_config(extra="forbid")
class ActionDone(TypedDict):
    """Sent (or scheduled): an empty object."""


class ActionErrorEntry(TypedDict):
    message: str
    extensions: MondayErrorExtensions


class ActionError(TypedDict):
    """monday's documented action-error body, with the error envelope alongside."""

    severityCode: Literal[4000, 6000]
    notificationErrorTitle: str
    notificationErrorDescription: str
    runtimeErrorDescription: str
    disableErrorDescription: NotRequired[str]
    errors: list[ActionErrorEntry]


# ---------------------------------------------------------------- installation, OAuth


class LifecycleRecorded(TypedDict):
    type: str
    account_id: str
    replayed: bool
    applied: bool


class Credential(TypedDict):
    """A connected credential, never its secret."""

    kind: CredentialKind
    owner_user_id: str
    connected: bool
    verified_at: NotRequired[str | None]
    last4: str | None
    needs_reconnect: NotRequired[bool]
    expires_at: NotRequired[str | None]


class Installation(TypedDict):
    account_id: str
    installed: bool
    installer_user_id: str | None
    sender_policy: SenderPolicy
    credentials: list[Credential]
    # Contract §12: {"start", "end"} ("HH:MM") or null, and 0-3600 (0 = off).
    quiet_hours: dict[str, str] | None
    digest_window_seconds: int


class AuthorizeUrl(TypedDict):
    authorize_url: Annotated[str, Field(json_schema_extra={"format": "uri"})]
