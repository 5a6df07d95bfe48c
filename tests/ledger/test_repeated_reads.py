"""A query read again answers exactly as it did the first time, and still reads the database.

On SQLite a reused query's statements run at the driver's cursor from its third read
(server/storage/compiled_reads.py, taken from the second), with their own conversion of every
column; the first two take SQLAlchemy's path. So each query here is read three times and the
answers compared, over every field type (timestamps set and NULL, JSON, booleans), counts,
aggregates and `_in` lists.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text

from server.appkeys import ENGINE
from tests.conftest import Mint
from tests.ledger.conftest import (
    ADMIN,
    ALICE,
    BOB,
    OTHER_ACCOUNT,
    Client,
    at,
    bearer,
    insert_rows,
    row,
)

QUERIES: list[dict[str, str]] = [
    {"sort": "-timestamp", "limit": "3", "page": "1", "meta": "filter_count,total_count"},
    {"sort": "-timestamp", "limit": "3", "page": "2", "meta": "*"},
    {"filter[status][_eq]": "inbox", "sort": "-timestamp", "meta": "filter_count"},
    {"fields": "id,urgent,send_at,attempt_errors,last_error", "sort": "id"},
    {"filter": json.dumps({"item": {"_in": ["500", "502", "777"]}}), "sort": "-timestamp"},
    {"aggregate[count]": "*"},
    {"aggregate[min]": "timestamp,urgent", "aggregate[max]": "sent_at,attempts"},
    {"aggregate[count]": "*", "groupBy[]": "item", "sort": "item"},
    {"search": "ping"},
]


async def _read(client: Client, token: str, params: dict[str, str]) -> Any:
    response = await client.get("/notifications", params=params, headers=bearer(token))
    assert response.status == 200, await response.text()
    return await response.json()


async def _seed(client: Client) -> list[int]:
    return await insert_rows(
        client,
        row(timestamp=at("2024-01-01T10:00:00"), item="500", sent_at=at("2024-01-01T10:00:01")),
        row(
            timestamp=at("2024-02-01T09:30:00.250000"),
            status="archived",
            item="501",
            delivery_status="failed",
            attempts=3,
            last_error={"code": "InvalidUserIdException", "message": "no such user"},
            attempt_errors=[{"code": "A", "message": "first"}, {"code": "B", "message": "2nd"}],
        ),
        row(
            timestamp=at("2024-03-01T12:00:00"),
            item="502",
            message="ping",
            urgent=True,
            send_at=at("2024-03-05T08:00:00.000001"),
            next_attempt_at=at("2024-03-05T08:00:00.000001"),
        ),
        row(timestamp=at("2024-03-01T12:00:00"), item="502", recipient=ALICE, sender=ALICE),
    )


async def test_a_reused_query_answers_the_same_every_time(client: Client, mint: Mint) -> None:
    ids = await _seed(client)
    for token in (mint(user=ADMIN, admin=True), mint(user=ALICE)):
        for params in QUERIES:
            first = await _read(client, token, params)
            assert first["data"], params  # each query finds something to compare
            for _ in range(2):
                assert await _read(client, token, params) == first, params
    admin = mint(user=ADMIN, admin=True)
    body = await _read(client, admin, QUERIES[3])
    by_id = {item["id"]: item for item in body["data"]}
    assert by_id[ids[0]]["attempt_errors"] == [] and by_id[ids[0]]["send_at"] is None
    assert by_id[ids[1]]["attempt_errors"][1] == {"code": "B", "message": "2nd"}
    assert by_id[ids[1]]["last_error"]["code"] == "InvalidUserIdException"
    assert by_id[ids[2]]["urgent"] is True and by_id[ids[1]]["urgent"] is False
    assert by_id[ids[2]]["send_at"] == "2024-03-05T08:00:00.000001Z"
    page = await _read(client, admin, QUERIES[0])
    assert page["meta"] == {"filter_count": 4, "total_count": 4}
    assert page["data"][0]["timestamp"] == "2024-03-01T12:00:00.000000Z"


async def test_a_reused_query_still_reads_each_time(client: Client, mint: Mint) -> None:
    """No answer is kept: a row written between two reads of the same query is in the second."""
    await _seed(client)
    token = mint(user=ADMIN, admin=True)
    params = {"sort": "-timestamp", "limit": "2", "meta": "filter_count"}
    for _ in range(3):
        before = await _read(client, token, params)
    count = await _read(client, token, {"aggregate[count]": "*"})
    count = await _read(client, token, {"aggregate[count]": "*"})
    (new_id,) = await insert_rows(client, row(timestamp=at("2025-01-01T00:00:00")))
    after = await _read(client, token, params)
    assert after["data"][0]["id"] == new_id
    assert after["meta"]["filter_count"] == before["meta"]["filter_count"] + 1
    recount = await _read(client, token, {"aggregate[count]": "*"})
    assert recount["data"][0]["count"] == count["data"][0]["count"] + 1


async def test_sqlite_timestamp_text_in_another_shape_reads_the_same(
    sqlite_client: Client, mint: Mint
) -> None:
    """SQLAlchemy writes `YYYY-MM-DD HH:MM:SS.ffffff`; a value stored otherwise (by hand, by
    an old tool) takes the column's own conversion on the compiled path too."""
    (row_id,) = await insert_rows(sqlite_client, row())
    async with sqlite_client.app[ENGINE].begin() as conn:
        await conn.execute(
            text("UPDATE notifications SET timestamp = '2024-05-05 10:00:00' WHERE id = :id"),
            {"id": row_id},
        )
    token = mint(user=ADMIN, admin=True)
    for _ in range(3):
        body = await _read(sqlite_client, token, {"sort": "-timestamp"})
        assert body["data"][0]["timestamp"] == "2024-05-05T10:00:00.000000Z"


async def test_a_reused_query_stays_bound_to_each_callers_account_and_role(
    client: Client, mint: Mint
) -> None:
    """Contract §10: the same query text, read past the third time (at the cursor) by the same
    user id in two accounts, and by an admin and a member of one, gives each caller only the
    rows it may see, whoever read it first (the compiled statement binds the caller's account
    and role, storage/compiled_reads.py)."""
    mine, alices, foreign = await insert_rows(
        client,
        row(timestamp=at("2024-01-01T10:00:00"), recipient=BOB, message="account 1001, to bob"),
        row(timestamp=at("2024-01-02T10:00:00"), recipient=ALICE, message="account 1001, alice"),
        row(
            timestamp=at("2024-01-03T10:00:00"),
            account_id=OTHER_ACCOUNT,
            recipient=ALICE,
            sender=ALICE,
            message="account 2002, alice",
        ),
    )
    params = {"sort": "-timestamp", "meta": "filter_count"}
    callers = {
        "alice in 1001": (mint(user=ALICE), {alices}),
        "alice in 2002": (mint(user=ALICE, account=OTHER_ACCOUNT), {foreign}),
        "admin of 1001": (mint(user=ADMIN, admin=True), {mine, alices}),
    }
    for _ in range(4):  # interleaved, so each caller's third read follows the others' reads
        for name, (token, expected) in callers.items():
            body = await _read(client, token, params)
            assert {item["id"] for item in body["data"]} == expected, name
            assert body["meta"]["filter_count"] == len(expected), name
