"""monday misbehaving, over real HTTP: every row ends sent, retry_scheduled, failed or unknown,
and the governor waits for monday's limits instead of sending into them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from server.appkeys import ENGINE
from server.delivery import governor
from server.monday.client import MONDAY
from server.storage.tables import notifications
from tests.conftest import FakeMondayServer
from tests.delivery.helpers import free_port, post, row, server_on, wait_for
from tests.notifications.helpers import MEMBER


def midnight_utc() -> datetime:
    now = datetime.now(UTC)
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("kind", ["rate_limit", "complexity", "concurrency"])
async def test_retry_in_seconds_pauses_the_account_until_then(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any, kind: str
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday) as client:
        fake.fail_next(kind, retry_in_seconds=1)
        first = await post(client, mint, f"first {kind}")
        assert first["delivery_status"] == "retry_scheduled"
        # Sent while the account is paused: held back, not sent into another 429.
        second = await post(client, mint, f"second {kind}")
        assert second["delivery_status"] in ("sent", "retry_scheduled")

        done = [await wait_for(client, r["id"], "sent") for r in (first, second)]

    calls = fake.requests_to("/v2")
    refused_at = calls[0].at
    assert len(calls) >= 2
    for later in calls[1:]:
        assert (later.at - refused_at).total_seconds() >= 0.95, "called monday during the pause"
    assert done[0]["attempts"] == 2
    assert done[1]["attempts"] == 1  # the held-back row was never refused
    assert sorted(n.text for n in fake.bell(MEMBER)) == [f"first {kind}", f"second {kind}"]
    assert sum(governor.rate_limit_waits.values()) > 0


async def test_complexity_budget_running_out_is_waited_for_not_hit(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """The `RateLimit` header says the complexity budget is nearly gone: the next call waits
    for the reset the header announced, and monday never answers with a complexity error."""
    fake = fake_monday.fake
    fake.minute_window_seconds = 2
    fake.complexity_budget = 1_005  # one notification costs 10 in the fake: 995 left after it
    async with server_on(tmp_path, fake_monday) as client:
        first = await post(client, mint, "uses the budget")
        assert first["delivery_status"] == "sent"
        second = await post(client, mint, "after the reset")
        done = await wait_for(client, second["id"], "sent")

    calls = fake.requests_to("/v2")
    assert len(calls) == 2
    assert (calls[1].at - calls[0].at).total_seconds() >= 1.5
    assert done["attempts"] == 1 and done["last_error"] is None


async def test_daily_limit_stops_the_account_until_midnight_utc(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday) as client:
        fake.fail_next("daily_limit")
        refused = await post(client, mint, "refused for today")
        held = await post(client, mint, "held until tomorrow")
        await asyncio.sleep(0.5)  # the worker polls every 0.05 s
        rows = [await row(client, r["id"]) for r in (refused, held)]

    midnight = midnight_utc()
    for found in rows:
        assert found["delivery_status"] == "retry_scheduled"
        assert found["last_error"]["code"] == "DAILY_LIMIT_EXCEEDED"
        assert midnight <= found["next_attempt_at"] <= midnight + timedelta(seconds=61)
    assert rows[0]["attempts"] == 1
    assert rows[1]["attempts"] == 0  # never attempted: no call that would be refused
    assert len(fake.requests_to("/v2")) == 1
    assert fake.bell(MEMBER) == []
    assert governor.rate_limit_waits[("DAILY_LIMIT_EXCEEDED", "deferred")] >= 1


async def test_server_error_is_unknown_then_retried_with_its_key_and_sent_once(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday) as client:
        fake.fail_next("server_error")
        sent = await post(client, mint, "monday broke")
        # Contract §10: a 500 may follow an executed mutation: unknown, never failed.
        assert sent["delivery_status"] == "unknown"
        assert sent["last_error"]["code"] == "INTERNAL_SERVER_ERROR"
        # Its message says what happens next, and what the lines below check happened.
        assert "sent again with the same Idempotency-Key" in sent["last_error"]["message"]
        # Contract §11: asked again with the same request and key, and sent.
        found = await wait_for(client, sent["id"], "sent")
    assert found["attempts"] == 2
    calls = fake.requests_to("/v2")
    assert len(calls) == 2
    assert calls[0].headers["idempotency-key"] == calls[1].headers["idempotency-key"]
    assert [n.text for n in fake.bell(MEMBER)] == ["monday broke"]


async def test_slow_answer_within_the_timeout_is_sent(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, monday_timeout_seconds=5) as client:
        fake.fail_next("timeout", seconds=0.8, executes=True)
        sent = await post(client, mint, "slowly")
    assert sent["delivery_status"] == "sent"
    assert [n.text for n in fake.bell(MEMBER)] == ["slowly"]


async def test_hanging_answer_past_the_timeout_is_unknown_then_sent_once(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    async with server_on(tmp_path, fake_monday, monday_timeout_seconds=0.5) as client:
        # monday executes it after we gave up; the retry with the same key is answered 409
        # while it runs, then with its answer replayed: never a second notification.
        fake.fail_next("timeout", seconds=1.5, executes=True)
        sent = await post(client, mint, "maybe delivered")
        assert sent["delivery_status"] == "unknown"
        assert sent["last_error"]["code"] == "NO_ANSWER"
        found = await wait_for(client, sent["id"], "sent")
    assert found["attempts"] >= 2
    assert len({r.headers["idempotency-key"] for r in fake.requests_to("/v2")}) == 1
    assert [n.text for n in fake.bell(MEMBER)] == ["maybe delivered"]


async def test_connection_refused_is_retried_and_sent_once_monday_answers(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v2"
    async with server_on(tmp_path, fake_monday, monday_api_url=closed) as client:
        sent = await post(client, mint, "nobody listening")
        assert sent["delivery_status"] == "retry_scheduled"
        assert sent["last_error"]["code"] == "MONDAY_UNREACHABLE"
        assert sent["attempts"] == 1
        due = sent["next_attempt_at"]
        assert datetime.fromisoformat(due) >= datetime.now(UTC) + timedelta(seconds=5)

        # monday is back; rather than sleep ~10 s, make the retry due now.
        client.app[MONDAY].api_url = fake_monday.api_url
        async with client.app[ENGINE].begin() as connection:
            await connection.execute(
                update(notifications)
                .where(notifications.c.id == sent["id"])
                .values(next_attempt_at=datetime.now(UTC))
            )
        done = await wait_for(client, sent["id"], "sent")
    assert done["attempts"] == 2
    assert [n.text for n in fake_monday.fake.bell(MEMBER)] == ["nobody listening"]
