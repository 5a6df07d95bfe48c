"""`GET /openapi.json`: what the document promises, checked against the running app."""

from __future__ import annotations

from typing import Any

from server.notifications.serialize import API_FIELDS

# Routes that are not JSON, so not in the document: HTML pages, their assets, Prometheus text.
NOT_JSON_PREFIXES = ("/views", "/static", "/vendor", "/dev", "/metrics", "/oauth/callback")
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
    "idempotency_key",
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
    error = document["components"]["schemas"]["Error"]
    entry = error["properties"]["errors"]["items"]
    assert entry["required"] == ["message", "extensions"]
    assert entry["properties"]["extensions"]["required"] == ["code"]
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
        "$ref": "#/components/schemas/Error"
    }
    # The served document is the one the real server answers an error with.
    response = await client.get("/notifications")
    assert response.status == 401
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "TOKEN_MISSING"
