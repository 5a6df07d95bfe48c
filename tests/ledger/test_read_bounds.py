"""Every ledger read costs bounded work (contract §8, §10; docs/security.md "Hostile callers").

- A filter at the rule limit runs on both engines, by every route that takes one (before, 495
  `_or` rules hit SQLite's expression-depth limit: a 500); one more rule is 400.
- A text value longer than any stored text is 400 (before, SQLite refused LIKE patterns over
  50,000 bytes: a 500).
- A read that passes every size limit but needs more database time than `LEDGER_READ_SECONDS`
  is stopped: 400 `QUERY_TOO_EXPENSIVE`, on REST and GraphQL; a cheap read still answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from server.app import create_app
from server.appkeys import ENGINE
from server.notifications.filters import MAX_FILTER_RULES, MAX_TEXT_VALUE_CHARS
from server.storage.tables import notifications
from tests.conftest import Mint, make_settings, start_app
from tests.ledger.conftest import ADMIN, ALICE, Client, bearer, insert_rows, row


def wide_or(rules: int) -> dict[str, Any]:
    """The widest filter: `rules` text rules side by side, each a scan of every row."""
    return {"_or": [{"message": {"_icontains": f"zz{i}q"}} for i in range(rules)]}


def code(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["extensions"]["code"])


@pytest.mark.parametrize("user", [ADMIN, ALICE])
async def test_a_filter_at_the_rule_limit_runs_on_every_route(
    client: Client, mint: Mint, user: str
) -> None:
    headers = bearer(mint(user=user, admin=user == ADMIN))
    at_limit = wide_or(MAX_FILTER_RULES)
    search = await client.request(
        "SEARCH",
        "/notifications",
        json={"query": {"filter": at_limit, "meta": "filter_count"}},
        headers=headers,
    )
    assert search.status == 200, await search.text()
    assert (await search.json())["meta"]["filter_count"] == 0
    patch = await client.patch(
        "/notifications", json={"query": {"filter": at_limit}, "data": {}}, headers=headers
    )
    assert patch.status == 200, await patch.text()
    over = await client.request(
        "SEARCH",
        "/notifications",
        json={"query": {"filter": wide_or(MAX_FILTER_RULES + 1)}},
        headers=headers,
    )
    assert over.status == 400
    assert code(await over.json()) == "INVALID_QUERY"


@pytest.mark.parametrize(
    "query",
    [
        {"search": "a" * (MAX_TEXT_VALUE_CHARS + 1)},
        {"filter": {"message": {"_icontains": "é" * (MAX_TEXT_VALUE_CHARS + 1)}}},
        {"filter": {"subject": {"_nistarts_with": "%" * (MAX_TEXT_VALUE_CHARS + 1)}}},
        {"filter": {"message": {"_contains": "a" * (MAX_TEXT_VALUE_CHARS + 1)}}},
    ],
)
async def test_a_text_value_longer_than_any_stored_text_is_400(
    client: Client, mint: Mint, query: dict[str, Any]
) -> None:
    response = await client.request(
        "SEARCH", "/notifications", json={"query": query}, headers=bearer(mint(user=ALICE))
    )
    assert response.status == 400, await response.text()
    body = await response.json()
    assert code(body) == "INVALID_QUERY"
    assert str(MAX_TEXT_VALUE_CHARS) in body["errors"][0]["message"]


async def test_a_text_value_as_long_as_the_longest_text_runs(client: Client, mint: Mint) -> None:
    # 5,000 characters of 4 bytes, each `%` escaped: the longest LIKE pattern allowed.
    needle = "%😀" * (MAX_TEXT_VALUE_CHARS // 2)
    for query in ({"search": needle}, {"filter": {"message": {"_icontains": needle}}}):
        response = await client.request(
            "SEARCH", "/notifications", json={"query": query}, headers=bearer(mint(user=ALICE))
        )
        assert response.status == 200, await response.text()


ROWS = 8000


@pytest.fixture
async def bounded(tmp_path: Path, database_url: str) -> AsyncIterator[Client]:
    """A ledger of 8,000 rows whose reads may take 50 ms each: a filter of 200 text rules
    over them takes several times that on either engine, the newest 5 rows a few ms."""
    settings = make_settings(tmp_path, database_url=database_url, ledger_read_seconds=0.05)
    async for client in start_app(create_app(settings)):
        rows = [row(message=f"message number {i} " * 8, recipient=ALICE) for i in range(ROWS)]
        async with client.app[ENGINE].begin() as conn:
            await conn.execute(insert(notifications), rows)
        yield client


async def test_a_read_past_its_time_is_stopped_and_others_still_answer(
    bounded: Client, mint: Mint
) -> None:
    headers = bearer(mint(user=ADMIN, admin=True))
    expensive = await bounded.request(
        "SEARCH",
        "/notifications",
        json={"query": {"filter": wide_or(MAX_FILTER_RULES), "meta": "filter_count"}},
        headers=headers,
    )
    assert expensive.status == 400, await expensive.text()
    body = await expensive.json()
    assert code(body) == "QUERY_TOO_EXPENSIVE"
    assert "0.05 s" in body["errors"][0]["message"]

    cheap = await bounded.get("/notifications?limit=5&sort=-id", headers=headers)
    assert cheap.status == 200
    assert len((await cheap.json())["data"]) == 5


async def test_graphql_reads_past_their_time_are_stopped(bounded: Client, mint: Mint) -> None:
    document = (
        "query ($f: directus_notifications_filter) {"
        " a: notifications_aggregated(filter: $f) { countAll }"
        " b: notifications_aggregated(filter: $f) { countAll } }"
    )
    response = await bounded.post(
        "/graphql/system",
        json={"query": document, "variables": {"f": wide_or(MAX_FILTER_RULES)}},
        headers=bearer(mint(user=ADMIN, admin=True)),
    )
    body = await response.json()
    assert body.get("errors"), body
    assert {error["extensions"]["code"] for error in body["errors"]} == {"QUERY_TOO_EXPENSIVE"}


async def test_a_write_by_query_with_an_expensive_filter_is_stopped_before_it_writes(
    bounded: Client, mint: Mint
) -> None:
    """The filter of a `{query}` write runs in a bounded read, not inside the write
    transaction (where it held the one write lock every send waits for)."""
    headers = bearer(mint(user=ADMIN, admin=True))
    expensive = {"query": {"filter": wide_or(MAX_FILTER_RULES)}}
    patched = await bounded.patch(
        "/notifications", json={**expensive, "data": {"status": "archived"}}, headers=headers
    )
    assert patched.status == 400
    assert code(await patched.json()) == "QUERY_TOO_EXPENSIVE"
    deleted = await bounded.delete("/notifications", json=expensive, headers=headers)
    assert deleted.status == 400
    assert code(await deleted.json()) == "QUERY_TOO_EXPENSIVE"
    counted = await bounded.get(
        "/notifications?aggregate[count]=*&groupBy[]=status", headers=headers
    )
    assert (await counted.json())["data"] == [{"status": "inbox", "count": ROWS}]


async def test_archive_all_reaches_every_row_in_chunks(client: Client, mint: Mint) -> None:
    rows = [row(message=f"m{i}", recipient=ALICE) for i in range(ROWS // 2)]
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(insert(notifications), rows)
    headers = bearer(mint(user=ALICE))
    archived = await client.patch(
        "/notifications",
        json={"query": {"filter": {"status": {"_eq": "inbox"}}}, "data": {"status": "archived"}},
        headers=headers,
    )
    assert archived.status == 200
    data = (await archived.json())["data"]
    assert len(data) == ROWS // 2 and {item["status"] for item in data} == {"archived"}
    assert [item["id"] for item in data] == sorted(item["id"] for item in data)
    deleted = await client.delete(
        "/notifications",
        json={"query": {"filter": {"recipient": {"_eq": ALICE}}, "limit": -1}},
        headers=bearer(mint(user=ADMIN, admin=True)),
    )
    assert deleted.status in (200, 204)
    left = await client.get("/notifications?aggregate[count]=*", headers=headers)
    assert (await left.json())["data"] == [{"count": 0}]


async def test_a_batch_naming_one_row_many_times_changes_it_once(
    client: Client, mint: Mint
) -> None:
    first, second = await insert_rows(
        client, row(message="a", recipient=ALICE), row(message="b", recipient=ALICE)
    )
    batch = [{"id": second, "status": "archived"}, {"id": first, "status": "archived"}]
    batch += [{"id": first}] * 9_998  # "no change" keeps the archive
    response = await client.patch("/notifications", json=batch, headers=bearer(mint(user=ALICE)))
    assert response.status == 200, await response.text()
    data = (await response.json())["data"]
    assert [(item["id"], item["status"]) for item in data] == [
        (first, "archived"),
        (second, "archived"),
    ]


async def test_a_read_past_its_time_at_the_drivers_cursor_is_400_too(
    tmp_path: Path, database_url: str, mint: Mint
) -> None:
    """A query read twice runs at the driver's cursor from then on (storage/compiled_reads.py),
    where an interrupted statement raised the driver's own error: a 500. Here the same URL is
    read twice while cheap, then again once the ledger has grown past its time."""
    settings = make_settings(tmp_path, database_url=database_url, ledger_read_seconds=0.05)
    rules = "&".join(f"filter[_or][{i}][message][_icontains]=zz{i}q" for i in range(100))
    url = f"/notifications?limit=5&meta=filter_count&{rules}"
    async for client in start_app(create_app(settings)):
        headers = bearer(mint(user=ADMIN, admin=True))
        for _ in range(2):
            cheap = await client.get(url, headers=headers)
            assert cheap.status == 200, await cheap.text()
        rows = [row(message=f"message number {i} " * 8, recipient=ALICE) for i in range(ROWS)]
        async with client.app[ENGINE].begin() as conn:
            await conn.execute(insert(notifications), rows)
        grown = await client.get(url, headers=headers)
        assert grown.status == 400, await grown.text()
        assert code(await grown.json()) == "QUERY_TOO_EXPENSIVE"
