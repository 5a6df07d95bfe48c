"""The OpenAPI 3.1 document of every JSON route (contract §7: `GET /openapi.json`).

Hand-written next to the routes it describes and kept honest by a schemathesis run against the
live server (tests/openapi/): every status code listed here is one the route really answers,
and every response body matches its schema. `SEARCH /notifications` cannot be expressed in
OpenAPI 3.1 (only 3.2 has custom methods); it is described in the `x-search` extension of the
`/notifications` path item.
"""

from __future__ import annotations

import copy
from typing import Any, get_args

from server.installations.lifecycle import EventType
from server.notifications.inputs import MAX_BATCH, MAX_MESSAGE_CHARS
from server.notifications.query import AGGREGATE_FUNCTIONS
from server.notifications.serialize import API_FIELDS

JSON = "application/json"
Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_DATETIME: Schema = {"type": "string", "format": "date-time"}
_STATUS: Schema = {"type": "string", "enum": ["inbox", "archived"]}
_STRINGS: Schema = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_SENDER_POLICY: Schema = {"type": "string", "enum": ["app", "installer", "app_then_installer"]}
_MONDAY_ID_OUT: Schema = {"type": "string", "pattern": "^[0-9]+$"}

# The notification object: exactly the fields of contract §6, in the API's order.
NOTIFICATION_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 1, "description": "Ours (the ledger's primary key)."},
    "timestamp": {**_DATETIME, "description": "When the notification was created (UTC)."},
    "status": _STATUS,
    "recipient": {**_MONDAY_ID_OUT, "description": "monday user id of the recipient."},
    "sender": {**_MONDAY_ID_OUT, "description": "monday user id of the caller who asked."},
    "subject": _nullable({"type": "string", "maxLength": 255}),
    "message": {"type": "string", "description": "The notification text (monday `text`)."},
    "collection": {"type": "string", "enum": ["Project", "Post"]},
    "item": {**_MONDAY_ID_OUT, "description": "monday target id (item, board, update)."},
    "account_id": {"type": "string", "description": "The caller's monday account."},
    "sent_as": _nullable({"type": "string", "enum": ["app", "installer"]}),
    "transport": _nullable({"type": "string", "enum": ["server", "seamless"]}),
    "credential_owner": _nullable({"type": "string"}),
    "delivery_status": {
        "type": "string",
        "enum": [
            "queued",
            "sending",
            "sent",
            "retry_scheduled",
            "awaiting_client",
            "failed",
            "unknown",
        ],
    },
    "attempts": {"type": "integer", "minimum": 0},
    "next_attempt_at": _nullable(_DATETIME),
    "sent_at": _nullable(_DATETIME),
    "last_error": _nullable(
        {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "monday_request_id": _nullable({"type": "string"}),
            },
        }
    ),
    "idempotency_key": _nullable({"type": "string"}),
}
assert tuple(NOTIFICATION_PROPERTIES) == API_FIELDS, "the spec must list exactly §6's fields"

_RELAY: Schema = {
    "type": "object",
    "description": "For `transport: seamless`: the mutation the view runs through seamless auth.",
    "properties": {"query": {"type": "string"}, "variables": {"type": "object"}},
    "required": ["query", "variables"],
}

_ERROR: Schema = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "extensions": {
                        "type": "object",
                        "properties": {"code": {"type": "string"}},
                        "required": ["code"],
                    },
                },
                "required": ["message", "extensions"],
            },
        }
    },
    "required": ["errors"],
}

_ID_INPUT: Schema = {
    "description": "A monday id: a positive integer or a string of digits.",
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]{1,20}$"},
        {"type": "integer", "minimum": 1},
    ],
}

_NOTIFICATION_INPUT: Schema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "recipient": _ID_INPUT,
        "message": {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS},
        "collection": {"type": "string", "enum": ["Project", "Post"]},
        "item": _ID_INPUT,
        "subject": _nullable({"type": "string", "maxLength": 255}),
        "send_as": _nullable({"type": "string", "enum": ["app", "installer"]}),
    },
    "required": ["recipient", "message", "collection", "item"],
}

