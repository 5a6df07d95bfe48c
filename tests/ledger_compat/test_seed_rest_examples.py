"""The plain REST examples of the Directus notifications page (seeds/directus-notifications-api.md),
one test each, sent over HTTP to the whole server on 127.0.0.1.

Where Directus' example body uses Directus data (UUID users, `directus_files`, editing the
message), the test shows what our ledger answers instead: the same envelope and error codes
Directus uses, and nothing written or changed. Ids that the seed shows (42, 34, 15, 64, ...) are
replaced by ids of rows the test created.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import INSTALLER
from tests.notifications.helpers import MEMBER, connect, install, notification

DIRECTUS_USER = "410b5772-e63f-4ae6-9ea2-39c3a31bd6ca"


@pytest.fixture
async def api(monday_client: Any, fake_monday: Any, mint: Any) -> Any:
    """The server with account 1001 installed and the installer's app token connected; the
    client sends the installer's (an admin's) session token as `Authorization: Bearer`."""
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=INSTALLER, kind="oauth")
    monday_client.headers = {"Authorization": f"Bearer {mint(user=INSTALLER, admin=True)}"}
    return monday_client


async def call(api: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await api.request(method, path, headers=api.headers, **kwargs)
    body = await response.read()
    if not body:
        return response.status, None
    assert response.content_type == "application/json"
    return response.status, await response.json()


async def send(api: Any, *messages: str) -> list[int]:
    status, body = await call(
        api, "POST", "/notifications", json=[notification(message=m) for m in messages]
    )
    assert status == 200, body
    return [row["id"] for row in body["data"]]


async def visible_ids(api: Any) -> list[int]:
    status, body = await call(api, "GET", "/notifications", params={"fields": "id"})
    assert status == 200
    return [row["id"] for row in body["data"]]


def error_code(body: Any) -> str:
    [error] = body["errors"]
    assert isinstance(error["message"], str) and error["message"]
    code: str = error["extensions"]["code"]
    return code


# -- List Notifications ------------------------------------------------------------------------
async def test_list_notifications_get(api: Any) -> None:
    """`GET /notifications`: an array of notification objects (empty when there are none)."""
    assert await call(api, "GET", "/notifications") == (200, {"data": []})
    ids = await send(api, "one", "two")
    status, body = await call(api, "GET", "/notifications")
    assert status == 200
    assert [row["id"] for row in body["data"]] == ids  # sorted by primary key by default
    assert set(body["data"][0]) >= {
        "id",
        "timestamp",
        "status",
        "recipient",
        "sender",
        "subject",
        "message",
        "collection",
        "item",
    }
    assert body["data"][0]["recipient"] == MEMBER
    assert body["data"][0]["sender"] == INSTALLER


async def test_list_notifications_search(api: Any) -> None:
    """`SEARCH /notifications`: like GET with the query in the body. Without a body Directus
    answers 400 INVALID_PAYLOAD ("query" xor "keys" is required); so do we."""
    ids = await send(api, "alpha", "beta", "gamma")
    status, body = await call(api, "SEARCH", "/notifications")
    assert (status, error_code(body)) == (400, "INVALID_PAYLOAD")
    status, body = await call(
        api,
        "SEARCH",
        "/notifications",
        json={"query": {"filter": {"message": {"_in": ["alpha", "gamma"]}}, "fields": ["id"]}},
    )
    assert (status, body) == (200, {"data": [{"id": ids[0]}, {"id": ids[2]}]})
    status, body = await call(
        api, "SEARCH", "/notifications", json={"keys": [ids[1]], "query": None}
    )
    assert (status, error_code(body)) == (400, "INVALID_PAYLOAD")
    status, body = await call(api, "SEARCH", "/notifications", json={"keys": [ids[1]]})
    assert status == 200
    assert [row["message"] for row in body["data"]] == ["beta"]


# -- Retrieve a notification -------------------------------------------------------------------
async def test_retrieve_notification(api: Any) -> None:
    """`GET /notifications/42`: the notification object; a missing id is 403, never 404."""
    [row_id] = await send(api, "the answer")
    status, body = await call(api, "GET", f"/notifications/{row_id}")
    assert status == 200
    assert body["data"]["id"] == row_id
    assert body["data"]["message"] == "the answer"
    assert body["data"]["status"] == "inbox"
    status, body = await call(api, "GET", f"/notifications/{row_id + 41}")
    assert (status, error_code(body)) == (403, "FORBIDDEN")


# -- Create a Notification ---------------------------------------------------------------------
async def test_create_notification_seed_body_is_refused(api: Any, fake_monday: Any) -> None:
    """The seed's body (a Directus user UUID and only a subject) can't be a monday
    notification: 400 INVALID_PAYLOAD naming the field, nothing written or sent."""
    status, body = await call(
        api, "POST", "/notifications", json={"recipient": DIRECTUS_USER, "subject": "Hi there!"}
    )
    assert (status, error_code(body)) == (400, "INVALID_PAYLOAD")
    assert body["errors"][0]["extensions"]["field"] == "recipient"
    assert await visible_ids(api) == []
    assert fake_monday.fake.notifications == []


async def test_create_notification(api: Any, fake_monday: Any) -> None:
    """The same request with monday values: 200 (not 201) and the created object."""
    status, body = await call(
        api,
        "POST",
        "/notifications",
        json={
            "recipient": MEMBER,
            "subject": "Hi there!",
            "message": "Hi there!",
            "collection": "Project",
            "item": "42",
        },
    )
    assert status == 200
    created = body["data"]
    assert (created["recipient"], created["subject"], created["item"]) == (
        MEMBER,
        "Hi there!",
        "42",
    )
    assert await visible_ids(api) == [created["id"]]
    await delivered(fake_monday.fake, 1)
    assert [(n.recipient_user_id, n.text) for n in fake_monday.fake.notifications] == [
        (MEMBER, "Hi there!")
    ]


# -- Create Multiple Notifications -------------------------------------------------------------
async def test_create_multiple_seed_body_is_refused(api: Any, fake_monday: Any) -> None:
    """The seed's array (`directus_files`, `articles`, UUID users): 400 naming the first bad
    field, and none of the rows is written (all or nothing)."""
    status, body = await call(
        api,
        "POST",
        "/notifications",
        json=[
            {
                "collection": "directus_files",
                "recipient": DIRECTUS_USER,
                "message": "Hi there! You should check out these files",
            },
            {
                "collection": "articles",
                "recipient": DIRECTUS_USER,
                "message": "Hi there! You should check out these articles",
            },
        ],
    )
    assert (status, error_code(body)) == (400, "INVALID_PAYLOAD")
    assert body["errors"][0]["extensions"]["field"].startswith("[0].")
    assert await visible_ids(api) == []
    assert fake_monday.fake.notifications == []


async def test_create_multiple_notifications(api: Any, fake_monday: Any) -> None:
    """The same shape with monday values: 200 and the created objects, in order."""
    status, body = await call(
        api,
        "POST",
        "/notifications",
        json=[
            {
                "collection": "Project",
                "recipient": MEMBER,
                "item": "1",
                "message": "Hi there! You should check out these files",
            },
            {
                "collection": "Post",
                "recipient": MEMBER,
                "item": "2",
                "message": "Hi there! You should check out these articles",
            },
        ],
    )
    assert status == 200
    assert [(row["collection"], row["item"]) for row in body["data"]] == [
        ("Project", "1"),
        ("Post", "2"),
    ]
    assert await visible_ids(api) == [row["id"] for row in body["data"]]
    await delivered(fake_monday.fake, 2)


# -- Update a Notification ---------------------------------------------------------------------
async def test_update_notification(api: Any) -> None:
    """`PATCH /notifications/34 {"message": ...}`: a sent notification can't be edited (403
    FORBIDDEN, unchanged); `{"status": "archived"}` is the update that works."""
    [row_id] = await send(api, "original")
    status, body = await call(
        api,
        "PATCH",
        f"/notifications/{row_id}",
        json={"message": "This is my updated notification"},
    )
    assert (status, error_code(body)) == (403, "FORBIDDEN")
    status, body = await call(api, "PATCH", f"/notifications/{row_id}", json={"status": "archived"})
    assert status == 200
    assert (body["data"]["message"], body["data"]["status"]) == ("original", "archived")


# -- Update Multiple Notifications -------------------------------------------------------------
async def test_update_multiple_notifications(api: Any) -> None:
    """`PATCH /notifications {"keys": [15, 64], "data": {"message"}}`: 403, nothing changed;
    with `{"status"}` both rows change and come back."""
    ids = await send(api, "first", "second")
    status, body = await call(
        api, "PATCH", "/notifications", json={"keys": ids, "data": {"message": "Updated message!"}}
    )
    assert (status, error_code(body)) == (403, "FORBIDDEN")
    status, body = await call(
        api, "PATCH", "/notifications", json={"keys": ids, "data": {"status": "archived"}}
    )
    assert status == 200
    assert [(row["id"], row["message"], row["status"]) for row in body["data"]] == [
        (ids[0], "first", "archived"),
        (ids[1], "second", "archived"),
    ]


# -- Delete a Notification ---------------------------------------------------------------------
async def test_delete_notification(api: Any) -> None:
    """`DELETE /notifications/34`: 204, empty body; the row is gone."""
    ids = await send(api, "keep", "drop")
    response = await api.delete(f"/notifications/{ids[1]}", headers=api.headers)
    assert response.status == 204
    assert await response.read() == b""
    assert await visible_ids(api) == [ids[0]]


# -- Delete Multiple Notifications -------------------------------------------------------------
async def test_delete_multiple_notifications(api: Any) -> None:
    """`DELETE /notifications [15, 251, 810]`: 204, empty body; those rows are gone."""
    ids = await send(api, "a", "b", "c", "d")
    response = await api.delete("/notifications", json=ids[:3], headers=api.headers)
    assert response.status == 204
    assert await response.read() == b""
    assert await visible_ids(api) == [ids[3]]


async def delivered(fake: Any, count: int) -> None:
    for _ in range(100):
        if len(fake.notifications) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"monday received {len(fake.notifications)} of {count} notifications")
