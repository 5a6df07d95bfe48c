"""GET, SEARCH and GET by id: envelopes, fields, sort, paging, meta, search, scoping."""

from __future__ import annotations

from typing import Any

from tests.conftest import Mint
from tests.ledger.conftest import ADMIN, ALICE, BOB, CAROL, OTHER_ACCOUNT, Client, bearer
from tests.openapi.test_document import CONTRACT_FIELDS


async def get(client: Client, token: str, path: str, **params: Any) -> tuple[int, Any]:
    response = await client.get(path, params=params, headers=bearer(token))
    return response.status, await response.json()


def id_list(body: Any) -> list[int]:
    return [item["id"] for item in body["data"]]


async def test_admin_lists_the_account_sorted_by_id(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await get(client, mint(user=ADMIN, admin=True), "/notifications")
    assert status == 200
    assert set(body) == {"data"}  # no meta unless asked
    expected = sorted(ids[n] for n in ("welcome", "failed", "ping", "reply", "carol"))
    assert id_list(body) == expected


async def test_object_has_exactly_the_contract_fields(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await get(client, mint(user=ALICE), f"/notifications/{ids['welcome']}")
    assert status == 200
    item = body["data"]
    assert list(item) == CONTRACT_FIELDS
    assert item["id"] == ids["welcome"]
    assert item["timestamp"] == "2024-01-01T10:00:00.000000Z"
    assert item["sent_at"] == "2024-01-01T10:00:01.000000Z"
    assert item["recipient"] == ALICE and item["sender"] == ADMIN
    assert item["idempotency_key"] == "key-1"


async def test_non_admin_sees_only_rows_they_received_or_sent(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    _, body = await get(client, mint(user=ALICE), "/notifications")
    assert id_list(body) == sorted([ids["welcome"], ids["ping"], ids["reply"]])
    _, body = await get(client, mint(user=CAROL), "/notifications")
    assert id_list(body) == [ids["carol"]]


async def test_other_account_sees_only_its_own_rows(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    _, body = await get(
        client, mint(account=OTHER_ACCOUNT, user=ADMIN, admin=True), "/notifications"
    )
    assert id_list(body) == [ids["foreign"]]


async def test_filter_cannot_widen_the_account_scope(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    token = mint(user=ADMIN, admin=True)
    _, body = await get(
        client, token, "/notifications", **{"filter[account_id][_eq]": OTHER_ACCOUNT}
    )
    assert body["data"] == []
    _, body = await get(
        client,
        token,
        "/notifications",
        filter='{"_or": [{"account_id": {"_eq": "2002"}}, {"id": {"_gt": 0}}]}',
    )
    assert ids["foreign"] not in id_list(body)
    assert len(body["data"]) == 5


async def test_fields_csv_and_array(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    token = mint(user=ALICE)
    _, body = await get(client, token, "/notifications", fields="id,subject")
    assert all(list(item) == ["id", "subject"] for item in body["data"])
    response = await client.get(
        "/notifications?fields[]=subject&fields[]=id,status", headers=bearer(token)
    )
    body = await response.json()
    assert all(list(item) == ["subject", "id", "status"] for item in body["data"])
    _, body = await get(client, token, "/notifications", fields="*")
    assert len(body["data"][0]) == 24  # contract §6 + §11 attempt_errors + §12 scheduling


async def test_fields_on_get_by_id(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await get(
        client, mint(user=ALICE), f"/notifications/{ids['reply']}", fields="message"
    )
    assert body == {"data": {"message": "PONG"}}


async def test_internal_columns_are_not_fields(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    for name in ("lease_owner", "lease_expires_at", "monday_id"):
        status, body = await get(client, mint(user=ALICE), "/notifications", fields=name)
        assert status == 400
        assert body["errors"][0]["extensions"]["code"] == "INVALID_QUERY"
        assert name in body["errors"][0]["message"]
        status, body = await get(client, mint(user=ALICE), "/notifications", sort=name)
        assert status == 400


async def test_unknown_and_relational_fields_are_invalid(client: Client, mint: Mint) -> None:
    status, body = await get(client, mint(), "/notifications", fields="id,nope")
    assert status == 400
    assert (
        body["errors"][0]["message"]
        == 'Invalid query. Field "nope" doesn\'t exist on notifications.'
    )
    status, body = await get(client, mint(), "/notifications", fields="recipient.email")
    assert status == 400 and "relational" in body["errors"][0]["message"]


async def test_sort_desc_and_multiple(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    token = mint(user=ADMIN, admin=True)
    _, body = await get(client, token, "/notifications", sort="-timestamp")
    assert id_list(body) == [ids[n] for n in ("carol", "reply", "ping", "failed", "welcome")]
    _, body = await get(client, token, "/notifications", sort="item,-attempts")
    assert id_list(body) == [ids[n] for n in ("welcome", "failed", "reply", "ping", "carol")]
    response = await client.get("/notifications?sort[]=-id", headers=bearer(token))
    assert id_list(await response.json())[0] == ids["carol"]


async def test_limit_offset_page(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    token = mint(user=ADMIN, admin=True)
    ordered = sorted(ids[n] for n in ("welcome", "failed", "ping", "reply", "carol"))
    _, body = await get(client, token, "/notifications", limit="2")
    assert id_list(body) == ordered[:2]
    _, body = await get(client, token, "/notifications", limit="2", offset="3")
    assert id_list(body) == ordered[3:5]
    _, body = await get(client, token, "/notifications", limit="2", page="2")
    assert id_list(body) == ordered[2:4]
    _, body = await get(client, token, "/notifications", limit="-1")
    assert id_list(body) == ordered
    _, body = await get(client, token, "/notifications", limit="0")
    assert body["data"] == []


async def test_default_limit_is_100(client: Client, mint: Mint) -> None:
    from tests.ledger.conftest import insert_rows, row

    await insert_rows(client, *[row(message=f"bulk {i}") for i in range(105)])
    token = mint(user=ADMIN, admin=True)
    _, body = await get(client, token, "/notifications", meta="filter_count")
    assert len(body["data"]) == 100
    assert body["meta"] == {"filter_count": 105}
    _, body = await get(client, token, "/notifications", limit="-1")
    assert len(body["data"]) == 105


async def test_bad_limits_are_invalid_query(client: Client, mint: Mint) -> None:
    for params in (
        {"limit": "-2"},
        {"limit": "abc"},
        {"limit": "10001"},
        {"offset": "-1"},
        {"page": "x"},
    ):
        status, body = await get(client, mint(), "/notifications", **params)
        assert status == 400, params
        assert body["errors"][0]["extensions"]["code"] == "INVALID_QUERY"


async def test_meta_counts_keep_the_scope(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    token = mint(user=ALICE)
    _, body = await get(
        client,
        token,
        "/notifications",
        meta="*",
        **{"filter[status][_eq]": "inbox"},
        limit="1",
    )
    # Alice sees welcome, ping, reply; total ignores the filter, never the scope.
    assert body["meta"] == {"total_count": 3, "filter_count": 3}
    assert len(body["data"]) == 1
    _, body = await get(
        client,
        token,
        "/notifications",
        meta="total_count,filter_count",
        **{"filter[recipient][_eq]": "$CURRENT_USER"},
    )
    assert body["meta"] == {"total_count": 3, "filter_count": 2}
    status, body = await get(client, token, "/notifications", meta="everything")
    assert status == 400


async def test_search_is_case_insensitive_over_text(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    token = mint(user=ADMIN, admin=True)
    _, body = await get(client, token, "/notifications", search="PIPELINE")
    assert id_list(body) == [ids["failed"]]
    _, body = await get(client, token, "/notifications", search="pong")
    assert id_list(body) == [ids["reply"]]
    _, body = await get(client, token, "/notifications", search="100%")
    assert id_list(body) == [ids["ping"]]
    _, body = await get(client, token, "/notifications", search="100_")
    assert id_list(body) == []  # % and _ are literal, not wildcards
    _, body = await get(client, token, "/notifications", search=str(ids["carol"]), fields="id")
    assert ids["carol"] in id_list(body)


async def test_search_never_leaves_the_scope(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    _, body = await get(client, mint(user=ALICE), "/notifications", search="carol")
    assert body["data"] == []
    _, body = await get(client, mint(user=ALICE), "/notifications", search="another account")
    assert body["data"] == []


async def test_get_by_id_refusals_are_403(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    cases = [
        (mint(user=ALICE), ids["foreign"]),  # another account's row (Alice is its recipient!)
        (mint(user=ALICE), ids["carol"]),  # neither sent nor received
        (mint(user=ADMIN, admin=True), ids["foreign"]),  # admins stay in their account
        (mint(user=ALICE), 999999),  # missing
    ]
    for token, row_id in cases:
        status, body = await get(client, token, f"/notifications/{row_id}")
        assert status == 403, row_id
        assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    status, _ = await get(client, mint(user=ALICE), "/notifications/abc")
    assert status == 403


async def test_admin_reads_any_row_of_the_account(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await get(client, mint(user=ADMIN, admin=True), f"/notifications/{ids['carol']}")
    assert status == 200 and body["data"]["recipient"] == CAROL


async def test_last_error_is_an_object(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    _, body = await get(client, mint(user=BOB), f"/notifications/{ids['failed']}")
    assert body["data"]["last_error"] == {
        "code": "InvalidUserIdException",
        "message": "no such user",
    }
    assert body["data"]["status"] == "archived"


async def test_requires_a_session(client: Client) -> None:
    response = await client.get("/notifications")
    assert response.status == 401
    response = await client.patch("/notifications/1", json={"status": "archived"})
    assert response.status == 401


async def test_unsupported_parameters_are_refused(client: Client, mint: Mint) -> None:
    status, body = await get(client, mint(), "/notifications", export="csv")
    assert status == 400 and "export" in body["errors"][0]["message"]
    status, body = await get(client, mint(), "/notifications", deep='{"x":1}')
    assert status == 400


async def test_malformed_bracket_parameter(client: Client, mint: Mint) -> None:
    response = await client.get("/notifications?filter[status=inbox", headers=bearer(mint()))
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_QUERY"
    response = await client.get(
        '/notifications?filter={"status":"inbox"}&filter[status][_eq]=x', headers=bearer(mint())
    )
    assert response.status == 400


# ---------------------------------------------------------------- SEARCH


async def search(
    client: Client, token: str, body: Any, path: str = "/notifications"
) -> tuple[int, Any]:
    response = await client.request("SEARCH", path, json=body, headers=bearer(token))
    return response.status, await response.json()


async def test_search_method_with_query_body(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await search(
        client,
        mint(user=ALICE),
        {
            "query": {
                "filter": {"status": {"_eq": "inbox"}},
                "fields": ["id"],
                "sort": ["-id"],
                "meta": "*",
            }
        },
    )
    assert status == 200
    assert body["data"] == [
        {"id": i} for i in sorted([ids["welcome"], ids["ping"], ids["reply"]], reverse=True)
    ]
    assert body["meta"] == {"total_count": 3, "filter_count": 3}


async def test_search_body_overrides_url_parameters(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await search(
        client,
        mint(user=ADMIN, admin=True),
        {"query": {"filter": {"subject": {"_eq": "Welcome"}}}},
        path="/notifications?filter[subject][_eq]=Private&fields=id,subject",
    )
    assert status == 200
    assert body["data"] == [{"id": ids["welcome"], "subject": "Welcome"}]


async def test_search_method_with_keys(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    keys = [ids["reply"], ids["welcome"], ids["carol"], ids["foreign"], 999999]
    status, body = await search(client, mint(user=ALICE), {"keys": keys})
    assert status == 200
    # Only the visible ones come back: no error, and nothing of Carol's or another account's.
    assert id_list(body) == sorted([ids["welcome"], ids["reply"]])


async def test_search_body_validation(client: Client, mint: Mint) -> None:
    for payload in (
        {},
        {"keys": [1], "query": {}},
        {"query": "x"},
        {"keys": "1"},
        {"nope": 1},
        [1],
    ):
        status, body = await search(client, mint(), payload)
        assert status == 400, payload
        assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
    status, body = await search(client, mint(), {"query": {"filter": {"status": {"_in": []}}}})
    assert status == 400 and body["errors"][0]["extensions"]["code"] == "INVALID_QUERY"


async def test_unknown_route_is_route_not_found(client: Client, mint: Mint) -> None:
    response = await client.get("/notifications/1/nothing", headers=bearer(mint()))
    assert response.status == 404
    assert (await response.json())["errors"][0]["extensions"]["code"] == "ROUTE_NOT_FOUND"
