"""Text fields refuse NUL and lone surrogates on every send surface, naming the field, and
nothing is written or sent (contract §10). On PostgreSQL a NUL used to be a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.token_mint import mint_integration
from tests.conftest import ACCOUNT, INSTALLER, SIGNING_SECRET, Mint
from tests.notifications.helpers import MEMBER, connect, install, notification, row_count

BAD = {"nul": "Build\u0000finished", "surrogate": "Build \ud800 finished"}
ACTION = "/monday/actions/notify"


def raw_json(value: Any) -> bytes:
    """JSON as a client sends it: `\\u0000` and `\\ud800` escapes (valid JSON text)."""
    return json.dumps(value).encode()


@pytest.fixture
async def ready(both_client: Any, fake_monday: Any) -> Any:
    await install(both_client)
    await connect(both_client, fake_monday.fake, user=MEMBER, kind="oauth")
    fake_monday.fake.add_token("short-lived", MEMBER, ACCOUNT, "short_lived")
    return both_client


async def nothing_happened(client: Any, fake_monday: Any, rows_before: int = 0) -> None:
    assert await row_count(client) == rows_before
    assert fake_monday.fake.requests_to("/v2") == []


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize(
    ("body", "field"),
    [
        (lambda bad: notification(message=bad), "message"),
        (lambda bad: notification(subject=bad), "subject"),
        (lambda bad: [notification(), notification(message=bad)], "[1].message"),
    ],
    ids=["message", "subject", "batch"],
)
async def test_rest_send(
    ready: Any, fake_monday: Any, mint: Mint, bad: str, body: Any, field: str
) -> None:
    response = await ready.post(
        "/notifications",
        data=raw_json(body(bad)),
        headers={"Authorization": mint(user=MEMBER), "Content-Type": "application/json"},
    )
    assert response.status == 400, await response.text()
    [error] = (await response.json())["errors"]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert error["extensions"]["field"] == field
    await nothing_happened(ready, fake_monday)


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("field", ["message", "subject"])
async def test_directus_graphql_create(
    ready: Any, fake_monday: Any, mint: Mint, bad: str, field: str
) -> None:
    document = (
        "mutation ($data: create_directus_notifications_input!) "
        "{ create_notifications_item(data: $data) { id } }"
    )
    response = await ready.post(
        "/graphql/system",
        data=raw_json({"query": document, "variables": {"data": notification(**{field: bad})}}),
        headers={"Authorization": mint(user=MEMBER), "Content-Type": "application/json"},
    )
    body = await response.json()
    [error] = body["errors"]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD", body
    assert error["extensions"]["field"].endswith(field)
    await nothing_happened(ready, fake_monday)


MUTATION = (
    "mutation ($text: String!) { create_notification(user_id: 12, target_id: 1, "
    "text: $text, target_type: Project) { id } }"
)


@pytest.mark.parametrize(
    "request_body",
    [
        {"query": MUTATION, "variables": {"text": BAD["nul"]}},
        {"query": MUTATION, "variables": {"text": BAD["surrogate"]}},
        {
            "query": 'mutation { create_notification(user_id: 12, target_id: 1, text: "a\\u0000b", '
            "target_type: Project) { id } }"
        },
        {
            "query": 'mutation { create_notification(user_id: 12, target_id: 1, text: "a\\ud800b", '
            "target_type: Project) { id } }"
        },
    ],
    ids=["variable-nul", "variable-surrogate", "literal-nul", "literal-surrogate"],
)
async def test_v2(ready: Any, fake_monday: Any, mint: Mint, request_body: Any) -> None:
    response = await ready.post(
        "/v2",
        data=raw_json(request_body),
        headers={"Authorization": mint(user=MEMBER), "Content-Type": "application/json"},
    )
    body = await response.json()
    [error] = body["errors"]
    assert "data" not in body or not body["data"], body
    if error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED":
        # graphql-core's lexer already refuses a lone surrogate escape in a string literal.
        assert "\\ud800" in request_body["query"]
    else:
        assert error["extensions"]["code"] == "InvalidArgumentException", error
        assert error["extensions"]["error_data"] == {"argument": "text"}
    await nothing_happened(ready, fake_monday)


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
async def test_automation_action(ready: Any, fake_monday: Any, bad: str) -> None:
    token = mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience="http://127.0.0.1:8080" + ACTION,
        short_lived_token="short-lived",
    )
    inputs = {"userId": int(MEMBER), "itemId": 9876543210, "text": bad}
    run = {
        "payload": {"inboundFieldValues": inputs, "inputFields": inputs},
        "runtimeMetadata": {"actionUuid": "hygiene-1"},
    }
    response = await ready.post(
        ACTION,
        data=raw_json(run),
        headers={"Authorization": token, "Content-Type": "application/json"},
    )
    # Invalid input fields are 422 in the action's error format, like every other bad value.
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    assert '"text"' in body["notificationErrorDescription"]
    await nothing_happened(ready, fake_monday)


async def awaiting_relay(client: Any, mint: Mint) -> int:
    response = await client.post(
        "/notifications",
        json=notification(),
        headers={"Authorization": mint(user=INSTALLER), "X-Relay-Capable": "1"},
    )
    row = (await response.json())["data"]
    assert row["delivery_status"] == "awaiting_client", row
    return int(row["id"])


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize(
    ("outcome", "field"),
    [
        (lambda bad: {"ok": True, "monday_id": bad}, "monday_id"),
        (lambda bad: {"ok": False, "error": {"code": "X", "message": bad}}, "error.message"),
        (lambda bad: {"ok": False, "error": {"code": bad}}, "error.code"),
        (
            lambda bad: {"ok": False, "error": {"monday_request_id": bad}},
            "error.monday_request_id",
        ),
    ],
    ids=["monday_id", "error.message", "error.code", "error.monday_request_id"],
)
async def test_relay(
    both_client: Any, fake_monday: Any, mint: Mint, bad: str, outcome: Any, field: str
) -> None:
    await install(both_client, policy="app")  # nobody connected: the view relays
    row_id = await awaiting_relay(both_client, mint)
    response = await both_client.post(
        f"/notifications/{row_id}/relay",
        data=raw_json(outcome(bad)),
        headers={"Authorization": mint(user=INSTALLER), "Content-Type": "application/json"},
    )
    assert response.status == 400, await response.text()
    [error] = (await response.json())["errors"]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert error["extensions"]["field"] == field
    check = await both_client.get(
        f"/notifications/{row_id}", headers={"Authorization": mint(user=INSTALLER)}
    )
    assert (await check.json())["data"]["delivery_status"] == "awaiting_client"


@pytest.mark.parametrize("bad", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/notifications/{id}", lambda bad: {"status": bad}),
        ("PATCH", "/notifications", lambda bad: {"keys": ["{id}"], "data": {"status": bad}}),
        (
            "PATCH",
            "/notifications",
            lambda bad: {
                "query": {"filter": {"message": {"_eq": bad}}},
                "data": {"status": "archived"},
            },
        ),
        ("DELETE", "/notifications", lambda bad: {"query": {"filter": {"subject": {"_eq": bad}}}}),
        (
            "SEARCH",
            "/notifications",
            lambda bad: {"query": {"filter": {"message": {"_in": [bad]}}}},
        ),
        ("SEARCH", "/notifications", lambda bad: {"query": {"search": bad}}),
    ],
    ids=["patch-one", "patch-keys", "patch-query", "delete-query", "search-in", "search-text"],
)
async def test_ledger_inputs_never_500(
    both_client: Any, mint: Mint, bad: str, method: str, path: str, body: Any
) -> None:
    await install(both_client, policy="app")
    row_id = await awaiting_relay(both_client, mint)
    payload = json.loads(json.dumps(body(bad)).replace('"{id}"', str(row_id)))
    response = await both_client.request(
        method,
        path.replace("{id}", str(row_id)),
        data=raw_json(payload),
        headers={"Authorization": mint(user=INSTALLER), "Content-Type": "application/json"},
    )
    assert 400 <= response.status < 500, await response.text()
    assert await row_count(both_client) == 1


@pytest.mark.parametrize("bad", ["%00", "%ED%A0%80"], ids=["nul", "surrogate-bytes"])
@pytest.mark.parametrize(
    "parameter", ["filter[message][_eq]", "search", "filter[subject][_contains]"]
)
async def test_query_strings_never_500(
    both_client: Any, mint: Mint, bad: str, parameter: str
) -> None:
    response = await both_client.get(
        f"/notifications?{parameter}=a{bad}b", headers={"Authorization": mint(user=INSTALLER)}
    )
    assert 200 <= response.status < 500, await response.text()
    if response.status >= 400:
        assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_QUERY"
