"""Contract §12 mutes: the caller's own, for everything or one target; a muted row ends
`suppressed` when it becomes due (scheduled ones included) and never reaches monday."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import FakeMondayServer
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import MovingClock, server, wait_for, worker_pass

TARGET = {"collection": "Project", "item": "5001"}


async def test_mute_routes_are_the_callers_own(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with server(tmp_path, database_url, fake_monday) as client:
        auth = {"Authorization": mint(user=MEMBER)}
        first = await client.put("/preferences/mutes", json={"target": TARGET}, headers=auth)
        assert first.status == 200, await first.text()
        again = await client.put("/preferences/mutes", json={"target": TARGET}, headers=auth)
        assert (await again.json())["data"] == (await first.json())["data"]  # idempotent
        everything = await client.put("/preferences/mutes", json={"target": None}, headers=auth)
        assert (await everything.json())["data"]["target"] is None

        listed = await (await client.get("/preferences/mutes", headers=auth)).json()
        assert [m["target"] for m in listed["data"]] == [TARGET, None]
        other = await (
            await client.get("/preferences/mutes", headers={"Authorization": mint(user="13")})
        ).json()
        assert other["data"] == []

        for body in (
            {"target": None, "user_id": "13"},
            {"target": TARGET, "recipient": "13"},
            {"target": {"collection": "Board", "item": "1"}},
            {},
        ):
            response = await client.put("/preferences/mutes", json=body, headers=auth)
            assert response.status == 400, body
            assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"

        gone = await client.delete("/preferences/mutes", json={"target": None}, headers=auth)
        assert gone.status == 204
        listed = await (await client.get("/preferences/mutes", headers=auth)).json()
        assert [m["target"] for m in listed["data"]] == [TARGET]


async def test_muted_rows_are_suppressed_never_sent(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    sender = {"Authorization": mint(user=MEMBER)}
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            response = await client.post(
                "/notifications",
                json=[
                    notification(message="muted target", item="5001", send_at=now.iso(hours=1)),
                    notification(message="other target", item="5002", send_at=now.iso(hours=1)),
                ],
                headers=sender,
            )
            muted_id, other_id = [r["id"] for r in (await response.json())["data"]]
            # The recipient mutes one target after these were scheduled.
            await client.put(
                "/preferences/mutes",
                json={"target": TARGET},
                headers={"Authorization": mint(user=MEMBER)},
            )
            now.advance(hours=1, seconds=1)
            assert (await wait_for(client, muted_id, "suppressed"))["attempts"] == 0
            await wait_for(client, other_id, "sent")
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["other target"]

            # Everything muted: even a notification sent now is suppressed.
            await client.put(
                "/preferences/mutes",
                json={"target": None},
                headers={"Authorization": mint(user=MEMBER)},
            )
            response = await client.post(
                "/notifications", json=notification(message="now", item="5003"), headers=sender
            )
            now_id = (await response.json())["data"]["id"]
            assert (await wait_for(client, now_id, "suppressed"))["sent_at"] is None
            await worker_pass(client)
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["other target"]
