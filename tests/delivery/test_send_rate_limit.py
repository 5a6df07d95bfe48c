"""The per-user send limit shapes, it does not drop (contract §11): rows over the rate are
accepted and paced (`queued`, due one per 60/rate seconds); only beyond the user's backlog is a
request refused whole with 429 REQUESTS_EXCEEDED and Retry-After, and nothing is written."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.appkeys import ENGINE
from server.clock import frozen, utcnow
from server.notifications.send_limit import SendRateLimiter
from server.storage.tables import notifications
from tests.conftest import ACCOUNT, FakeMondayServer
from tests.delivery.helpers import server_on
from tests.notifications.helpers import MEMBER, notification
from tests.pg import fresh_pg_database

t = notifications.c


async def count_rows(client: Any) -> int:
    async with client.app[ENGINE].connect() as connection:
        return int((await connection.execute(select(func.count(t.id)))).scalar_one())


def aware(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def queued_due(client: Any) -> list[datetime]:
    """`next_attempt_at` of the rows left `queued`, in id order."""
    async with client.app[ENGINE].connect() as connection:
        result = await connection.execute(
            select(t.next_attempt_at).where(t.delivery_status == "queued").order_by(t.id)
        )
        return [aware(value) for value in result.scalars().all()]


async def test_rows_over_the_rate_are_accepted_and_paced(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    settings = {"database_url": database_url, "send_rate_per_minute": 6}
    async with server_on(tmp_path, fake_monday, **settings) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        batch = [notification(message=f"n{i}") for i in range(5)]
        assert (await client.post("/notifications", json=batch, headers=headers)).status == 200

        # Three more rows with one token left: all accepted, one sent now, two paced.
        before = utcnow()
        response = await client.post("/notifications", json=batch[:3], headers=headers)
        assert response.status == 200
        statuses = [row["delivery_status"] for row in (await response.json())["data"]]
        assert statuses == ["sent", "queued", "queued"]
        due = await queued_due(client)
        # One row per 10 s at 6/min: the paced rows are 10 s apart, the first within 10 s.
        assert before < due[0] <= before + timedelta(seconds=10)
        assert due[1] - due[0] == timedelta(seconds=10)
        assert await count_rows(client) == 8
    assert len(fake_monday.fake.bell(MEMBER)) == 6


async def test_beyond_the_backlog_the_request_is_refused_whole(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """On PostgreSQL the take and the backlog's count are made in the insert's transaction:
    the 429 rolls the take back with it (what still fits is accepted afterwards)."""
    settings = {
        "database_url": database_url,
        "send_rate_per_minute": 60,
        "send_backlog_per_user": 100,
    }
    async with server_on(tmp_path, fake_monday, **settings) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        batch = [notification(message=f"n{i}") for i in range(100)]
        first = await client.post("/notifications", json=batch, headers=headers)
        assert first.status == 200  # 60 sent now, 40 paced
        assert len(await queued_due(client)) == 40

        # 40 waiting + 70 more > 100: refused whole, nothing written.
        refused = await client.post("/notifications", json=batch[:70], headers=headers)
        assert refused.status == 429
        body = await refused.json()
        assert body["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
        # 10 rows too many drain in 10 s at 1 per second.
        assert 9 <= int(refused.headers["Retry-After"]) <= 10
        assert await count_rows(client) == 100

        # monday's own route answers the same 429 with Retry-After, in monday's shape.
        fields = " ".join(
            f'n{i}: create_notification(user_id: {MEMBER}, target_id: 1, text: "v{i}",'
            " target_type: Project) { id }"
            for i in range(70)
        )
        v2 = await client.post("/v2", json={"query": f"mutation {{ {fields} }}"}, headers=headers)
        assert v2.status == 429
        assert int(v2.headers["Retry-After"]) >= 1
        assert (await v2.json())["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
        assert await count_rows(client) == 100

        # What still fits under the backlog is accepted (and paced).
        fits = await client.post("/notifications", json=batch[:60], headers=headers)
        assert fits.status == 200
        assert await count_rows(client) == 160
        assert len(await queued_due(client)) == 100


async def test_a_refused_idempotency_key_can_be_used_after_waiting(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    settings = {"database_url": database_url, "send_rate_per_minute": 1, "send_backlog_per_user": 0}
    async with server_on(tmp_path, fake_monday, **settings) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        first = await client.post("/notifications", json=notification(), headers=headers)
        assert first.status == 200
        keyed = {**headers, "Idempotency-Key": "k-1"}
        body = notification(message="keyed")
        refused = await client.post("/notifications", json=body, headers=keyed)
        assert refused.status == 429  # no backlog allowed: over the rate is refused

        # A minute later (the product clock moved on), the same key sends: the 429 was
        # not kept as the key's answer.
        later = utcnow() + timedelta(seconds=61)
        with frozen(later):
            again = await client.post("/notifications", json=body, headers=keyed)
        assert again.status == 200
        assert again.headers.get("Idempotent-Replayed") is None
    assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["Build finished", "keyed"]


def test_the_bucket_paces_what_it_cannot_cover() -> None:
    now = [1_000.0]
    limiter = SendRateLimiter(60, clock=lambda: now[0])
    assert limiter.reserve("1", "2", 60).paced == 0
    pacing = limiter.reserve("1", "2", 3)
    assert pacing.now == 0
    start = datetime.fromtimestamp(1_000.0, UTC)
    assert pacing.due == tuple(start + timedelta(seconds=k) for k in (1, 2, 3))
    # The debt carries over: the next row is due after the three already promised.
    assert limiter.reserve("1", "2", 1).due == (start + timedelta(seconds=4),)
    now[0] += 30.0  # half a minute pays the debt of 4 and earns 26 more
    pacing = limiter.reserve("1", "2", 30)
    assert (pacing.now, pacing.paced) == (26, 4)
    # A refund gives the tokens back.
    limiter.refund("1", "2", 30)
    assert limiter.reserve("1", "2", 26).paced == 0


def test_the_backlog_bound_and_its_retry_after() -> None:
    limiter = SendRateLimiter(60, backlog=100, clock=lambda: 0.0)
    pacing = limiter.reserve("1", "2", 120)
    assert (pacing.now, pacing.paced) == (60, 60)
    assert limiter.beyond_backlog(40, pacing) is None
    refusal = limiter.beyond_backlog(45, pacing)
    assert refusal is not None and refusal.status == 429
    assert refusal.headers["Retry-After"] == "5"
    too_big = limiter.beyond_backlog(0, limiter.reserve("1", "3", 200))
    assert too_big is not None and "smaller requests" in too_big.message


def test_zero_turns_the_limit_off() -> None:
    limiter = SendRateLimiter(0)
    for _ in range(100):
        assert limiter.reserve("1", "2", 500).paced == 0


@pytest.mark.parametrize("rows", [0, 1])
def test_no_pacing_within_the_rate(rows: int) -> None:
    assert SendRateLimiter(600).reserve("1", "2", rows).paced == 0


async def sent_count(client: Any) -> int:
    async with client.app[ENGINE].connect() as connection:
        statement = select(func.count(t.id)).where(t.delivery_status == "sent")
        return int((await connection.execute(statement)).scalar_one())


async def test_a_fan_out_of_1000_recipients_is_accepted_whole_and_all_sent(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    recipients = [str(2000 + i) for i in range(1000)]
    for user in recipients:
        fake.add_user(user, ACCOUNT, f"User {user}", f"u{user}@example.com")
    settings = {"database_url": database_url, "send_rate_per_minute": 600}
    async with server_on(tmp_path, fake_monday, **settings) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        statuses: list[str] = []
        for start in (0, 500):  # at most 500 per request
            batch = [notification(recipient=r) for r in recipients[start : start + 500]]
            response = await client.post("/notifications", json=batch, headers=headers)
            assert response.status == 200, await response.text()
            statuses += [row["delivery_status"] for row in (await response.json())["data"]]
        # All accepted. A minute's worth (600) went at once; the other 400 wait, one per
        # 0.1 s (the first few may already be due and taken by the worker by now).
        assert len(statuses) == 1000
        assert set(statuses) <= {"sent", "queued", "sending"}
        assert statuses[:600] == ["sent"] * 600
        due = await queued_due(client)
        assert len(due) >= 300
        gaps = {round((b - a).total_seconds(), 3) for a, b in pairwise(due)}
        assert gaps == {0.1}

        # Once the product clock has moved past the last due moment, the worker sends them.
        later = due[-1] - utcnow() + timedelta(seconds=1)
        with frozen(lambda: datetime.now(UTC) + later):
            deadline = asyncio.get_running_loop().time() + 60
            while (sent := await sent_count(client)) < 1000:
                assert asyncio.get_running_loop().time() < deadline, f"{sent} of 1000 sent"
                await asyncio.sleep(0.05)
    # Each recipient's bell has exactly one notification: accepted whole, sent once.
    assert sorted(n.recipient_user_id for n in fake.notifications) == recipients


async def test_a_request_the_sender_decision_refuses_takes_nothing_from_the_rate(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    settings = {"database_url": database_url, "send_rate_per_minute": 6}
    async with server_on(tmp_path, fake_monday, **settings) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        refused = [notification(message=f"r{i}", send_as="installer") for i in range(6)]
        answer = await client.post("/notifications", json=refused, headers=headers)
        assert answer.status in (403, 409), await answer.text()
        # The refused six were not counted: six rows still go at once.
        batch = [notification(message=f"n{i}") for i in range(6)]
        response = await client.post("/notifications", json=batch, headers=headers)
        statuses = [row["delivery_status"] for row in (await response.json())["data"]]
        assert statuses == ["sent"] * 6


@pytest.mark.postgres
async def test_the_send_rate_holds_across_instances(
    pg_url: str, tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """Contract §11: two instances on one PostgreSQL share a user's bucket."""
    async with fresh_pg_database(pg_url) as url:
        settings = {"database_url": url, "send_rate_per_minute": 60}
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        async with (
            server_on(tmp_path / "a", fake_monday, **settings) as first,
            server_on(tmp_path / "b", fake_monday, **settings) as second,
        ):
            headers = {"Authorization": mint(user=MEMBER)}
            batch = [notification(message=f"n{i}") for i in range(60)]
            response = await first.post("/notifications", json=batch, headers=headers)
            assert {row["delivery_status"] for row in (await response.json())["data"]} == {"sent"}
            # The minute's worth is spent on the first instance: the second paces.
            response = await second.post("/notifications", json=batch[:5], headers=headers)
            statuses = [row["delivery_status"] for row in (await response.json())["data"]]
            assert statuses == ["queued"] * 5