_KEYS: Schema = {
    "type": "array",
    "minItems": 1,
    "items": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string"}]},
}
_STATUS_DATA: Schema = {
    "type": "object",
    "description": "Only `status` can change; any other field is 403 FORBIDDEN.",
    "properties": {"status": _STATUS},
}

_QUERY_OBJECT: Schema = {
    "type": "object",
    "description": "Directus' query: the same keys as the URL parameters, as JSON values.",
    "properties": {
        "fields": _STRINGS,
        "filter": {"type": "object"},
        "search": {"type": "string"},
        "sort": _STRINGS,
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "page": {"type": "integer"},
        "meta": {"type": "string"},
        "aggregate": {"type": "object"},
        "groupBy": _STRINGS,
    },
}

_CREDENTIAL: Schema = {
    "type": "object",
    "description": "A connected credential, never its secret.",
    "properties": {
        "kind": {"type": "string"},
        "owner_user_id": {"type": "string"},
        "connected": {"type": "boolean"},
        "verified_at": _nullable({"type": "string"}),
        "last4": _nullable({"type": "string"}),
        "needs_reconnect": {"type": "boolean"},
        "expires_at": _nullable({"type": "string"}),
    },
    "required": ["kind", "owner_user_id", "connected", "last4"],
}

_INSTALLATION: Schema = {
    "type": "object",
    "properties": {
        "account_id": {"type": "string"},
        "installed": {"type": "boolean"},
        "installer_user_id": _nullable({"type": "string"}),
        "sender_policy": _SENDER_POLICY,
        "credentials": {"type": "array", "items": _ref("Credential")},
    },
    "required": ["account_id", "installed", "installer_user_id", "sender_policy", "credentials"],
}

_MONDAY_ERROR: Schema = {
    "type": "object",
    "description": "monday's GraphQL error entry.",
    "properties": {
        "message": {"type": "string"},
        "locations": {"type": "array"},
        "path": {"type": "array"},
        "extensions": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "status_code": {"type": "integer"}},
            "required": ["code"],
        },
    },
    "required": ["message", "extensions"],
}

_V2_RESPONSE: Schema = {
    "type": "object",
    "description": "monday's answer shape: `data` by alias, monday-shaped `errors`.",
    "properties": {
        "data": _nullable(
            {
                "type": "object",
                "additionalProperties": _nullable(
                    {
                        "type": "object",
                        "properties": {"id": {"type": "string"}, "text": {"type": "string"}},
                    }
                ),
            }
        ),
        "errors": {"type": "array", "items": _ref("MondayError")},
        "extensions": {"type": "object"},
        "account_id": {"type": "integer"},
    },
}
_V2_ERROR: Schema = {
    "allOf": [_ref("MondayResponse"), {"required": ["errors"]}],
}

_GRAPHQL_RESPONSE: Schema = {
    "type": "object",
    "properties": {
        "data": _nullable({"type": "object"}),
        "errors": {"type": "array", "items": _ref("ErrorEntry")},
    },
    "required": ["data"],
}
_GRAPHQL_ERROR: Schema = {
    "type": "object",
    "properties": {"errors": {"type": "array", "minItems": 1, "items": _ref("ErrorEntry")}},
    "required": ["errors"],
}

_ACTION_ERROR: Schema = {
    "type": "object",
    "description": "monday's documented action-error body, with the error envelope alongside.",
    "properties": {
        "severityCode": {"type": "integer", "enum": [4000, 6000]},
        "notificationErrorTitle": {"type": "string"},
        "notificationErrorDescription": {"type": "string"},
        "runtimeErrorDescription": {"type": "string"},
        "disableErrorDescription": {"type": "string"},
        "errors": _ERROR["properties"]["errors"],
    },
    "required": [
        "severityCode",
        "notificationErrorTitle",
        "notificationErrorDescription",
        "runtimeErrorDescription",
        "errors",
    ],
}

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


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _errors(*codes: int, schema: Schema | None = None) -> dict[str, Schema]:
    return {str(code): _json(schema or _ref("Error"), ERROR_TEXT[code]) for code in codes}


