"""Aggregates over rows the send path wrote (not seeded ones): a row with no error counts as
no error, and a boolean's min/max is a boolean, over REST and GraphQL, on both engines."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import INSTALLER
from tests.notifications.helpers import connect, install, notification


async def sent(client: TestClient[Any, Any], token: str, **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications", json=notification(**body), headers={"Authorization": token}
    )
    assert response.status == 200, await response.text()
    row: dict[str, Any] = (await response.json())["data"]
    return row


async def test_count_of_last_error_and_max_of_urgent(
    engine_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    client = engine_client
    await install(client)
    await connect(client, fake_monday.fake, user=INSTALLER, kind="api_key")
    token = mint(user=INSTALLER, admin=True)
    assert (await sent(client, token, urgent=True))["delivery_status"] == "sent"
    assert (await sent(client, token))["delivery_status"] == "sent"
    fake_monday.fake.fail_next("invalid_user")
    failed = await sent(client, token, message="To nobody")
    assert failed["delivery_status"] == "failed" and failed["last_error"] is not None

    headers = {"Authorization": token}
    query = "aggregate[count]=last_error&aggregate[max]=urgent&aggregate[min]=urgent"
    response = await client.get(f"/notifications?{query}", headers=headers)
    assert response.status == 200, await response.text()
    assert (await response.json())["data"] == [
        {"count": {"last_error": 1}, "max": {"urgent": True}, "min": {"urgent": False}}
    ]
    errors = await client.get(
        "/notifications?aggregate[count]=*&filter[last_error][_nnull]=true", headers=headers
    )
    assert (await errors.json())["data"] == [{"count": 1}]

    document = "{ notifications_aggregated { count { last_error } max { urgent } min { urgent } } }"
    response = await client.post("/graphql/system", json={"query": document}, headers=headers)
    assert (await response.json()) == {
        "data": {
            "notifications_aggregated": [
                {
                    "count": {"last_error": 1},
                    "max": {"urgent": True},
                    "min": {"urgent": False},
                }
            ]
        }
    }
