"""Contract §12 `send_at`: validation, written `scheduled`, not sent early, sent once when due
(also after a restart and with two instances on one database), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import FakeMondayServer
from tests.notifications.helpers import MEMBER, notification, row_count
from tests.scheduling.helpers import MovingClock, server, wait_for, worker_pass


async def test_scheduled_row_waits_then_goes_out_once(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            response = await client.post(
                "/notifications",
                json=notification(message="later", send_at=now.iso(hours=1)),
                headers={"Authorization": mint(user=MEMBER)},
            )
            assert response.status == 200, await response.text()
            data = (await response.json())["data"]
            assert data["delivery_status"] == "scheduled"
            assert data["send_at"] == "2026-12-01T13:00:00.000000Z"
            assert data["urgent"] is False and data["digest_id"] is None

            now.advance(minutes=59)
            await worker_pass(client)
            assert (await wait_for(client, data["id"], "scheduled"))["attempts"] == 0
            assert fake_monday.fake.bell(MEMBER) == []

            now.advance(minutes=1, seconds=1)
            sent = await wait_for(client, data["id"], "sent")
            await worker_pass(client)
            assert sent["attempts"] == 1
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["later"]


async def test_send_at_rules(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    auth = {"Authorization": mint(user=MEMBER)}
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            for bad in (
                "2026-12-01T13:00:00",  # no offset
                now.iso(days=90, seconds=1),
                now.iso(minutes=-5, seconds=-1),
                "tomorrow",
                "2026-12-02",
            ):
                response = await client.post(
                    "/notifications", json=notification(send_at=bad), headers=auth
                )
                assert response.status == 400, bad
                error = (await response.json())["errors"][0]
                assert error["extensions"]["code"] == "INVALID_PAYLOAD"
                assert "send_at" in error["message"], error
                # "only a date" is said of a date alone, never of text that is no date.
                assert ("only a date" in error["message"]) == (bad == "2026-12-02"), error
            # One bad row refuses the whole batch: nothing is written.
            response = await client.post(
                "/notifications",
                json=[notification(send_at=now.iso(hours=1)), notification(send_at="x")],
                headers=auth,
            )
            assert response.status == 400
            assert "[1].send_at" in (await response.json())["errors"][0]["message"]
            assert await row_count(client) == 0

            # Within the last five minutes: sent at once. 90 days ahead exactly: accepted.
            response = await client.post(
                "/notifications",
                json=[
                    notification(message="just missed", send_at=now.iso(minutes=-4)),
                    notification(message="far", send_at=now.iso(days=90)),
                ],
                headers=auth,
            )
            assert response.status == 200, await response.text()
            late, far = (await response.json())["data"]
            assert late["delivery_status"] == "sent"
            assert far["delivery_status"] == "scheduled"
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["just missed"]


async def test_graphql_create_takes_send_at_and_urgent(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            document = (
                'mutation ($at: String) { create_notifications_item(data: {recipient: "12",'
                ' message: "gql later", collection: "Project", item: "5550001", send_at: $at,'
                " urgent: true}) { id delivery_status send_at urgent } }"
            )
            response = await client.post(
                "/graphql/system",
                json={"query": document, "variables": {"at": now.iso(hours=2)}},
                headers={"Authorization": mint(user=MEMBER)},
            )
            body = await response.json()
            created = body["data"]["create_notifications_item"]
            assert created["delivery_status"] == "scheduled"
            assert created["urgent"] is True
            assert created["send_at"] == "2026-12-01T14:00:00.000000Z"
            response = await client.post(
                "/graphql/system",
                json={"query": document, "variables": {"at": "2026-12-01T14:00:00"}},
                headers={"Authorization": mint(user=MEMBER)},
            )
            body = await response.json()
            assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
            assert "send_at" in body["errors"][0]["message"]


async def test_sent_once_after_restart_and_with_two_instances(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    auth = {"Authorization": mint(user=MEMBER)}
    with clock.frozen(now):
        # Written by one server, which then stops: the schedule lives in the database.
        async with server(tmp_path / "a", database_url, fake_monday) as first:
            response = await first.post(
                "/notifications",
                json=[
                    notification(message=f"batch {i}", send_at=now.iso(minutes=30))
                    for i in range(40)
                ],
                headers=auth,
            )
            assert response.status == 200, await response.text()
            ids = [item["id"] for item in (await response.json())["data"]]
        # Two fresh instances on the same database, both polling when the rows fall due.
        async with (
            server(tmp_path / "b", database_url, fake_monday, setup=False) as second,
            server(tmp_path / "c", database_url, fake_monday, setup=False) as third,
        ):
            now.advance(minutes=31)
            for row_id in ids:
                await wait_for(second if row_id % 2 else third, row_id, "sent")
            await worker_pass(second)
            await worker_pass(third)
    texts = Counter(n.text for n in fake_monday.fake.bell(MEMBER))
    assert texts == Counter({f"batch {i}": 1 for i in range(40)})
