"""The per-user send rate limit: rows count, 429 REQUESTS_EXCEEDED with Retry-After."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from server.appkeys import ENGINE, SERVICES
from server.errors import ApiError
from server.notifications.send_limit import SendRateLimiter
from server.storage.tables import notifications
from tests.conftest import FakeMondayServer
from tests.delivery.helpers import server_on
from tests.notifications.helpers import MEMBER, notification


async def count_rows(client: Any) -> int:
    async with client.app[ENGINE].connect() as connection:
        return int((await connection.execute(select(func.count(notifications.c.id)))).scalar_one())


async def test_rows_over_the_rate_are_refused_with_retry_after(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with server_on(tmp_path, fake_monday, send_rate_per_minute=6) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        batch = [notification(message=f"n{i}") for i in range(5)]
        assert (await client.post("/notifications", json=batch, headers=headers)).status == 200

        # Two more rows: one is left in the bucket, so the request is refused whole.
        refused = await client.post("/notifications", json=batch[:2], headers=headers)
        assert refused.status == 429
        body = await refused.json()
        assert body["errors"][0]["extensions"]["code"] == "REQUESTS_EXCEEDED"
        # One row per 10 s at 6/min: the missing row is back within 10 s.
        assert 1 <= int(refused.headers["Retry-After"]) <= 10
        assert await count_rows(client) == 5

        # The last row still fits; another user has a bucket of their own.
        assert (await client.post("/notifications", json=batch[0], headers=headers)).status == 200
        other = {"Authorization": mint(user="11")}
        assert (await client.post("/notifications", json=batch[:5], headers=other)).status in (
            200,
            409,  # whoever user 11 may send as, the limit did not refuse them
        )
    assert len(fake_monday.fake.bell(MEMBER)) == 6


async def test_a_refused_idempotency_key_can_be_used_after_waiting(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with server_on(tmp_path, fake_monday, send_rate_per_minute=1) as client:
        headers = {"Authorization": mint(user=MEMBER)}
        first = await client.post("/notifications", json=notification(), headers=headers)
        assert first.status == 200
        keyed = {**headers, "Idempotency-Key": "k-1"}
        body = notification(message="keyed")
        refused = await client.post("/notifications", json=body, headers=keyed)
        assert refused.status == 429

        # A minute later (the limiter's clock moved on), the same key sends: the 429 was
        # not kept as the key's answer.
        limiter = client.app[SERVICES].send.limiter
        assert limiter is not None
        limiter.clock = lambda: time.monotonic() + 61
        again = await client.post("/notifications", json=body, headers=keyed)
        assert again.status == 200
        assert again.headers.get("Idempotent-Replayed") is None
    assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["Build finished", "keyed"]


def test_the_bucket_refills_with_time() -> None:
    now = [0.0]
    limiter = SendRateLimiter(60, clock=lambda: now[0])
    limiter.take("1", "2", 60)
    with pytest.raises(ApiError) as refused:
        limiter.take("1", "2", 1)
    assert refused.value.status == 429
    assert refused.value.headers["Retry-After"] == "1"
    now[0] = 30.0
    limiter.take("1", "2", 30)  # half a minute refills half the bucket
    with pytest.raises(ApiError):
        limiter.take("1", "2", 1)
    with pytest.raises(ApiError) as too_many:
        limiter.take("1", "3", 61)  # more than a minute's worth can never pass
    assert "smaller requests" in too_many.value.message


def test_zero_turns_the_limit_off() -> None:
    limiter = SendRateLimiter(0)
    for _ in range(100):
        limiter.take("1", "2", 500)
