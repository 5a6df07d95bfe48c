"""A notification id is given once: deleting the newest rows does not hand their ids to the
next sends (SQLite reserved max(id) + 1; storage/tables.py `notification_id_floor`), so a
retried DELETE by id, or an id a client kept, never reaches another notification."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import INSTALLER
from tests.notifications.helpers import MEMBER, connect, install, notification


async def send(client: TestClient[Any, Any], headers: dict[str, str], count: int) -> list[int]:
    body = [notification(message=f"Build {i} finished") for i in range(count)]
    response = await client.post("/notifications", json=body, headers=headers)
    assert response.status == 200, await response.text()
    return [row["id"] for row in (await response.json())["data"]]


async def test_ids_of_deleted_newest_rows_are_not_given_again(
    engine_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    client = engine_client
    await install(client)
    await connect(client, fake_monday.fake, user=INSTALLER, kind="api_key")
    headers = {"Authorization": mint(user=MEMBER)}
    first = await send(client, headers, 3)

    # The newest two, one by one, then the first in a query delete: the table is empty.
    for row_id in first[1:]:
        response = await client.delete(f"/notifications/{row_id}", headers=headers)
        assert response.status == 204, await response.text()
    response = await client.request("DELETE", "/notifications", json=[first[0]], headers=headers)
    assert response.status == 204, await response.text()

    again = await send(client, headers, 2)
    assert min(again) > max(first), (first, again)

    # A retried delete of a deleted id still finds nothing: the new rows are untouched.
    response = await client.delete(f"/notifications/{first[-1]}", headers=headers)
    assert response.status == 403, await response.text()  # as for any id out of reach
    listed = await client.get("/notifications", headers=headers)
    assert sorted(row["id"] for row in (await listed.json())["data"]) == sorted(again)
