"""Contract §12's fields in the Directus query language (REST and GraphQL): filter, sort and
select `send_at`, `urgent`, `digest_id`, `deferred_reason` and the new statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server import clock
from tests.conftest import FakeMondayServer
from tests.notifications.helpers import MEMBER, notification
from tests.scheduling.helpers import MovingClock, server


async def test_filter_sort_select_new_fields(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    now = MovingClock()
    auth = {"Authorization": mint(user=MEMBER)}
    with clock.frozen(now):
        async with server(tmp_path, database_url, fake_monday) as client:
            response = await client.post(
                "/notifications",
                json=[
                    notification(message="now"),
                    notification(message="in 2h", send_at=now.iso(hours=2), urgent=True),
                    notification(message="in 1h", send_at=now.iso(hours=1)),
                ],
                headers=auth,
            )
            assert response.status == 200, await response.text()

            async def read(**params: str) -> list[dict[str, Any]]:
                answer = await client.get("/notifications", params=params, headers=auth)
                assert answer.status == 200, await answer.text()
                data: list[dict[str, Any]] = (await answer.json())["data"]
                return data

            rows = await read(
                filter=json.dumps({"delivery_status": {"_eq": "scheduled"}}),
                sort="send_at",
                fields="message,send_at,urgent,digest_id,deferred_reason",
            )
            assert rows == [
                {
                    "message": "in 1h",
                    "send_at": "2026-12-01T13:00:00.000000Z",
                    "urgent": False,
                    "digest_id": None,
                    "deferred_reason": None,
                },
                {
                    "message": "in 2h",
                    "send_at": "2026-12-01T14:00:00.000000Z",
                    "urgent": True,
                    "digest_id": None,
                    "deferred_reason": None,
                },
            ]
            urgent = await read(filter=json.dumps({"urgent": {"_eq": True}}), fields="message")
            assert urgent == [{"message": "in 2h"}]
            unscheduled = await read(filter=json.dumps({"send_at": {"_null": True}}))
            assert [r["message"] for r in unscheduled] == ["now"]
            later = await read(
                filter=json.dumps({"send_at": {"_gt": now.iso(minutes=90)}}), fields="message"
            )
            assert later == [{"message": "in 2h"}]
            bad = await client.get(
                "/notifications",
                params={"filter": json.dumps({"urgent": {"_gt": True}})},
                headers=auth,
            )
            assert bad.status == 400

            document = (
                "{ notifications(filter: {urgent: {_eq: false}, deferred_reason: {_null: true}},"
                ' sort: ["-send_at"]) { message urgent send_at } }'
            )
            answer = await client.post("/graphql/system", json={"query": document}, headers=auth)
            body = await answer.json()
            # (Where nulls sort differs by database, so only the members are compared.)
            assert sorted(r["message"] for r in body["data"]["notifications"]) == ["in 1h", "now"]
            assert {r["urgent"] for r in body["data"]["notifications"]} == {False}
