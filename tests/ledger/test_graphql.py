"""`POST /graphql/system`: the same ledger service, rules and errors as REST."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import Mint
from tests.ledger.conftest import (
    ADMIN,
    ALICE,
    BOB,
    Client,
    all_ids,
    bearer,
    fetch_row,
)
from tests.notifications.helpers import MEMBER, connect, install


async def gql(
    client: Client, token: str, query: str, variables: dict[str, Any] | None = None
) -> tuple[int, Any]:
    body: dict[str, Any] = {"query": query}
    if variables is not None:
        body["variables"] = variables
    response = await client.post("/graphql/system", json=body, headers=bearer(token))
    return response.status, await response.json()


def codes(body: Any) -> list[str]:
    return [e["extensions"]["code"] for e in body.get("errors", [])]


async def test_list_with_filter_sort_limit(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    status, body = await gql(
        client,
        mint(user=ALICE),
        """query {
          notifications(filter: {status: {_eq: "inbox"}}, sort: ["-timestamp"], limit: 2) {
            id subject status timestamp last_error
          }
        }""",
    )
    assert status == 200, body
    assert "errors" not in body
    assert body["data"]["notifications"] == [
        {
            "id": str(ids["reply"]),
            "subject": "Re: ping",
            "status": "inbox",
            "timestamp": "2024-03-02T08:00:00.000000Z",
            "last_error": None,
        },
        {
            "id": str(ids["ping"]),
            "subject": None,
            "status": "inbox",
            "timestamp": "2024-03-01T12:00:00.000000Z",
            "last_error": None,
        },
    ]


async def test_list_is_scoped_like_rest(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(client, mint(user=ALICE), "{ notifications(limit: -1) { id } }")
    assert [int(i["id"]) for i in body["data"]["notifications"]] == sorted(
        [ids["welcome"], ids["ping"], ids["reply"]]
    )
    _, body = await gql(
        client,
        mint(user=ALICE),
        '{ notifications(filter: {_or: [{account_id: {_eq: "2002"}}, {id: {_gt: 0}}]}) { id } }',
    )
    assert str(ids["foreign"]) not in [i["id"] for i in body["data"]["notifications"]]
    assert len(body["data"]["notifications"]) == 3


async def test_filter_with_variables_and_current_user(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await gql(
        client,
        mint(user=ALICE),
        """query ($f: directus_notifications_filter, $q: String) {
          notifications(filter: $f, search: $q) { id }
        }""",
        {"f": {"recipient": {"_eq": "$CURRENT_USER"}, "attempts": {"_in": [1, "2"]}}, "q": "o"},
    )
    assert status == 200, body
    assert [int(i["id"]) for i in body["data"]["notifications"]] == sorted(
        [ids["welcome"], ids["reply"]]
    )


async def test_invalid_filter_is_invalid_query(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await gql(
        client, mint(user=ALICE), "{ notifications(filter: {status: {_in: []}}) { id } }"
    )
    assert status == 200
    assert body["data"] is None
    assert codes(body) == ["INVALID_QUERY"]
    assert body["errors"][0]["path"] == ["notifications"]
    status, body = await gql(
        client, mint(user=ALICE), '{ notifications(filter: {status: {_eq: ""}}) { id } }'
    )
    assert codes(body) == ["INVALID_QUERY"]


async def test_by_id(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"{{ notifications_by_id(id: {ids['welcome']}) {{ id message recipient }} }}",
    )
    assert body["data"]["notifications_by_id"] == {
        "id": str(ids["welcome"]),
        "message": "Hello Ada, welcome aboard",
        "recipient": ALICE,
    }
    for hidden in (ids["carol"], ids["foreign"], 999999):
        _, body = await gql(
            client, mint(user=ALICE), f'{{ notifications_by_id(id: "{hidden}") {{ id }} }}'
        )
        assert body["data"] == {"notifications_by_id": None}
        assert codes(body) == ["FORBIDDEN"]


async def test_aggregated_count_and_group(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(
        client,
        mint(user=ALICE),
        """{ unread: notifications_aggregated(
               filter: {status: {_eq: "inbox"}, recipient: {_eq: "$CURRENT_USER"}}) { countAll }
             by_status: notifications_aggregated(groupBy: ["status"]) {
               group countAll count { id subject } max { attempts timestamp } } }""",
    )
    assert "errors" not in body, body
    assert body["data"]["unread"] == [{"countAll": 2}]
    assert body["data"]["by_status"] == [
        {
            "group": {"status": "inbox"},
            "countAll": 3,
            "count": {"id": 3, "subject": 2},
            "max": {"attempts": 2, "timestamp": "2024-03-02T08:00:00.000000Z"},
        }
    ]


async def test_aggregated_through_fragments(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    _, body = await gql(
        client,
        mint(user=ADMIN, admin=True),
        """query { notifications_aggregated { ...Counts } }
           fragment Counts on directus_notifications_aggregated {
             countDistinct { recipient } ... on directus_notifications_aggregated { countAll } }""",
    )
    assert body["data"]["notifications_aggregated"] == [
        {"countDistinct": {"recipient": 3}, "countAll": 5}
    ]


async def test_update_item_and_items(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"mutation {{ update_notifications_item(id: {ids['welcome']},"
        ' data: {status: "archived"}) { id status } }',
    )
    assert body["data"]["update_notifications_item"] == {
        "id": str(ids["welcome"]),
        "status": "archived",
    }
    assert (await fetch_row(client, ids["welcome"]))["status"] == "archived"  # type: ignore[index]
    _, body = await gql(
        client,
        mint(user=ALICE),
        "mutation ($ids: [ID]!) {"
        ' update_notifications_items(ids: $ids, data: {status: "archived"}) { id } }',
        {"ids": [ids["reply"], str(ids["ping"])]},
    )
    assert [int(i["id"]) for i in body["data"]["update_notifications_items"]] == sorted(
        [ids["ping"], ids["reply"]]
    )


async def test_update_refusals(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(
        client,
        mint(user=ADMIN, admin=True),
        f"mutation {{ update_notifications_item(id: {ids['welcome']},"
        ' data: {message: "x"}) { id } }',
    )
    assert codes(body) == ["FORBIDDEN"]
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"mutation {{ update_notifications_item(id: {ids['welcome']},"
        ' data: {status: "read"}) { id } }',
    )
    assert codes(body) == ["INVALID_PAYLOAD"]
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"mutation {{ update_notifications_items(ids: [{ids['welcome']}, {ids['carol']}],"
        ' data: {status: "archived"}) { id } }',
    )
    assert codes(body) == ["FORBIDDEN"]
    assert (await fetch_row(client, ids["welcome"]))["status"] == "inbox"  # type: ignore[index]


async def test_delete_item_and_items(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"mutation {{ delete_notifications_item(id: {ids['welcome']}) {{ id }} }}",
    )
    assert codes(body) == ["FORBIDDEN"]  # she only received it
    _, body = await gql(
        client,
        mint(user=ALICE),
        f"mutation {{ delete_notifications_item(id: {ids['ping']}) {{ id }} }}",
    )
    assert body["data"]["delete_notifications_item"] == {"id": str(ids["ping"])}
    _, body = await gql(
        client,
        mint(user=BOB),
        f"mutation {{ delete_notifications_items(ids: [{ids['reply']}, {ids['carol']}])"
        " { ids } }",
    )
    assert sorted(body["data"]["delete_notifications_items"]["ids"]) == sorted(
        [str(ids["reply"]), str(ids["carol"])]
    )
    assert await all_ids(client) == {ids["welcome"], ids["failed"], ids["foreign"]}
    _, body = await gql(
        client,
        mint(user=BOB),
        f"mutation {{ delete_notifications_items(ids: [{ids['failed']}]) {{ ids }} }}",
    )
    assert codes(body) == ["FORBIDDEN"]


async def test_depth_and_alias_limits_refuse_before_execution(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    aliases = " ".join(
        f"a{i}: update_notifications_item(id: {ids['welcome']},"
        ' data: {status: "archived"}) { id }'
        for i in range(31)
    )
    status, body = await gql(client, mint(user=ALICE), f"mutation {{ {aliases} }}")
    assert status == 400
    assert codes(body) == ["GRAPHQL_VALIDATION"] and "aliases" in body["errors"][0]["message"]
    assert (await fetch_row(client, ids["welcome"]))["status"] == "inbox"  # type: ignore[index]
    deep = (
        "{ __schema { types { fields { type "
        + "{ ofType " * 14
        + "{ name }"
        + " }" * 14
        + " } } } }"
    )
    status, body = await gql(client, mint(user=ALICE), deep)
    assert status == 400 and "nested" in body["errors"][0]["message"]
    # Fragments can't hide depth or multiply aliases unseen.
    fragments = (
        "query { ...A } fragment A on Query { "
        + " ".join(f"x{i}: notifications {{ id }}" for i in range(16))
        + " } "
    )
    status, body = await gql(
        client,
        mint(user=ALICE),
        fragments.replace("{ ...A }", "{ ...A ...B }") + "fragment B on Query { ...A }",
    )
    assert status == 400


async def test_introspection_fits_the_limits(client: Client, mint: Mint) -> None:
    from graphql import get_introspection_query

    status, body = await gql(client, mint(), get_introspection_query())
    assert status == 200 and "errors" not in body
    names = {t["name"] for t in body["data"]["__schema"]["types"]}
    assert {"directus_notifications", "directus_notifications_filter"} <= names


async def test_request_errors(client: Client, mint: Mint) -> None:
    status, body = await gql(client, mint(), "{ notifications { id ")
    assert status == 400 and codes(body) == ["GRAPHQL_VALIDATION"]
    status, body = await gql(client, mint(), "{ notifications { nope } }")
    assert status == 400 and codes(body) == ["GRAPHQL_VALIDATION"]
    status, body = await gql(
        client, mint(), "query ($l: Int) { notifications(limit: $l) { id } }", {"l": "x"}
    )
    assert status == 400 and codes(body) == ["GRAPHQL_VALIDATION"]
    response = await client.post("/graphql/system", json={"query": 1}, headers=bearer(mint()))
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    response = await client.post("/graphql/system", json={"query": "{ notifications { id } }"})
    assert response.status == 401


async def wait_for_bell(fake: Any, user: str, count: int) -> list[str]:
    """monday's bell for `user` once it holds `count` notifications (the outbox worker may be
    the one that delivers, a moment after the request answered)."""
    for _ in range(200):
        bell = [b.text for b in fake.bell(user)]
        if len(bell) >= count:
            return bell
        await asyncio.sleep(0.025)
    return [b.text for b in fake.bell(user)]


async def test_create_items_go_through_the_send_path(
    monday_client: Client, fake_monday: Any, mint: Mint
) -> None:
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    fake_monday.fake.add_user("13", "1001", "User 13", "u13@example.com")
    token = mint(user=MEMBER)
    status, body = await gql(
        monday_client,
        token,
        """mutation { create_notifications_item(data: {recipient: "13",
                 message: "Hi from GraphQL", collection: "Project", item: "5550001"}) {
               id recipient sender message delivery_status } }""",
    )
    assert status == 200, body
    created = body["data"]["create_notifications_item"]
    assert created["recipient"] == "13" and created["sender"] == MEMBER
    assert created["delivery_status"] == "sent"
    assert await wait_for_bell(fake_monday.fake, "13", 1) == ["Hi from GraphQL"]
    # The row is in the ledger and readable through the same GraphQL surface.
    for _ in range(200):
        _, body = await gql(
            monday_client,
            token,
            f"{{ notifications_by_id(id: {created['id']}) {{ message delivery_status }} }}",
        )
        if body["data"]["notifications_by_id"]["delivery_status"] == "sent":
            break
        await asyncio.sleep(0.025)
    assert body["data"]["notifications_by_id"] == {
        "message": "Hi from GraphQL",
        "delivery_status": "sent",
    }
    status, body = await gql(
        monday_client,
        token,
        """mutation ($d: [create_directus_notifications_input!]!) {
             create_notifications_items(data: $d) { id recipient } }""",
        {
            "d": [
                {"recipient": "13", "message": "one", "collection": "Project", "item": "5550001"},
                {"recipient": "13", "message": "two", "collection": "Project", "item": "5550001"},
            ]
        },
    )
    assert status == 200, body
    assert len(body["data"]["create_notifications_items"]) == 2
    assert sorted(await wait_for_bell(fake_monday.fake, "13", 3)) == [
        "Hi from GraphQL",
        "one",
        "two",
    ]


async def test_create_refusal_names_the_field(monday_client: Client, mint: Mint) -> None:
    await install(monday_client)
    _, body = await gql(
        monday_client,
        mint(user=MEMBER),
        "mutation { create_notifications_item(data:"
        ' {recipient: "13", collection: "Project", item: "1"}) { id } }',
    )
    assert codes(body) == ["INVALID_PAYLOAD"]
    assert "message" in body["errors"][0]["message"]
