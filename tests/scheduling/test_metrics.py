"""Contract §12 on `GET /metrics` (scraped over HTTP): the queue gauge counts rows waiting
`scheduled`, and this process counts rows that became scheduled (by reason), cancelled and
suppressed. Counters are process-wide, so each check is a difference between two scrapes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import INSTALLER, FakeMondayServer
from tests.delivery.test_metrics import scrape, value
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import Client, MovingClock, server, wait_for, wait_row

P = "monday_notify_"


async def _send(client: Client, mint: Any, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications", json=notification(**fields), headers={"Authorization": mint(user=MEMBER)}
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def _ok(response: Any) -> None:
    assert response.status in (200, 204), await response.text()


async def test_scheduling_events_and_the_scheduled_queue_are_on_metrics(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()  # 12:00 UTC; the recipient has no zone: UTC
    member = {"Authorization": mint(user=MEMBER)}
    admin = {"Authorization": mint(user=INSTALLER, admin=True)}
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            before = await scrape(client)
            muted = await _send(client, mint, item="5001", send_at=now.iso(hours=1))
            moved = await _send(client, mint, item="5002", send_at=now.iso(hours=1))
            cancelled = await _send(client, mint, item="5003", send_at=now.iso(hours=1))
            await _ok(
                await client.patch(
                    f"/notifications/{moved['id']}",
                    json={"send_at": now.iso(hours=2)},
                    headers=member,
                )
            )
            await _ok(
                await client.patch(
                    f"/notifications/{cancelled['id']}",
                    json={"delivery_status": "cancelled"},
                    headers=member,
                )
            )
            waiting = await scrape(client)
            await _ok(
                await client.put(
                    "/preferences/mutes",
                    json={"target": {"collection": "Project", "item": "5001"}},
                    headers=member,
                )
            )
            now.advance(hours=1, seconds=1)
            await wait_for(client, muted["id"], "suppressed")

            # `moved` falls due at 14:00, inside quiet hours: held until 15:00.
            quiet = {"quiet_hours": {"start": "13:30", "end": "15:00"}}
            await _ok(await client.patch("/installation", json=quiet, headers=admin))
            now.advance(hours=1)
            await wait_row(client, moved["id"], lambda r: r["deferred_reason"] == "quiet_hours")

            # With a digest window, a row sent now waits in it.
            digest = {"quiet_hours": None, "digest_window_seconds": 600}
            await _ok(await client.patch("/installation", json=digest, headers=admin))
            windowed = await _send(client, mint, item="5004")
            assert windowed["delivery_status"] == "scheduled" and windowed["digest_id"]
            after = await scrape(client)

    def grew(found: dict[Any, float], name: str, **labels: str) -> float:
        return value(found, P + name, **labels) - value(before, P + name, **labels)

    # Three written scheduled, one cancelled: two wait (gauge read from the database).
    assert value(waiting, P + "queue_rows", delivery_status="scheduled") == 2
    assert grew(waiting, "notifications_scheduled_total", reason="send_at") == 3
    assert grew(waiting, "notifications_scheduled_total", reason="rescheduled") == 1
    assert grew(waiting, "notifications_cancelled_total") == 1
    assert grew(waiting, "notifications_suppressed_total") == 0

    assert grew(after, "notifications_suppressed_total") == 1
    assert grew(after, "notifications_scheduled_total", reason="quiet_hours") == 1
    assert grew(after, "notifications_scheduled_total", reason="digest") == 1
    assert grew(after, "notifications_cancelled_total") == 1
    # `moved` (quiet hours) and the digest row wait; the muted one is final.
    assert value(after, P + "queue_rows", delivery_status="scheduled") == 2
    assert fake_monday.fake.bell(MEMBER) == []


async def test_scheduling_counters_are_exposed_before_any_event(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer
) -> None:
    """A dashboard sees every series at once (at 0 in a fresh process), and the scheduled
    gauge reads 0 on an empty queue."""
    async with server(tmp_path, database_url, fake_monday, setup=False) as client:
        found = await scrape(client)
    for reason in ("send_at", "rescheduled", "quiet_hours", "digest"):
        assert (P + "notifications_scheduled_total", (("reason", reason),)) in found
    assert (P + "notifications_cancelled_total", ()) in found
    assert (P + "notifications_suppressed_total", ()) in found
    assert found[(P + "queue_rows", (("delivery_status", "scheduled"),))] == 0
