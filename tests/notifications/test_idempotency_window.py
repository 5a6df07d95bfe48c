"""Contract §6: an Idempotency-Key replays for 24 hours, and only for 24 hours."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from server.appkeys import ENGINE
from server.clock import utcnow
from server.storage.tables import idempotency_keys
from tests.notifications.helpers import MEMBER, connect, install, notification


async def age_keys(client: Any, hours: float) -> None:
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(
            update(idempotency_keys).values(created_at=utcnow() - timedelta(hours=hours))
        )


async def test_a_key_replays_within_24_hours_and_sends_again_after(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    headers = {"Authorization": mint(user=MEMBER), "Idempotency-Key": "daily-digest"}

    first = await monday_client.post("/notifications", json=notification(), headers=headers)
    first_id = (await first.json())["data"]["id"]

    await age_keys(monday_client, hours=23.5)
    replay = await monday_client.post("/notifications", json=notification(), headers=headers)
    assert (await replay.json())["data"]["id"] == first_id
    assert len(fake_monday.fake.requests_to("/v2")) == 1

    await age_keys(monday_client, hours=24.5)
    fresh = await monday_client.post("/notifications", json=notification(), headers=headers)
    assert fresh.status == 200
    assert (await fresh.json())["data"]["id"] != first_id
    assert "Idempotent-Replayed" not in fresh.headers
    assert len(fake_monday.fake.requests_to("/v2")) == 2


async def test_keys_are_per_user(monday_client: Any, fake_monday: Any, mint: Any) -> None:
    """Another user's identical key is not a replay of someone else's request."""
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    await connect(monday_client, fake_monday.fake, user="13", kind="oauth")
    for user in (MEMBER, "13"):
        response = await monday_client.post(
            "/notifications",
            json=notification(),
            headers={"Authorization": mint(user=user), "Idempotency-Key": "same-key"},
        )
        assert (await response.json())["data"]["sender"] == user
    assert len(fake_monday.fake.requests_to("/v2")) == 2
