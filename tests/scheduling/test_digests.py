"""Contract §12 digests: rows of one (recipient, target, sender, sent_as) due within the
account's window go to monday as ONE notification ("5 notifications: …", each quoted), every
row keeps its ledger entry and shares a digest_id; a window of one row is sent word for word;
`urgent` bypasses; rows released together at the end of quiet hours form one digest. All on
the fake monday, with a clock the test moves."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import INSTALLER, FakeMondayServer
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import Client, MovingClock, server, wait_for, wait_row


async def _settings(client: Client, mint: Any, body: Any) -> None:
    response = await client.patch(
        "/installation", json=body, headers={"Authorization": mint(user=INSTALLER, admin=True)}
    )
    assert response.status == 200, await response.text()


async def _send(client: Client, mint: Any, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications",
        json=notification(**fields),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


def _creates(fake: FakeMondayServer) -> list[Any]:
    """The requests that asked monday to create notifications."""
    return [r for r in fake.fake.requests if "create_notification" in str(r.body)]


async def test_five_rows_in_a_window_are_one_monday_notification(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            await _settings(client, mint, {"digest_window_seconds": 120})
            fake_monday.fake.reset()
            rows = []
            for n in range(5):
                rows.append(await _send(client, mint, message=f"build {n} finished"))
                now.advance(seconds=20)  # all inside the window opened by the first
            other = await _send(client, mint, message="other target", item="5550002")
            assert {r["delivery_status"] for r in rows} == {"scheduled"}
            digest_ids = {r["digest_id"] for r in rows}
            assert len(digest_ids) == 1 and None not in digest_ids
            assert other["digest_id"] not in digest_ids  # another key, another window
            assert _creates(fake_monday) == []  # nothing sent before the close

            now.advance(seconds=21)  # 120 s after the first row: the window closes
            sent = [await wait_for(client, r["id"], "sent") for r in rows]
            assert {r["digest_id"] for r in sent} == digest_ids  # each row keeps its entry
            bell = [n for n in fake_monday.fake.bell(MEMBER) if n.text != "other target"]
            assert len(bell) == 1
            text = bell[0].text
            assert text.startswith("5 notifications: ")
            for n in range(5):
                assert f"“build {n} finished”" in text
            assert len({r["monday_id"] for r in sent}) == 1

            now.advance(seconds=120)  # the other target's window of one: word for word
            single = await wait_for(client, other["id"], "sent")
            assert single["digest_id"] is None
            assert sorted(n.text for n in fake_monday.fake.bell(MEMBER)) == sorted(
                [text, "other target"]
            )
            assert len(_creates(fake_monday)) == 2


async def test_a_window_of_one_row_sends_it_word_for_word_and_urgent_bypasses(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            await _settings(client, mint, {"digest_window_seconds": 60})
            alone = await _send(client, mint, message="only one")
            urgent = await _send(client, mint, message="now!", urgent=True)
            assert alone["delivery_status"] == "scheduled" and alone["digest_id"]
            assert urgent["delivery_status"] == "sent" and urgent["digest_id"] is None
            assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["now!"]
            now.advance(seconds=61)
            sent = await wait_for(client, alone["id"], "sent")
            assert sent["digest_id"] is None
            assert sorted(n.text for n in fake_monday.fake.bell(MEMBER)) == ["now!", "only one"]


async def test_rows_released_at_the_end_of_quiet_hours_form_one_digest(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock(datetime(2026, 12, 1, 23, 0, tzinfo=UTC))  # MEMBER has no zone: UTC
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            await _settings(
                client,
                mint,
                {"quiet_hours": {"start": "22:00", "end": "07:00"}, "digest_window_seconds": 60},
            )
            rows = [await _send(client, mint, message=f"night {n}") for n in range(3)]
            assert {r["deferred_reason"] for r in rows} == {"quiet_hours"}
            now.now = datetime(2026, 12, 2, 7, 0, 1, tzinfo=UTC)
            # Released together at 07:00, they open one window; at its close, one digest.
            for r in rows:
                await wait_row(client, r["id"], lambda found: found["digest_id"] is not None)
            assert fake_monday.fake.bell(MEMBER) == []
            now.advance(seconds=61)
            sent = [await wait_for(client, r["id"], "sent") for r in rows]
            assert len({r["digest_id"] for r in sent}) == 1
            bell = fake_monday.fake.bell(MEMBER)
            assert len(bell) == 1 and bell[0].text.startswith("3 notifications: ")
