"""An automation's notification goes out with its short-lived token only (contract §10),
which lives 5 minutes: quiet hours and digest windows do not hold it (it would fail when
released, after its action was answered a success), and it can't be rescheduled past its
token's life."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server import clock
from server.token_mint import mint_integration
from tests.conftest import ACCOUNT, INSTALLER, SIGNING_SECRET, FakeMondayServer
from tests.notifications.helpers import MEMBER
from tests.scheduling.helpers import Client, MovingClock, row, server

ACTION = "/monday/actions/notify"
SHORT_LIVED = "short-lived-token-of-the-recipe"


def run(text: str, uuid: str, **inputs: Any) -> dict[str, Any]:
    fields = {"userId": int(MEMBER), "itemId": 5001, "text": text, **inputs}
    return {"payload": {"inboundFieldValues": fields}, "runtimeMetadata": {"actionUuid": uuid}}


async def run_action(client: Client, body: dict[str, Any]) -> Any:
    token = mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience="http://127.0.0.1:8080" + ACTION,
        short_lived_token=SHORT_LIVED,
        lifetime=300,
    )
    response = await client.post(ACTION, json=body, headers={"Authorization": token})
    assert response.status == 200, await response.text()
    return await response.json()


async def newest_id(client: Client, mint: Any) -> int:
    response = await client.get(
        "/notifications?sort=-id&limit=1", headers={"Authorization": mint(user=MEMBER)}
    )
    return int((await response.json())["data"][0]["id"])


async def test_quiet_hours_and_digests_do_not_hold_an_automation(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    now = MovingClock(datetime(2026, 12, 1, 13, 30, tzinfo=UTC))  # 22:30 in Tokyo
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            fake.set_time_zone(MEMBER, "Asia/Tokyo")
            fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
            settings = {
                "quiet_hours": {"start": "22:00", "end": "07:00"},
                "digest_window_seconds": 600,
            }
            response = await client.patch(
                "/installation",
                json=settings,
                headers={"Authorization": mint(user=INSTALLER, admin=True)},
            )
            assert response.status == 200, await response.text()

            assert await run_action(client, run("Deal closed", "run-1")) == {}
            sent = await row(client, await newest_id(client, mint))
            assert sent["delivery_status"] == "sent", sent
            assert sent["deferred_reason"] is None and sent["digest_id"] is None
            assert sent["credential_owner"] == "short_lived"
            assert [n.text for n in fake.bell(MEMBER)] == ["Deal closed"]


async def test_an_automation_is_not_rescheduled_past_its_token(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock(datetime(2026, 12, 1, 9, 0, tzinfo=UTC))
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            fake_monday.fake.add_token(SHORT_LIVED, MEMBER, ACCOUNT, "short_lived")
            body = run("Later", "run-2", sendAt=now.iso(minutes=3))
            assert await run_action(client, body) == {}
            row_id = await newest_id(client, mint)
            assert (await row(client, row_id))["delivery_status"] == "scheduled"
            admin = {"Authorization": mint(user=INSTALLER, admin=True)}

            moved = await client.patch(
                f"/notifications/{row_id}", json={"send_at": now.iso(hours=1)}, headers=admin
            )
            assert moved.status == 403, await moved.text()
            assert (await row(client, row_id))["send_at"].isoformat() == "2026-12-01T09:03:00+00:00"

            moved = await client.patch(
                f"/notifications/{row_id}", json={"send_at": now.iso(minutes=4)}, headers=admin
            )
            assert moved.status == 200, await moved.text()
            assert (await moved.json())["data"]["send_at"] == "2026-12-01T09:04:00.000000Z"
