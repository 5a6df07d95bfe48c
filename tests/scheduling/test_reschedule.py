"""Contract §12: while `scheduled`, the sender or an admin may move `send_at` or cancel; anyone
else, any other delivery_status, or a row no longer scheduled is 403 FORBIDDEN."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import INSTALLER, FakeMondayServer
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import Client, MovingClock, row, server, wait_for, worker_pass


async def _schedule(client: Client, mint: Any, now: MovingClock, **overrides: Any) -> int:
    response = await client.post(
        "/notifications",
        json=notification(send_at=now.iso(hours=1), **overrides),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert response.status == 200, await response.text()
    row_id: int = (await response.json())["data"]["id"]
    return row_id


async def _patch(client: Client, token: str, row_id: int, data: Any) -> tuple[int, Any]:
    response = await client.patch(
        f"/notifications/{row_id}", json=data, headers={"Authorization": token}
    )
    return response.status, await response.json()


async def test_sender_reschedules_and_cancels(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    sender = mint(user=MEMBER)
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            moved = await _schedule(client, mint, now, message="moved")
            cancelled = await _schedule(client, mint, now, message="cancelled")

            status, body = await _patch(client, sender, moved, {"send_at": now.iso(hours=3)})
            assert status == 200, body
            assert body["data"]["delivery_status"] == "scheduled"
            assert body["data"]["send_at"] == "2026-12-01T15:00:00.000000Z"
            assert body["data"]["next_attempt_at"] == "2026-12-01T15:00:00.000000Z"

            status, body = await _patch(client, sender, cancelled, {"delivery_status": "cancelled"})
            assert status == 200, body
            assert body["data"]["delivery_status"] == "cancelled"

            # The old time passes: nothing goes out.
            now.advance(hours=2)
            await worker_pass(client)
            assert (await row(client, moved))["delivery_status"] == "scheduled"
            assert fake_monday.fake.bell(MEMBER) == []
            # A cancelled row is no longer scheduled: it can't be moved back.
            status, body = await _patch(client, sender, cancelled, {"send_at": now.iso(hours=1)})
            assert status == 403
            assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"

            now.advance(hours=1, seconds=1)
            await wait_for(client, moved, "sent")
            await worker_pass(client)
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["moved"]
            assert (await row(client, cancelled))["delivery_status"] == "cancelled"
            # Sent: no longer the sender's to move.
            status, _ = await _patch(client, sender, moved, {"send_at": now.iso(hours=1)})
            assert status == 403


async def test_refusals(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            # MEMBER sends to the installer: the installer (recipient, not admin) can't change it.
            row_id = await _schedule(client, mint, now, recipient=INSTALLER)
            recipient = mint(user=INSTALLER)
            for data in ({"send_at": now.iso(hours=2)}, {"delivery_status": "cancelled"}):
                status, body = await _patch(client, recipient, row_id, data)
                assert status == 403, data
                assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
            sender = mint(user=MEMBER)
            for other in ("sent", "queued", "scheduled", "suppressed", "failed"):
                status, _ = await _patch(client, sender, row_id, {"delivery_status": other})
                assert status == 403, other
            status, body = await _patch(client, sender, row_id, {"send_at": "2026-12-01T18:00"})
            assert status == 400
            assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
            assert "send_at" in body["errors"][0]["message"]
            status, _ = await _patch(client, sender, row_id, {"send_at": now.iso(minutes=-6)})
            assert status == 400
            unchanged = await row(client, row_id)
            assert unchanged["delivery_status"] == "scheduled"
            assert unchanged["send_at"].isoformat() == "2026-12-01T13:00:00+00:00"

            # A batch with one row that is not scheduled changes nothing (403).
            sent = await client.post(
                "/notifications",
                json=notification(message="now"),
                headers={"Authorization": sender},
            )
            sent_id = (await sent.json())["data"]["id"]
            response = await client.patch(
                "/notifications",
                json={"keys": [row_id, sent_id], "data": {"delivery_status": "cancelled"}},
                headers={"Authorization": sender},
            )
            assert response.status == 403
            assert (await row(client, row_id))["delivery_status"] == "scheduled"

            # An admin who is neither sender nor recipient may cancel it.
            admin = mint(user="13", admin=True)
            status, body = await _patch(client, admin, row_id, {"delivery_status": "cancelled"})
            assert status == 200, body
            assert body["data"]["delivery_status"] == "cancelled"


async def test_send_at_in_the_last_minutes_releases_at_once(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            row_id = await _schedule(client, mint, now, message="sooner")
            status, body = await _patch(
                client, mint(user=MEMBER), row_id, {"send_at": now.iso(minutes=-1)}
            )
            assert status == 200, body
            assert body["data"]["delivery_status"] in ("queued", "sending", "sent")
            await wait_for(client, row_id, "sent")
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["sooner"]
