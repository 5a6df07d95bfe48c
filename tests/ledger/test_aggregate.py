"""`aggregate` and `groupBy`: the unread badge in one call, per-status counts, min/max."""

from __future__ import annotations

import json
from typing import Any

from tests.conftest import Mint
from tests.ledger.conftest import ADMIN, ALICE, BOB, Client, bearer


async def _get(client: Client, token: str, query: str) -> tuple[int, Any]:
    response = await client.get(f"/notifications?{query}", headers=bearer(token))
    return response.status, await response.json()


async def test_unread_badge_is_one_call(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    status, body = await _get(
        client,
        mint(user=ALICE),
        "aggregate[count]=*&filter[status][_eq]=inbox&filter[recipient][_eq]=$CURRENT_USER",
    )
    assert status == 200
    assert body == {"data": [{"count": 2}]}


async def test_directus_app_badge_shape(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    # What the Directus app sends: count of id, read as data[0].count.id.
    flt = json.dumps({"_and": [{"recipient": {"_eq": BOB}}, {"status": {"_eq": "inbox"}}]})
    response = await client.get(
        "/notifications",
        params={"filter": flt, "aggregate[count]": "id"},
        headers=bearer(mint(user=BOB)),
    )
    assert (await response.json())["data"] == [{"count": {"id": 1}}]


async def test_count_is_scoped(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, admin = await _get(client, mint(user=ADMIN, admin=True), "aggregate[count]=*")
    _, alice = await _get(client, mint(user=ALICE), "aggregate[count]=*")
    assert admin["data"] == [{"count": 5}]  # not the other account's row
    assert alice["data"] == [{"count": 3}]


async def test_group_by_status(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    status, body = await _get(
        client, mint(user=ADMIN, admin=True), "aggregate[count]=*&groupBy=status"
    )
    assert status == 200
    assert body["data"] == [{"status": "archived", "count": 1}, {"status": "inbox", "count": 4}]
    _, body = await _get(
        client, mint(user=ADMIN, admin=True), "aggregate[count]=*&groupBy[]=status&sort=-status"
    )
    assert [r["status"] for r in body["data"]] == ["inbox", "archived"]


async def test_group_by_two_fields_with_several_functions(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    query = (
        "aggregate[count]=id,subject&aggregate[countDistinct]=recipient"
        "&aggregate[max]=attempts,timestamp&aggregate[min]=timestamp"
        "&groupBy=item,status&filter[item][_in]=502,500"
    )
    status, body = await _get(client, mint(user=ADMIN, admin=True), query)
    assert status == 200
    assert body["data"] == [
        {
            "item": "500",
            "status": "inbox",
            "count": {"id": 1, "subject": 1},
            "countDistinct": {"recipient": 1},
            "max": {"attempts": 1, "timestamp": "2024-01-01T10:00:00.000000Z"},
            "min": {"timestamp": "2024-01-01T10:00:00.000000Z"},
        },
        {
            "item": "502",
            "status": "inbox",
            "count": {"id": 2, "subject": 1},  # count(field) skips nulls
            "countDistinct": {"recipient": 2},
            "max": {"attempts": 2, "timestamp": "2024-03-02T08:00:00.000000Z"},
            "min": {"timestamp": "2024-03-01T12:00:00.000000Z"},
        },
    ]


async def test_aggregate_as_json(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await _get(
        client,
        mint(user=ADMIN, admin=True),
        'aggregate={"max":["attempts"],"countDistinct":"sender"}',
    )
    assert body["data"] == [{"max": {"attempts": 3}, "countDistinct": {"sender": 3}}]


async def test_aggregate_with_meta(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await _get(client, mint(user=ALICE), "aggregate[count]=*&filter[status]=inbox&meta=*")
    assert body == {"data": [{"count": 3}], "meta": {"total_count": 3, "filter_count": 3}}


async def test_group_by_alone_lists_groups(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await _get(client, mint(user=ADMIN, admin=True), "groupBy=collection")
    assert body["data"] == [{"collection": "Post"}, {"collection": "Project"}]


async def test_invalid_aggregates(sqlite_client: Client, mint: Mint) -> None:
    for query in (
        "aggregate[sum]=attempts",
        "aggregate[count]=nope",
        "aggregate[min]=*",
        "aggregate[count]=*,id",
        "aggregate[max]=last_error",
        "aggregate={bad",
        "aggregate=[1]",
        "aggregate[count]=*&groupBy=last_error",
        "aggregate[count]=*&groupBy=status&sort=id",
        "aggregate[count]=*&groupBy=year(timestamp)",
    ):
        status, body = await _get(sqlite_client, mint(), query)
        assert status == 400, query
        assert body["errors"][0]["extensions"]["code"] == "INVALID_QUERY", query