def _data(schema: Schema, description: str = "OK") -> Schema:
    return _json(
        {"type": "object", "properties": {"data": schema}, "required": ["data"]}, description
    )


def _body(schema: Schema, *, example: Any = None) -> Schema:
    media: Schema = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {"required": True, "content": {JSON: media}}


_NO_CONTENT: Schema = {"description": "Done; empty body."}
_SESSION: list[dict[str, list[str]]] = [{"session": []}]

_QUERY_PARAMETERS: list[Schema] = [
    {
        "name": "fields",
        "in": "query",
        "description": "Comma-separated fields to return (`*` for all).",
        "schema": {"type": "string"},
    },
    {
        "name": "filter",
        "in": "query",
        "description": 'A Directus filter as JSON, e.g. `{"status":{"_eq":"inbox"}}`.',
        "schema": {"type": "string"},
    },
    {"name": "search", "in": "query", "schema": {"type": "string"}},
    {
        "name": "sort",
        "in": "query",
        "description": "Comma-separated fields, `-` for descending.",
        "schema": {"type": "string"},
    },
    {
        "name": "limit",
        "in": "query",
        "description": "Default 100; -1 means all (up to the maximum).",
        "schema": {"type": "integer", "minimum": -1},
    },
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
    {
        "name": "meta",
        "in": "query",
        "schema": {"type": "string", "enum": ["total_count", "filter_count", "*"]},
    },
    {
        "name": "aggregate",
        "in": "query",
        "description": 'JSON, e.g. `{"count":"*"}`; functions: ' + ", ".join(AGGREGATE_FUNCTIONS),
        "schema": {"type": "string"},
    },
    {"name": "groupBy", "in": "query", "schema": {"type": "string"}},
]
_FIELDS_PARAMETER = [_QUERY_PARAMETERS[0]]
_ID_PARAMETER: Schema = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
    "example": 1,
}
_IDEMPOTENCY_KEY: Schema = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "Same key and body within 24 hours replays the first answer.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def _paths() -> dict[str, Schema]:
    notifications_get: Schema = {
        "operationId": "readNotifications",
        "summary": "List the caller's visible notifications (Directus query parameters).",
        "tags": ["ledger"],
        "security": _SESSION,
        "parameters": _QUERY_PARAMETERS,
        "responses": {
            "200": _json(_ref("NotificationPage"), "A page of notifications or aggregates."),
            **_errors(400, 401),
        },
    }
    notifications_post: Schema = {
        "operationId": "createNotifications",
        "summary": f"Send one notification or an array of at most {MAX_BATCH} (create = send).",
        "tags": ["send"],
        "security": _SESSION,
        "parameters": [_IDEMPOTENCY_KEY],
        "requestBody": _body(
            {
                "anyOf": [
                    _ref("NotificationInput"),
                    {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                        "items": _ref("NotificationInput"),
                    },
                ]
            }
        ),
        "responses": {
            "200": _data(
                {
                    "anyOf": [
                        _ref("SentNotification"),
                        {"type": "array", "items": _ref("SentNotification")},
                    ]
                },
                "The ledger rows, with the delivery status reached so far.",
            ),
            **_errors(400, 401, 403, 409, 413, 422, 429),
        },
    }
    notifications_patch: Schema = {
        "operationId": "updateNotifications",
        "summary": "Archive or un-archive several notifications (all or nothing).",
        "tags": ["ledger"],
        "security": _SESSION,
        "parameters": _FIELDS_PARAMETER,
        "requestBody": _body(
            {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"keys": _KEYS, "data": _STATUS_DATA},
                        "required": ["keys", "data"],
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"query": _QUERY_OBJECT, "data": _STATUS_DATA},
                        "required": ["query", "data"],
                    },
                    {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "id": {"type": "integer", "minimum": 1},
                                "status": _STATUS,
                            },
                            "required": ["id"],
                        },
                    },
                ]
            }
        ),
        "responses": {
            "200": _data({"type": "array", "items": _ref("NotificationFields")}),
            **_errors(400, 401, 403, 413),
        },
    }
    notifications_delete: Schema = {
        "operationId": "deleteNotifications",
        "summary": "Delete ledger rows: `[ids]`, `{keys}` or `{query}` (all or nothing).",
        "tags": ["ledger"],
        "security": _SESSION,
        "requestBody": _body(
            {
                "anyOf": [
                    _KEYS,
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"keys": _KEYS},
                        "required": ["keys"],
                    },
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"query": _QUERY_OBJECT},
                        "required": ["query"],
                    },
                ]
            }
        ),
        "responses": {"204": _NO_CONTENT, **_errors(400, 401, 403, 413)},
    }
    search: Schema = {
        "summary": "SEARCH /notifications: GET with the query in the body.",
        "description": 'Body `{"query": {...}}` (overrides URL parameters) or '
        '`{"keys": [...]}`; answers like GET.',
        "requestBody": _body(
            {
                "anyOf": [
                    {"type": "object", "properties": {"query": _QUERY_OBJECT}},
                    {"type": "object", "properties": {"keys": _KEYS}},
                ]
            }
        ),
        "responses": {"200": _json(_ref("NotificationPage"), "Like GET"), **_errors(400, 401)},
    }

    return {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process answers.",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"status": {"const": "ok"}},
                            "required": ["status"],
                        },
                        "Up",
                    )
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "The database answers.",
                "tags": ["health"],
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {"status": {"const": "ready"}},
                            "required": ["status"],
                        },
                        "Ready",
                    ),
                    **_errors(503),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document.",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
            }
        },
        "/notifications": {
            "get": notifications_get,
            "post": notifications_post,
            "patch": notifications_patch,
            "delete": notifications_delete,
            "x-search": search,
        },
        "/notifications/{id}": {
            "parameters": [_ID_PARAMETER],
            "get": {
                "operationId": "readNotification",
                "summary": "One notification; 403 when missing or not visible (never 404).",
                "tags": ["ledger"],
                "security": _SESSION,
                "parameters": _FIELDS_PARAMETER,
                "responses": {
                    "200": _data(_ref("NotificationFields")),
                    **_errors(400, 401, 403),
                },
            },
            "patch": {
                "operationId": "updateNotification",
                "summary": "Change `status` (the only writable field).",
                "tags": ["ledger"],
                "security": _SESSION,
                "parameters": _FIELDS_PARAMETER,
                "requestBody": _body(_STATUS_DATA),
                "responses": {
                    "200": _data(_ref("NotificationFields")),
                    **_errors(400, 401, 403, 413),
                },
            },
            "delete": {
                "operationId": "deleteNotification",
                "summary": "Delete the ledger row (sender or admin).",
                "tags": ["ledger"],
                "security": _SESSION,
                "responses": {"204": _NO_CONTENT, **_errors(401, 403)},
            },
        },
        "/notifications/{id}/relay": {
            "parameters": [_ID_PARAMETER],
            "post": {
                "operationId": "relayOutcome",
                "summary": "The outcome of a seamless send, reported by the view that ran it.",
                "tags": ["send"],
                "security": _SESSION,
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "ok": {"type": "boolean"},
                            "monday_id": _nullable({"type": "string", "maxLength": 64}),
                            # Bounds: server/notifications/relay_input.py; other keys dropped.
                            "error": _nullable(
                                {
                                    "type": "object",
                                    "properties": {
                                        "code": _nullable({"type": "string", "maxLength": 64}),
                                        "message": _nullable({"type": "string"}),
                                        "monday_request_id": _nullable(
                                            {"type": "string", "maxLength": 128}
                                        ),
                                    },
                                }
                            ),
                        },
                        "required": ["ok"],
                    }
                ),
                "responses": {
                    "200": _data(_ref("Notification")),
                    **_errors(400, 401, 403, 409, 413),
                },
            },
        },
        "/graphql/system": {
            "post": {
                "operationId": "graphqlSystem",
                "summary": "Directus' GraphQL operations for notifications.",
                "tags": ["ledger"],
                "security": _SESSION,
                "requestBody": _body(
                    _ref("GraphQLRequest"),
                    example={"query": '{ notifications(limit: 5, sort: ["-id"]) { id status } }'},
                ),
                "responses": {
                    "200": _json(_ref("GraphQLResponse"), "Executed (errors may be in the body)"),
                    "400": _json(_ref("GraphQLError"), ERROR_TEXT[400]),
                    **_errors(401, 413),
                },
            }
        },
        "/v2": {
            "post": {
                "operationId": "mondayV2",
                "summary": "monday-compatible `create_notification` (monday's request and answer).",
                "tags": ["send"],
                "security": _SESSION,
                "parameters": [_IDEMPOTENCY_KEY],
                "requestBody": _body(
                    _ref("GraphQLRequest"),
                    example={
                        "query": "mutation { create_notification(user_id: 12, target_id: 1, "
                        'text: "Build finished", target_type: Project) { id text } }'
                    },
                ),
                "responses": {
                    "200": _json(_ref("MondayResponse"), "monday's answer shape"),
                    **_errors(400, 401, 403, 409, 413, 422, 429, schema=_ref("MondayErrorBody")),
                    "504": _json(_ref("MondayResponse"), "monday did not answer"),
                },
            }
        },
        "/monday/actions/notify": {
            "post": {
                "operationId": "automationNotify",
                "summary": "The custom automation action (integration token).",
                "tags": ["monday"],
                "security": [{"integration": []}],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "payload": {
                                "type": "object",
                                "properties": {
                                    "inboundFieldValues": {
                                        "type": "object",
                                        "properties": {
                                            "userId": _ID_INPUT,
                                            "itemId": _ID_INPUT,
                                            "boardId": _ID_INPUT,
                                            "text": {"type": "string", "minLength": 1},
                                        },
                                    }
                                },
                            },
                            "runtimeMetadata": {
                                "type": "object",
                                "properties": {"actionUuid": {"type": "string"}},
                            },
                        },
                        "required": ["payload"],
                    },
                    example={
                        "payload": {
                            "inboundFieldValues": {"userId": 12, "itemId": 1, "text": "Done"}
                        },
                        "runtimeMetadata": {"actionUuid": "example-run-1"},
                    },
                ),
                "responses": {
                    "200": _json({"type": "object", "maxProperties": 0}, "Sent (or scheduled)"),
                    **_errors(400, 401, 403, 409, 413, 422, 429, schema=_ref("ActionError")),
                },
            }
        },
        "/monday/lifecycle": {
            "post": {
                "operationId": "lifecycle",
                "summary": "monday's app lifecycle webhook (lifecycle token).",
                "tags": ["monday"],
                "security": [{"lifecycle": []}],
                "requestBody": _body(
                    {
                        "type": "object",
                        "properties": {
                            "type": {"type": "string", "enum": list(get_args(EventType))},
                            "data": {
                                "type": "object",
                                "properties": {
                                    "account_id": _ID_INPUT,
                                    "app_id": _ID_INPUT,
                                    "user_id": _ID_INPUT,
                                },
                                "required": ["account_id"],
                            },
                        },
                        "required": ["type", "data"],
                    }
                ),
                "responses": {
                    "200": _data(
                        {
                            "type": "object",
                            "properties": {
                                "type": {"type": "string"},
                                "account_id": {"type": "string"},
                                "replayed": {"type": "boolean"},
                            },
                            "required": ["type", "account_id", "replayed"],
                        },
                        "Recorded (replays too)",
                    ),
                    **_errors(400, 401, 413),
                },
            }
        },
        "/installation": {
            "get": {
                "operationId": "readInstallation",
                "summary": "The caller's account: installation, sender policy, credentials.",
                "tags": ["installation"],
                "security": _SESSION,
                "responses": {"200": _data(_ref("Installation")), **_errors(401)},
            },
            "patch": {
                "operationId": "updateInstallation",
                "summary": "Set the sender policy (admins only).",
                "tags": ["installation"],
                "security": _SESSION,
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"sender_policy": _SENDER_POLICY},
                        "required": ["sender_policy"],
                    }
                ),
                "responses": {
                    "200": _data(_ref("Installation")),
                    **_errors(400, 401, 403, 413),
                },
            },
        },
        "/installation/api-key": {
            "put": {
                "operationId": "putApiKey",
                "summary": "Store the installing user's personal API key (checked with monday).",
                "tags": ["installation"],
                "security": _SESSION,
                "requestBody": _body(
                    {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "api_key": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 4096,
                                "pattern": "^[!-~]+$",
                            }
                        },
                        "required": ["api_key"],
                    },
                    # The built-in fake monday's key of dev user 11 (`monday-notify serve --dev`).
                    example={"api_key": "dev-personal-key-user-11"},
                ),
                "responses": {
                    "200": _data(_ref("Credential")),
                    **_errors(400, 401, 403, 409, 413, 422, 502),
                },
            },
            "delete": {
                "operationId": "deleteApiKey",
                "summary": "Remove the installing user's API key.",
                "tags": ["installation"],
                "security": _SESSION,
                "responses": {"204": _NO_CONTENT, **_errors(401, 403)},
            },
        },
        "/oauth/start": {
            "post": {
                "operationId": "oauthStart",
                "summary": "Start the app's OAuth flow for the caller.",
                "tags": ["installation"],
                "security": _SESSION,
                "responses": {
                    "200": _data(
                        {
                            "type": "object",
                            "properties": {"authorize_url": {"type": "string", "format": "uri"}},
                            "required": ["authorize_url"],
                        }
                    ),
                    **_errors(401, 403, 409),
                },
            }
        },
    }


