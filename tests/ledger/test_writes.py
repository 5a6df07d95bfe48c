"""PATCH and DELETE: only status changes, all-or-nothing batches, delete by sender or admin."""

from __future__ import annotations

from typing import Any

from tests.conftest import Mint
from tests.ledger.conftest import (
    ADMIN,
    ALICE,
    BOB,
    OTHER_ACCOUNT,
    SEED,
    Client,
    all_ids,
    bearer,
    fetch_row,
    insert_rows,
    row,
)


async def call(
    client: Client, method: str, path: str, token: str, body: Any = None
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": bearer(token)}
    if body is not None:
        kwargs["json"] = body
    response = await client.request(method, path, **kwargs)
    text = await response.text()
    return response.status, (await response.json()) if text else None


async def statuses(client: Client, ids: dict[str, int]) -> dict[str, str]:
    out = {}
    for name, row_id in ids.items():
        found = await fetch_row(client, row_id)
        assert found is not None
        out[name] = found["status"]
    return out


def code(body: Any) -> str:
    return str(body["errors"][0]["extensions"]["code"])


# ---------------------------------------------------------------- PATCH one


async def test_recipient_archives_and_unarchives(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    token = mint(user=ALICE)
    status, body = await call(
        client, "PATCH", f"/notifications/{ids['welcome']}", token, {"status": "archived"}
    )
    assert status == 200
    assert body["data"]["status"] == "archived" and body["data"]["id"] == ids["welcome"]
    assert body["data"]["message"] == SEED["welcome"]["message"]
    assert (await fetch_row(client, ids["welcome"]))["status"] == "archived"  # type: ignore[index]
    status, body = await call(
        client, "PATCH", f"/notifications/{ids['welcome']}", token, {"status": "inbox"}
    )
    assert status == 200 and body["data"]["status"] == "inbox"
    assert (await fetch_row(client, ids["welcome"]))["status"] == "inbox"  # type: ignore[index]


async def test_patch_response_honours_fields(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await call(
        client,
        "PATCH",
        f"/notifications/{ids['reply']}?fields=id,status",
        mint(user=ALICE),
        {"status": "archived"},
    )
    assert status == 200 and body == {"data": {"id": ids["reply"], "status": "archived"}}


async def test_sender_may_archive_too(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    status, _ = await call(
        client, "PATCH", f"/notifications/{ids['ping']}", mint(user=ALICE), {"status": "archived"}
    )
    assert status == 200


async def test_patch_of_message_is_forbidden(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    for data in (
        {"message": "edited"},
        {"status": "archived", "subject": "x"},
        {"recipient": BOB},
        {"delivery_status": "sent"},
    ):
        status, body = await call(
            client, "PATCH", f"/notifications/{ids['welcome']}", mint(user=ADMIN, admin=True), data
        )
        assert status == 403, data
        assert code(body) == "FORBIDDEN"
    unchanged = await fetch_row(client, ids["welcome"])
    assert unchanged is not None
    assert unchanged["message"] == SEED["welcome"]["message"] and unchanged["status"] == "inbox"


async def test_bad_status_is_invalid_payload(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    for value in ("read", "", None, 1, "ARCHIVED"):
        status, body = await call(
            client, "PATCH", f"/notifications/{ids['welcome']}", mint(user=ALICE), {"status": value}
        )
        assert status == 400, value
        assert code(body) == "INVALID_PAYLOAD"
        # The body is the object itself: the field is `status`, not a `data.status` it lacks.
        assert body["errors"][0]["extensions"]["field"] == "status"
    status, body = await call(
        client, "PATCH", f"/notifications/{ids['welcome']}", mint(user=ALICE), ["status"]
    )
    assert status == 400 and code(body) == "INVALID_PAYLOAD"
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ALICE),
        {"keys": [ids["welcome"]], "data": {"status": "read"}},
    )
    assert status == 400 and body["errors"][0]["extensions"]["field"] == "data.status"


async def test_patch_hidden_missing_or_foreign_is_403(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    cases = [
        (mint(user=ALICE), ids["carol"]),
        (mint(user=ALICE), ids["foreign"]),
        (mint(user=ADMIN, admin=True), ids["foreign"]),
        (mint(user=ALICE), 987654),
    ]
    for token, row_id in cases:
        status, body = await call(
            client, "PATCH", f"/notifications/{row_id}", token, {"status": "archived"}
        )
        assert status == 403 and code(body) == "FORBIDDEN"
    assert (await statuses(client, {"carol": ids["carol"], "foreign": ids["foreign"]})) == {
        "carol": "inbox",
        "foreign": "inbox",
    }


async def test_patch_malformed_json_is_invalid_payload(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    response = await client.patch(
        f"/notifications/{ids['welcome']}", data=b"{nope", headers=bearer(mint(user=ALICE))
    )
    assert response.status == 400 and code(await response.json()) == "INVALID_PAYLOAD"


# ---------------------------------------------------------------- PATCH many


async def test_patch_keys(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    keys = [ids["reply"], ids["welcome"]]
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ALICE),
        {"keys": keys, "data": {"status": "archived"}},
    )
    assert status == 200
    assert [i["id"] for i in body["data"]] == sorted(keys)
    assert all(i["status"] == "archived" for i in body["data"])
    assert (await statuses(client, {"w": ids["welcome"], "r": ids["reply"], "p": ids["ping"]})) == {
        "w": "archived",
        "r": "archived",
        "p": "inbox",
    }


async def test_batch_patch_with_one_foreign_key_changes_nothing(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    before = await statuses(client, ids)
    for foreign in (ids["carol"], ids["foreign"], 999999):
        keys = [ids["welcome"], ids["reply"], foreign]
        status, body = await call(
            client,
            "PATCH",
            "/notifications",
            mint(user=ALICE),
            {"keys": keys, "data": {"status": "archived"}},
        )
        assert status == 403 and code(body) == "FORBIDDEN"
        assert await statuses(client, ids) == before


async def test_patch_array_form(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    items = [{"id": ids["welcome"], "status": "archived"}, {"id": ids["reply"], "status": "inbox"}]
    status, body = await call(client, "PATCH", "/notifications", mint(user=ALICE), items)
    assert status == 200
    assert {i["id"]: i["status"] for i in body["data"]} == {
        ids["welcome"]: "archived",
        ids["reply"]: "inbox",
    }
    # One foreign id: the whole array is refused, including the items before it.
    items = [{"id": ids["reply"], "status": "archived"}, {"id": ids["carol"], "status": "archived"}]
    status, body = await call(client, "PATCH", "/notifications", mint(user=ALICE), items)
    assert status == 403
    assert (await fetch_row(client, ids["reply"]))["status"] == "inbox"  # type: ignore[index]
    status, body = await call(
        client, "PATCH", "/notifications", mint(user=ALICE), [{"status": "archived"}]
    )
    assert status == 400 and code(body) == "INVALID_PAYLOAD"
    status, body = await call(
        client, "PATCH", "/notifications", mint(user=ALICE), [{"id": ids["reply"], "message": "x"}]
    )
    assert status == 403


async def test_patch_by_query_stays_in_scope(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    # "Archive all" by a non-admin: a query matching everything touches only their rows.
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ALICE),
        {"query": {"filter": {"status": {"_eq": "inbox"}}}, "data": {"status": "archived"}},
    )
    assert status == 200
    assert sorted(i["id"] for i in body["data"]) == sorted(
        [ids["welcome"], ids["ping"], ids["reply"]]
    )
    after = await statuses(client, ids)
    assert after["carol"] == "inbox" and after["foreign"] == "inbox"
    assert after["welcome"] == after["ping"] == after["reply"] == "archived"


async def test_patch_by_query_reaches_past_the_default_limit(client: Client, mint: Mint) -> None:
    created = await insert_rows(
        client, *[row(recipient=ALICE, message=f"m{i}") for i in range(130)]
    )
    status, body = await call(
        client,
        "PATCH",
        "/notifications?fields=id",
        mint(user=ALICE),
        {"query": {"filter": {"recipient": "$CURRENT_USER"}}, "data": {"status": "archived"}},
    )
    assert status == 200 and len(body["data"]) == 130
    for row_id in created:
        found = await fetch_row(client, row_id)
        assert found is not None and found["status"] == "archived"


async def test_patch_by_query_with_explicit_limit(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ADMIN, admin=True),
        {
            "query": {"filter": {"status": "inbox"}, "sort": ["-timestamp"], "limit": 1},
            "data": {"status": "archived"},
        },
    )
    assert status == 200 and [i["id"] for i in body["data"]] == [ids["carol"]]


async def test_patch_body_validation(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    bad: list[Any] = [
        {"keys": [ids["welcome"]]},  # no data
        {"data": {"status": "archived"}},  # neither keys nor query
        {"keys": [ids["welcome"]], "query": {}, "data": {"status": "archived"}},
        {"keys": ["x"], "data": {"status": "archived"}},
        {"keys": [ids["welcome"]], "data": "archived"},
        {"keys": [ids["welcome"]], "data": {"status": "archived"}, "extra": 1},
        "archived",
    ]
    for payload in bad:
        status, body = await call(client, "PATCH", "/notifications", mint(user=ALICE), payload)
        assert status == 400, payload
        assert code(body) == "INVALID_PAYLOAD", payload
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ALICE),
        {"query": {"filter": {"status": {"_in": []}}}, "data": {"status": "archived"}},
    )
    assert status == 400 and code(body) == "INVALID_QUERY"
    status, body = await call(
        client,
        "PATCH",
        "/notifications",
        mint(user=ALICE),
        {"query": {"aggregate": {"count": "*"}}, "data": {"status": "archived"}},
    )
    assert status == 400 and code(body) == "INVALID_QUERY"


# ---------------------------------------------------------------- DELETE


async def test_sender_deletes_one(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    response = await client.delete(
        f"/notifications/{ids['ping']}", headers=bearer(mint(user=ALICE))
    )
    assert response.status == 204
    assert await response.read() == b""
    assert await fetch_row(client, ids["ping"]) is None


async def test_recipient_who_is_not_sender_cannot_delete(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, body = await call(
        client, "DELETE", f"/notifications/{ids['welcome']}", mint(user=ALICE)
    )
    assert status == 403 and code(body) == "FORBIDDEN"
    assert await fetch_row(client, ids["welcome"]) is not None


async def test_delete_refusals(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    cases = [
        (mint(user=ALICE), ids["carol"]),
        (mint(user=ALICE), ids["foreign"]),  # Alice sent it, but in another account
        (mint(user=ADMIN, admin=True), ids["foreign"]),
        (mint(user=ADMIN, admin=True), 424242),
    ]
    for token, row_id in cases:
        status, body = await call(client, "DELETE", f"/notifications/{row_id}", token)
        assert status == 403 and code(body) == "FORBIDDEN"
    assert ids["carol"] in await all_ids(client) and ids["foreign"] in await all_ids(client)


async def test_admin_deletes_any_row_of_the_account(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, _ = await call(
        client, "DELETE", f"/notifications/{ids['carol']}", mint(user=ADMIN, admin=True)
    )
    assert status == 204
    assert ids["carol"] not in await all_ids(client)


async def test_delete_array_keys_and_query(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    admin = mint(user=ADMIN, admin=True)
    status, body = await call(
        client, "DELETE", "/notifications", admin, [ids["welcome"], ids["failed"]]
    )
    assert status == 204 and body is None
    status, _ = await call(client, "DELETE", "/notifications", admin, {"keys": [ids["ping"]]})
    assert status == 204
    status, _ = await call(
        client, "DELETE", "/notifications", admin, {"query": {"filter": {"item": "502"}}}
    )
    assert status == 204
    assert await all_ids(client) == {ids["carol"], ids["foreign"]}


async def test_batch_delete_with_one_undeletable_key_deletes_nothing(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    before = await all_ids(client)
    for payload in (
        [ids["ping"], ids["welcome"]],  # welcome: Alice only received it
        {"keys": [ids["ping"], ids["carol"]]},  # carol: not hers at all
        {"keys": [ids["ping"], ids["foreign"]]},
    ):
        status, body = await call(client, "DELETE", "/notifications", mint(user=ALICE), payload)
        assert status == 403 and code(body) == "FORBIDDEN"
        assert await all_ids(client) == before


async def test_delete_by_query_is_scoped_and_all_or_nothing(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    before = await all_ids(client)
    # Matches welcome (received) and ping (sent): she can't delete welcome, so nothing goes.
    status, _ = await call(
        client,
        "DELETE",
        "/notifications",
        mint(user=ALICE),
        {"query": {"filter": {"item": {"_in": ["500", "502"]}}}},
    )
    assert status == 403
    assert await all_ids(client) == before
    # Only what she sent, in her account: the foreign row she also sent stays.
    status, _ = await call(
        client,
        "DELETE",
        "/notifications",
        mint(user=ALICE),
        {"query": {"filter": {"sender": "$CURRENT_USER"}}},
    )
    assert status == 204
    assert await all_ids(client) == before - {ids["ping"]}


async def test_other_account_admin_query_delete_is_scoped(
    client: Client, mint: Mint, ids: dict[str, int]
) -> None:
    status, _ = await call(
        client,
        "DELETE",
        "/notifications",
        mint(account=OTHER_ACCOUNT, user=ADMIN, admin=True),
        {"query": {}},
    )
    assert status == 204
    assert await all_ids(client) == set(ids.values()) - {ids["foreign"]}


async def test_delete_body_validation(client: Client, mint: Mint, ids: dict[str, int]) -> None:
    for payload in ({}, {"keys": [1], "query": {}}, {"keys": "1"}, ["a"], {"ids": [1]}, 5):
        status, body = await call(
            client, "DELETE", "/notifications", mint(user=ADMIN, admin=True), payload
        )
        assert status == 400, payload
        assert code(body) == "INVALID_PAYLOAD"
    response = await client.delete("/notifications", headers=bearer(mint()))
    assert response.status == 400
    assert len(await all_ids(client)) == len(ids)
