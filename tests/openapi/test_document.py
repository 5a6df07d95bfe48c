"""`GET /openapi.json`: what the document promises, checked against the running app."""

from __future__ import annotations

from enum import EnumMeta
from pathlib import Path
from typing import Any, get_args

from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.errors import ErrorCode
from server.installations.lifecycle import EventType
from server.notifications.api_types import Collection, DeliveryStatus, Status
from server.notifications.serialize import API_FIELDS
from server.sender import SendAs, SenderPolicy, Transport
from tests.conftest import make_settings

# Routes that are not JSON, so not in the document: HTML pages, their assets, Prometheus text.
NOT_JSON_PREFIXES = (
    "/views",
    "/static",
    "/vendor",
    "/dev",
    "/metrics",
    "/oauth/callback",
    "/websocket",  # a WebSocket upgrade (docs/realtime.md), not a JSON route
)
# Contract §6, written out on purpose: the one independent list the code is checked against
# (here and in tests/ledger/test_rest_read.py), so a field can't change in code and tests at once.
CONTRACT_FIELDS = [
    "id",
    "timestamp",
    "status",
    "recipient",
    "sender",
    "subject",
    "message",
    "collection",
    "item",
    "account_id",
    "sent_as",
    "transport",
    "credential_owner",
    "delivery_status",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "last_error",
    "attempt_errors",  # contract §11: `last_error` of every attempt that failed
    "idempotency_key",
    # contract §12
    "send_at",
    "urgent",
    "digest_id",
    "deferred_reason",
]


async def fetch_document(client: Any) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    document: dict[str, Any] = await response.json()
    return document


async def test_document_is_openapi_31_without_a_token(client: Any) -> None:
    document = await fetch_document(client)
    assert document["openapi"] == "3.1.0"
    assert document["paths"]["/openapi.json"]["get"]["security"] == []


async def test_every_json_route_is_described(client: Any) -> None:
    document = await fetch_document(client)
    described = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "patch", "delete"}
    }
    described |= {
        ("SEARCH", path) for path, item in document["paths"].items() if "x-search" in item
    }
    served = {
        (route.method, route.resource.canonical)
        for route in client.app.router.routes()
        if route.method not in {"HEAD", "OPTIONS"}
        and route.resource is not None
        and not route.resource.canonical.startswith(NOT_JSON_PREFIXES)
    }
    assert served == described


async def test_notification_schema_has_exactly_the_contract_fields(client: Any) -> None:
    schemas = (await fetch_document(client))["components"]["schemas"]
    assert list(API_FIELDS) == CONTRACT_FIELDS
    for name in ("Notification", "NotificationFields"):
        assert list(schemas[name]["properties"]) == CONTRACT_FIELDS
        assert schemas[name]["additionalProperties"] is False
    assert schemas["Notification"]["required"] == CONTRACT_FIELDS
    assert schemas["NotificationFields"].get("required") is None  # `fields` selects a subset
    status = schemas["Notification"]["properties"]["status"]
    assert status["enum"] == ["inbox", "archived"]


async def test_error_envelope_and_security_schemes(client: Any) -> None:
    document = await fetch_document(client)
    schemas = document["components"]["schemas"]
    error = schemas["ErrorEnvelope"]
    assert error["required"] == ["errors"]
    assert error["properties"]["errors"]["items"] == {"$ref": "#/components/schemas/ErrorEntry"}
    assert schemas["ErrorEntry"]["required"] == ["message", "extensions"]
    assert schemas["ErrorExtensions"]["required"] == ["code"]
    for scheme in document["components"]["securitySchemes"].values():
        assert (scheme["type"], scheme["in"], scheme["name"]) == (
            "apiKey",
            "header",
            "Authorization",
        )
    send = document["paths"]["/notifications"]["post"]
    assert send["security"] == [{"session": []}]
    assert set(send["responses"]) == {"200", "400", "401", "403", "409", "413", "422", "429"}
    assert send["responses"]["409"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorEnvelope"
    }
    # The served document is the one the real server answers an error with.
    response = await client.get("/notifications")
    assert response.status == 401
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "TOKEN_MISSING"


# Schemas an error response may have: the §8 envelope, or a surface's own shape around it.
ERROR_SCHEMAS = {"ErrorEnvelope", "GraphQLErrors", "MondayErrorBody", "ActionError"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "patch", "delete", "x-search"}
    ]


async def test_every_error_response_is_an_envelope_and_every_token_route_has_401(
    client: Any,
) -> None:
    document = await fetch_document(client)
    for method, path, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in ERROR_SCHEMAS, (method, path, status)
        if operation["security"]:
            assert "401" in operation["responses"], (method, path)


async def test_every_send_route_documents_429_requests_exceeded(client: Any) -> None:
    """Contract §6/§8: a send over the user's rate is refused whole with 429 and Retry-After."""
    document = await fetch_document(client)
    for path in ("/notifications", "/v2", "/monday/actions/notify"):
        response = document["paths"][path]["post"]["responses"]["429"]
        assert "Retry-After" in response["headers"]
    assert "REQUESTS_EXCEEDED" in get_args(ErrorCode)


def enum_of(schema: dict[str, Any], schemas: dict[str, Any]) -> list[Any]:
    """The enum of a property, through an `anyOf` with null or a `$ref` to a component."""
    if "$ref" in schema:
        return enum_of(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    if "enum" in schema:
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    (choice,) = [s for s in schema["anyOf"] if s != {"type": "null"}]
    return enum_of(choice, schemas)


async def test_enums_are_the_literal_types_of_the_code(client: Any) -> None:
    schemas = (await fetch_document(client))["components"]["schemas"]
    notification = schemas["Notification"]["properties"]
    expected: list[tuple[dict[str, Any], Any]] = [
        (notification["status"], Status),
        (notification["delivery_status"], DeliveryStatus),
        (notification["collection"], Collection),
        (notification["sent_as"], SendAs),
        (notification["transport"], Transport),
        (schemas["NotificationInput"]["properties"]["collection"], Collection),
        (schemas["NotificationInput"]["properties"]["send_as"], SendAs),
        (schemas["StatusData"]["properties"]["status"], Status),
        (schemas["ErrorExtensions"]["properties"]["code"], ErrorCode),
        (schemas["InstallationPatch"]["properties"]["sender_policy"], SenderPolicy),
        (schemas["LifecycleEvent"]["properties"]["type"], EventType),
    ]
    for schema, literal in expected:
        values = [m.value for m in literal] if isinstance(literal, EnumMeta) else get_args(literal)
        assert enum_of(schema, schemas) == list(values)
    assert {m.value for m in DeliveryStatus} >= {"queued", "sent", "awaiting_client", "unknown"}


async def test_every_served_route_is_described_in_dev_mode_too(tmp_path: Path) -> None:
    """The dev app adds the local monday (contract §9); its pages stay out, and every other
    route, JSON or not, is either described or one of the known non-JSON prefixes."""
    app = create_app(make_settings(tmp_path, app_env="development"))
    async with TestClient(TestServer(app, host="127.0.0.1")) as dev_client:
        document = await fetch_document(dev_client)
    assert any(r.resource and r.resource.canonical == "/dev" for r in app.router.routes())
    missing = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in {"HEAD", "OPTIONS"}
        and route.resource is not None
        and not route.resource.canonical.startswith(NOT_JSON_PREFIXES)
        and route.method.lower() not in document["paths"].get(route.resource.canonical, {})
        and not (
            route.method == "SEARCH" and "x-search" in document["paths"][route.resource.canonical]
        )
    }
    assert missing == set()