def _components() -> Schema:
    fields: Schema = {
        "type": "object",
        "description": "A notification restricted to the requested `fields`.",
        "additionalProperties": False,
        "properties": NOTIFICATION_PROPERTIES,
    }
    full = {**fields, "required": list(API_FIELDS), "description": "The notification object."}
    sent = copy.deepcopy(full)
    sent["properties"]["relay"] = _RELAY
    sent["description"] = "The notification object; `relay` when awaiting the view."
    aggregate_row: Schema = {
        "type": "object",
        "description": "An aggregate row: functions, plus the groupBy columns.",
        "propertyNames": {"enum": [*AGGREGATE_FUNCTIONS, *API_FIELDS]},
    }
    return {
        "securitySchemes": {
            "session": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "monday session token (`<jwt>` or `Bearer <jwt>`).",
            },
            "integration": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "monday integration (automation) JWT.",
            },
            "lifecycle": {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "monday lifecycle webhook JWT.",
            },
        },
        "schemas": {
            "Notification": full,
            "SentNotification": sent,
            "NotificationFields": fields,
            "AggregateRow": aggregate_row,
            "NotificationPage": {
                "type": "object",
                "properties": {
                    "data": {
                        "type": "array",
                        "items": {"anyOf": [_ref("NotificationFields"), _ref("AggregateRow")]},
                    },
                    "meta": {
                        "type": "object",
                        "properties": {
                            "total_count": {"type": "integer"},
                            "filter_count": {"type": "integer"},
                        },
                    },
                },
                "required": ["data"],
            },
            "NotificationInput": _NOTIFICATION_INPUT,
            "Error": _ERROR,
            "ErrorEntry": _ERROR["properties"]["errors"]["items"],
            "Credential": _CREDENTIAL,
            "Installation": _INSTALLATION,
            "GraphQLRequest": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "minLength": 1},
                    "variables": _nullable({"type": "object"}),
                    "operationName": _nullable({"type": "string"}),
                },
                "required": ["query"],
            },
            "GraphQLResponse": _GRAPHQL_RESPONSE,
            "GraphQLError": _GRAPHQL_ERROR,
            "MondayError": _MONDAY_ERROR,
            "MondayResponse": _V2_RESPONSE,
            "MondayErrorBody": _V2_ERROR,
            "ActionError": _ACTION_ERROR,
        },
    }


def build_spec() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy each call; callers may mutate it)."""
    document: dict[str, Any] = {
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
        "security": _SESSION,
        "tags": [
            {"name": "send"},
            {"name": "ledger"},
            {"name": "installation"},
            {"name": "monday"},
            {"name": "health"},
            {"name": "meta"},
        ],
        "paths": _paths(),
        "components": _components(),
    }
    # The parts above share module-level schemas; the copy keeps a caller's change out of them.
    return copy.deepcopy(document)
