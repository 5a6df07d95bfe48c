"""Contract §12 quiet hours: PATCH /installation (admins, validation), rows due inside them
wait in the recipient's own time zone (as the fake monday reports it) until they end, across
two zones and a daylight-saving change; `urgent` goes out at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from server import clock
from server.notifications.schedule_rules import parse_quiet_hours, quiet_until
from tests.conftest import INSTALLER, FakeMondayServer
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import Client, MovingClock, server, wait_for, wait_row

NIGHT = {"start": "22:00", "end": "07:00"}


async def _settings(client: Client, mint: Any, body: Any, *, admin: bool = True) -> Any:
    response = await client.patch(
        "/installation", json=body, headers={"Authorization": mint(user=INSTALLER, admin=admin)}
    )
    return response.status, await response.json()


async def _send(client: Client, mint: Any, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications",
        json=notification(**fields),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def test_patch_installation_settings(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with server(tmp_path, database_url, fake_monday) as client:
        status, body = await _settings(client, mint, {"quiet_hours": NIGHT})
        assert status == 200, body
        assert body["data"]["quiet_hours"] == NIGHT
        assert body["data"]["sender_policy"] == "app_then_installer"  # untouched
        status, body = await _settings(client, mint, {"digest_window_seconds": 600})
        assert body["data"]["quiet_hours"] == NIGHT and body["data"]["digest_window_seconds"] == 600
        for bad in (
            {"quiet_hours": {"start": "22:00", "end": "22:00"}},
            {"quiet_hours": {"start": "24:00", "end": "06:00"}},
            {"quiet_hours": {"start": "7:00", "end": "06:00"}},
            {"quiet_hours": {"start": "22:00"}},
            {"digest_window_seconds": 3601},
            {"digest_window_seconds": -1},
            {"digest_window_seconds": "60"},
            {"timezone": "UTC"},
        ):
            status, body = await _settings(client, mint, bad)
            assert status == 400, bad
            assert body["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"
        status, _ = await _settings(client, mint, {"quiet_hours": None}, admin=False)
        assert status == 403
        status, body = await _settings(client, mint, {"quiet_hours": None})
        assert body["data"]["quiet_hours"] is None
        assert body["data"]["digest_window_seconds"] == 600


async def test_quiet_hours_in_each_recipients_zone_and_urgent(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    # 13:30 UTC: 22:30 in Tokyo (quiet), 08:30 in New York (not).
    now = MovingClock(datetime(2026, 12, 1, 13, 30, tzinfo=UTC))
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            fake.set_time_zone(MEMBER, "Asia/Tokyo")
            fake.set_time_zone(INSTALLER, "America/New_York")
            await _settings(client, mint, {"quiet_hours": NIGHT})

            tokyo = await _send(client, mint, message="tokyo", recipient=MEMBER)
            new_york = await _send(client, mint, message="new york", recipient=INSTALLER)
            urgent = await _send(client, mint, message="urgent", recipient=MEMBER, urgent=True)
            later = await _send(
                client, mint, message="later", recipient=MEMBER, send_at=now.iso(minutes=10)
            )
            assert tokyo["delivery_status"] == "scheduled"
            assert tokyo["deferred_reason"] == "quiet_hours"
            # 07:00 in Tokyo is 22:00 UTC.
            assert tokyo["next_attempt_at"] == "2026-12-01T22:00:00.000000Z"
            assert new_york["delivery_status"] == "sent"
            assert urgent["delivery_status"] == "sent" and urgent["deferred_reason"] is None

            now.advance(minutes=11)  # `later` falls due inside Tokyo's night too
            held = await wait_row(
                client, later["id"], lambda r: r["deferred_reason"] == "quiet_hours"
            )
            assert held["delivery_status"] == "scheduled"
            assert held["send_at"].isoformat() == "2026-12-01T13:40:00+00:00"  # kept as asked
            assert held["next_attempt_at"].isoformat() == "2026-12-01T22:00:00+00:00"
            assert sorted(n.text for n in fake.bell(MEMBER)) == ["urgent"]

            now.now = datetime(2026, 12, 1, 22, 0, 1, tzinfo=UTC)
            await wait_for(client, tokyo["id"], "sent")
            await wait_for(client, later["id"], "sent")
            assert sorted(n.text for n in fake.bell(MEMBER)) == ["later", "tokyo", "urgent"]
            assert [n.text for n in fake.bell(INSTALLER)] == ["new york"]


async def test_quiet_hours_across_a_daylight_saving_change(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    # New York springs forward on 2027-03-14 at 02:00 EST: 07:00 that morning is 11:00 UTC,
    # not 12:00 as the evening before's offset would say.
    now = MovingClock(datetime(2027, 3, 14, 4, 0, tzinfo=UTC))  # 23:00 EST on the 13th
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            fake_monday.fake.set_time_zone(INSTALLER, "America/New_York")
            await _settings(client, mint, {"quiet_hours": NIGHT})
            held = await _send(client, mint, message="dst", recipient=INSTALLER)
            assert held["next_attempt_at"] == "2027-03-14T11:00:00.000000Z"
            now.now = datetime(2027, 3, 14, 11, 0, tzinfo=UTC)
            await wait_for(client, held["id"], "sent")


async def test_unknown_zone_is_utc(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock(datetime(2026, 12, 1, 23, 0, tzinfo=UTC))
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            await _settings(client, mint, {"quiet_hours": NIGHT})  # MEMBER has no zone
            held = await _send(client, mint, message="utc")
            assert held["next_attempt_at"] == "2026-12-02T07:00:00.000000Z"


def test_an_end_inside_the_spring_forward_gap_is_the_end_of_the_gap() -> None:
    quiet = parse_quiet_hours({"start": "01:00", "end": "02:30"})
    new_york = ZoneInfo("America/New_York")
    # 01:30 EST; 02:30 does not exist that night: the quiet hours end at 03:00 EDT.
    end = quiet_until(quiet, datetime(2027, 3, 14, 6, 30, tzinfo=UTC), new_york)
    assert end == datetime(2027, 3, 14, 7, 0, tzinfo=UTC)
    # Fall back: 01:30 happens twice; quiet hours end at the first 02:30 after now.
    end = quiet_until(quiet, datetime(2027, 11, 7, 5, 30, tzinfo=UTC), new_york)  # 01:30 EDT
    assert end is not None and end.astimezone(new_york).hour == 2
    assert quiet_until(quiet, datetime(2027, 3, 14, 12, 0, tzinfo=UTC), new_york) is None


async def test_once_the_zone_is_known_the_insert_decides_the_same_way(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """The second send to a recipient finds their zone in memory, so the insert itself
    decides (server/delivery/gate.py `clear_due`): it must hold and let through exactly as
    the gate does when it asks monday."""
    fake = fake_monday.fake
    now = MovingClock(datetime(2026, 12, 1, 13, 30, tzinfo=UTC))  # Tokyo 22:30, NY 08:30
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            fake.set_time_zone(MEMBER, "Asia/Tokyo")
            fake.set_time_zone(INSTALLER, "America/New_York")
            await _settings(client, mint, {"quiet_hours": NIGHT})
            for round_ in ("first", "second"):
                tokyo = await _send(client, mint, message=f"tokyo {round_}", recipient=MEMBER)
                assert tokyo["delivery_status"] == "scheduled", round_
                assert tokyo["next_attempt_at"] == "2026-12-01T22:00:00.000000Z"
                new_york = await _send(client, mint, message=f"ny {round_}", recipient=INSTALLER)
                assert new_york["delivery_status"] == "sent", round_
            # Quiet hours begin in New York (22:00 there is 03:00 UTC): the known zone holds it.
            now.now = datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
            held = await _send(client, mint, message="ny night", recipient=INSTALLER)
            assert held["delivery_status"] == "scheduled"
            assert held["next_attempt_at"] == "2026-12-02T12:00:00.000000Z"  # 07:00 in NY
            urgent = await _send(
                client, mint, message="ny urgent", recipient=INSTALLER, urgent=True
            )
            assert urgent["delivery_status"] == "sent"
            assert sorted(n.text for n in fake.bell(INSTALLER)) == [
                "ny first",
                "ny second",
                "ny urgent",
            ]
