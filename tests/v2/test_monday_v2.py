"""POST /v2 end to end: monday's request and answer shapes, over HTTP, against the fake monday."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from server.appkeys import ENGINE
from server.monday.client import CREATE_NOTIFICATION
from server.notifications.v2_parse import MAX_FIELDS
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, INSTALLER
from tests.notifications.helpers import MEMBER, connect, install, row_count

LITERAL = (
    "mutation { create_notification (user_id: 12, target_id: 674387, "
    'text: "This is a notification", target_type: Project) { text } }'
)
WITH_VARIABLES = (
    "mutation Notify($user: ID!, $target: ID!, $text: String!, $type: NotificationTargetType!) "
    "{ create_notification(user_id: $user, target_id: $target, text: $text, target_type: $type) "
    "{ id text } }"
)


async def ready(client: Any, fake: Any) -> str:
    await install(client)
    return await connect(client, fake, user=MEMBER, kind="oauth")


async def post(client: Any, mint: Any, body: Any, **headers: str) -> tuple[int, Any]:
    response = await client.post(
        "/v2", json=body, headers={"Authorization": mint(user=MEMBER), **headers}
    )
    return response.status, await response.json()


async def test_literal_mutation_as_in_mondays_docs(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    token = await ready(monday_client, fake_monday.fake)
    status, body = await post(monday_client, mint, {"query": LITERAL})
    assert status == 200, body
    # Only the selected field, keyed by the field name; monday's envelope around it.
    assert body["data"] == {"create_notification": {"text": "This is a notification"}}
    assert body["account_id"] == int(ACCOUNT)
    assert body["extensions"]["request_id"]
    assert "errors" not in body
    [call] = fake_monday.fake.requests_to("/v2")
    assert call.authorization == token
    assert call.body["query"] == CREATE_NOTIFICATION  # re-sent with variables, never pasted
    assert call.body["variables"] == {
        "user_id": MEMBER,
        "target_id": "674387",
        "text": "This is a notification",
        "target_type": "Project",
    }
    [bell] = fake_monday.fake.bell(MEMBER)
    assert bell.text == "This is a notification" and bell.from_app


async def test_variables_and_operation_name(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    variables = {"user": int(MEMBER), "target": "5550001", "text": "hello", "type": "Post"}
    status, body = await post(
        monday_client,
        mint,
        {"query": WITH_VARIABLES, "variables": variables, "operationName": "Notify"},
    )
    assert status == 200, body
    result = body["data"]["create_notification"]
    assert result["text"] == "hello"
    async with monday_client.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(notifications))).mappings().one()
    # The id is the ledger id; the row records the surface's input faithfully.
    assert result["id"] == str(row["id"])
    assert (row["recipient"], row["item"], row["collection"], row["delivery_status"]) == (
        MEMBER,
        "5550001",
        "Post",
        "sent",
    )
    assert fake_monday.fake.requests_to("/v2")[0].body["variables"]["target_type"] == "Post"


async def test_three_aliases_make_three_rows_and_three_bell_entries(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    fake_monday.fake.add_user("13", ACCOUNT, "User 13", "u13@example.com")
    query = (
        "mutation ($t: String!) {"
        ' first: create_notification(user_id: 12, target_id: 1, text: "one", target_type: Project)'
        " { id text __typename }"
        ' second: create_notification(user_id: "13", target_id: 2, text: $t, target_type: Post)'
        " { ref: id }"
        ' third: create_notification(user_id: 13, target_id: 3, text: "three",'
        " target_type: Project) { ...N }"
        " } fragment N on Notification { text }"
    )
    status, body = await post(monday_client, mint, {"query": query, "variables": {"t": "two"}})
    assert status == 200, body
    data = body["data"]
    assert list(data) == ["first", "second", "third"]
    assert data["first"]["text"] == "one" and data["first"]["__typename"] == "Notification"
    assert list(data["second"]) == ["ref"]
    assert data["third"] == {"text": "three"}
    assert len({data["first"]["id"], data["second"]["ref"]}) == 2
    assert await row_count(monday_client) == 3
    assert [b.text for b in fake_monday.fake.bell(MEMBER)] == ["one"]
    assert sorted(b.text for b in fake_monday.fake.bell("13")) == ["three", "two"]


async def test_text_reaches_monday_byte_for_byte(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    text = 'quote " back \\ newline \n tab \t emoji 🚀 braces {} graphql ) { me { id } } # $x'
    # Once as a variable, once as a GraphQL string literal (escaped per the GraphQL spec).
    status, body = await post(
        monday_client,
        mint,
        {
            "query": WITH_VARIABLES,
            "variables": {"user": MEMBER, "target": 1, "text": text, "type": "Project"},
        },
    )
    assert status == 200, body
    literal = json.dumps(text)  # a JSON string is a valid GraphQL string literal here
    query = (
        f"mutation {{ create_notification(user_id: {MEMBER}, target_id: 1, text: {literal}, "
        "target_type: Project) { text } }"
    )
    status, body = await post(monday_client, mint, {"query": query})
    assert status == 200, body
    assert body["data"]["create_notification"]["text"] == text
    for call in fake_monday.fake.requests_to("/v2"):
        assert json.loads(call.raw_body)["variables"]["text"] == text
        assert text not in call.body["query"]
    assert [b.text for b in fake_monday.fake.bell(MEMBER)] == [text, text]


async def test_a_query_is_refused(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    status, body = await post(monday_client, mint, {"query": "query { me { id } }"})
    assert status == 200  # monday's application-level errors come with HTTP 200
    [error] = body["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["extensions"]["status_code"] == 400
    assert error["locations"] == [{"line": 1, "column": 1}]
    assert "create_notification" in error["message"]
    assert "data" not in body and body["account_id"] == int(ACCOUNT)
    # Shorthand `{ me { id } }` is a query too.
    status, body = await post(monday_client, mint, {"query": "{ me { id } }"})
    assert body["errors"][0]["extensions"]["error_data"] == {"operation": "query"}
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0


async def test_other_mutations_are_refused_even_next_to_create_notification(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    query = (
        'mutation { a: create_notification(user_id: 12, target_id: 1, text: "x", '
        'target_type: Project) { id } b: create_item(board_id: 1, item_name: "x") { id } }'
    )
    status, body = await post(monday_client, mint, {"query": query})
    [error] = body["errors"]
    assert status == 200
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert error["extensions"]["error_data"] == {"field": "create_item"}
    assert "create_item" in error["message"]
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0


async def test_malformed_graphql_is_a_parse_error(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    status, body = await post(
        monday_client, mint, {"query": "mutation { create_notification(user_id: 1 }"}
    )
    assert status == 200
    [error] = body["errors"]
    assert error["message"] == 'Parse error on "}" (RCURLY) at [1, 43]'
    assert error["locations"] == [{"line": 1, "column": 43}]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert error["extensions"]["status_code"] == 400
    status, body = await post(monday_client, mint, {"query": "mutation { create_notification("})
    assert body["errors"][0]["message"].startswith("Parse error on end of document")
    assert await row_count(monday_client) == 0


async def test_request_shape_errors(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    # monday 2025-04: variables as a JSON string are refused.
    status, body = await post(
        monday_client,
        mint,
        {"query": WITH_VARIABLES, "variables": json.dumps({"user": MEMBER})},
    )
    assert status == 400
    assert "JSON object" in body["errors"][0]["message"]
    assert body["errors"][0]["extensions"]["status_code"] == 400
    status, body = await post(monday_client, mint, {"variables": {}})
    assert status == 400 and body["errors"][0]["message"] == "No query string was present"
    response = await monday_client.post(
        "/v2", data=b"{not json", headers={"Authorization": mint(user=MEMBER)}
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["code"] == "JsonParseException"
    assert await row_count(monday_client) == 0


async def test_invalid_arguments_refuse_the_whole_document(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    query = (
        'mutation { ok: create_notification(user_id: 12, target_id: 1, text: "fine", '
        'target_type: Project) { id } bad: create_notification(user_id: "abc", target_id: 1, '
        'text: "x", target_type: Project) { id } empty: create_notification(user_id: 12, '
        'target_id: 1, text: "  ", target_type: Project) { id } '
        'long: create_notification(user_id: 12, target_id: 1, text: "'
        + "x" * 5001
        + '", target_type: Project) { id } }'
    )
    status, body = await post(monday_client, mint, {"query": query})
    assert status == 200
    errors = {tuple(e["path"]): e for e in body["errors"]}
    assert set(errors) == {("bad",), ("empty",), ("long",)}
    assert "at most 5000 characters" in errors[("long",)]["message"]
    assert errors[("bad",)]["extensions"]["code"] == "InvalidArgumentException"
    assert errors[("bad",)]["extensions"]["error_data"] == {"argument": "user_id"}
    assert "user_id" in errors[("bad",)]["message"]
    assert errors[("empty",)]["extensions"]["error_data"] == {"argument": "text"}
    # Wrong types and a missing argument fail GraphQL validation.
    query = (
        "mutation { create_notification(user_id: 12, target_id: 1, text: 5, "
        "target_type: Board) { id } }"
    )
    status, body = await post(monday_client, mint, {"query": query})
    codes = {e["extensions"]["code"] for e in body["errors"]}
    assert codes == {"GRAPHQL_VALIDATION_FAILED"} and len(body["errors"]) == 2
    status, body = await post(
        monday_client, mint, {"query": WITH_VARIABLES, "variables": {"user": MEMBER}}
    )
    assert "$target" in body["errors"][0]["message"]
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0


async def test_too_many_aliases_and_too_deep_are_refused_before_execution(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    field = (
        ': create_notification(user_id: 12, target_id: 1, text: "x", target_type: Project) { id }'
    )
    query = "mutation { " + " ".join(f"n{i}{field}" for i in range(MAX_FIELDS + 1)) + " }"
    status, body = await post(monday_client, mint, {"query": query})
    assert status == 200
    [error] = body["errors"]
    assert error["extensions"]["error_data"] == {"max_fields": MAX_FIELDS}
    assert str(MAX_FIELDS) in error["message"]
    deep = "mutation { create_notification { a { b { c { d { e } } } } } }"
    status, body = await post(monday_client, mint, {"query": deep})
    assert "nested too deeply" in body["errors"][0]["message"]
    assert fake_monday.fake.requests_to("/v2") == [] and await row_count(monday_client) == 0
    # Exactly the limit is fine.
    query = "mutation { " + " ".join(f"n{i}{field}" for i in range(MAX_FIELDS)) + " }"
    status, body = await post(monday_client, mint, {"query": query})
    assert status == 200 and len(body["data"]) == MAX_FIELDS and "errors" not in body


async def test_token_failures_are_401(monday_client: Any, mint: Any) -> None:
    response = await monday_client.post("/v2", json={"query": LITERAL})
    assert response.status == 401
    body = await response.json()
    assert body["errors"][0]["extensions"] == {"code": "TOKEN_MISSING", "status_code": 401}
    expired = mint(user=MEMBER, lifetime=-3600)
    response = await monday_client.post(
        "/v2", json={"query": LITERAL}, headers={"Authorization": f"Bearer {expired}"}
    )
    assert response.status == 401
    text = await response.text()
    assert json.loads(text)["errors"][0]["extensions"]["code"] == "TOKEN_EXPIRED"
    assert expired not in text


async def test_sender_refusal_uses_our_code(monday_client: Any, mint: Any) -> None:
    await install(monday_client)  # nothing connected, and the caller cannot relay
    status, body = await post(monday_client, mint, {"query": LITERAL})
    assert status == 409
    [error] = body["errors"]
    assert error["extensions"] == {"code": "NO_CREDENTIAL", "status_code": 409}
    assert "Connect the app" in error["message"]
    viewer = await monday_client.post(
        "/v2", json={"query": LITERAL}, headers={"Authorization": mint(user=MEMBER, view_only=True)}
    )
    assert viewer.status == 403
    assert (await viewer.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_count(monday_client) == 0


async def test_rows_monday_refused_are_errors_with_their_alias(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    query = (
        'mutation { good: create_notification(user_id: 12, target_id: 1, text: "a", '
        "target_type: Project) { id } ghost: create_notification(user_id: 999, target_id: 1, "
        'text: "b", target_type: Project) { id } }'
    )
    status, body = await post(monday_client, mint, {"query": query})
    assert status == 200
    assert body["data"]["good"]["id"] and body["data"]["ghost"] is None
    [error] = body["errors"]
    assert error["path"] == ["ghost"]
    assert error["extensions"]["code"] == "InvalidUserIdException"
    assert error["extensions"]["error_data"]["delivery_status"] == "failed"


async def test_retry_scheduled_rows_are_accepted(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    fake_monday.fake.fail_next("rate_limit", retry_in_seconds=30)
    status, body = await post(monday_client, mint, {"query": LITERAL})
    assert status == 200 and "errors" not in body
    assert body["data"]["create_notification"] == {"text": "This is a notification"}
    async with monday_client.app[ENGINE].connect() as conn:
        row = (await conn.execute(select(notifications))).mappings().one()
    assert row["delivery_status"] == "retry_scheduled"


async def test_relay_capable_view_gets_the_mutation_to_run(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client, policy="app")
    status, body = await post(monday_client, mint, {"query": LITERAL}, **{"X-Relay-Capable": "1"})
    assert status == 200, body
    relay = body["extensions"]["relay"]["create_notification"]
    assert relay["query"] == CREATE_NOTIFICATION
    assert relay["variables"]["text"] == "This is a notification"
    assert fake_monday.fake.requests_to("/v2") == []


async def test_idempotency_key_replays(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    first = await post(monday_client, mint, {"query": LITERAL}, **{"Idempotency-Key": "k1"})
    second = await post(monday_client, mint, {"query": LITERAL}, **{"Idempotency-Key": "k1"})
    assert first == second and first[0] == 200
    assert len(fake_monday.fake.requests_to("/v2")) == 1
    other = LITERAL.replace("This is", "Another")
    status, body = await post(monday_client, mint, {"query": other}, **{"Idempotency-Key": "k1"})
    assert status == 422 and body["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"


async def test_installer_key_path_through_v2(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client, policy="installer")
    key = await connect(monday_client, fake_monday.fake, user=INSTALLER, kind="api_key")
    status, body = await post(monday_client, mint, {"query": LITERAL})
    assert status == 200, body
    assert fake_monday.fake.requests_to("/v2")[0].authorization == key
    [bell] = fake_monday.fake.bell(MEMBER)
    assert not bell.from_app


async def test_operation_name_picks_one_mutation_of_several(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await ready(monday_client, fake_monday.fake)
    field = 'create_notification(user_id: 12, target_id: 1, text: "{}", target_type: Project)'
    query = (
        f"mutation A {{ {field.format('from A')} {{ id }} }} "
        f"mutation B {{ {field.format('from B')} {{ text }} }}"
    )
    status, body = await post(monday_client, mint, {"query": query, "operationName": "B"})
    assert status == 200 and body["data"] == {"create_notification": {"text": "from B"}}
    assert [b.text for b in fake_monday.fake.bell(MEMBER)] == ["from B"]
    status, body = await post(monday_client, mint, {"query": query})
    assert "operation name" in body["errors"][0]["message"]
    status, body = await post(monday_client, mint, {"query": query, "operationName": "C"})
    assert 'Unknown operation named "C"' in body["errors"][0]["message"]
    # Anything but create_notification at the root, even __typename or a subscription.
    for refused in ("mutation { __typename }", "subscription { create_notification { id } }"):
        status, body = await post(monday_client, mint, {"query": refused})
        assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", refused
    assert await row_count(monday_client) == 1


async def test_skip_and_include_directives(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    await ready(monday_client, fake_monday.fake)
    query = (
        "mutation ($quiet: Boolean!) {"
        ' a: create_notification(user_id: 12, target_id: 1, text: "a", target_type: Project)'
        " @skip(if: $quiet) { id }"
        ' b: create_notification(user_id: 12, target_id: 1, text: "b", target_type: Project)'
        " { id text @include(if: false) } }"
    )
    status, body = await post(monday_client, mint, {"query": query, "variables": {"quiet": True}})
    assert status == 200 and list(body["data"]) == ["b"] and list(body["data"]["b"]) == ["id"]
    assert [b.text for b in fake_monday.fake.bell(MEMBER)] == ["b"]
    skipped = (
        'mutation { c: create_notification(user_id: 12, target_id: 1, text: "c", '
        "target_type: Project) @skip(if: true) { id } }"
    )
    status, body = await post(monday_client, mint, {"query": skipped})
    assert status == 200 and body["data"] == {}
    assert await row_count(monday_client) == 1
