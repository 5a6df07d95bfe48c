"""`attempt_errors` (contract §11) as the outbox statements keep it, on both engines
(`database_url` is parametrised): one entry per failed attempt, appended by the statement
that records the outcome; none for errors that were not an attempt; bounded in length."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import frozen
from server.notifications.model import DeliveryStatus, Finish, delivery_error
from server.storage.db import create_engine
from server.storage.notifications import SqlNotificationRows, SqlOutbox
from server.storage.notifications.attempt_errors import MAX_ATTEMPT_ERRORS, MAX_MESSAGE
from server.storage.tables import notifications

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
t = notifications.c


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def new_row(engine: AsyncEngine, **values: Any) -> int:
    row = {
        "timestamp": T0,
        "recipient": "12",
        "sender": "11",
        "message": "hello",
        "collection": "Project",
        "item": "1",
        "account_id": "1001",
        "sent_as": "app",
        "transport": "server",
        "credential_owner": "11",
        "delivery_status": "sending",
        "attempts": 1,
        "lease_owner": "w",
        "lease_expires_at": T0 + timedelta(minutes=1),
        **values,
    }
    async with engine.begin() as connection:
        result = await connection.execute(insert(notifications).values(row).returning(t.id))
        return int(result.scalar_one())


async def attempt_again(engine: AsyncEngine, row_id: int) -> None:
    """What `mark_sending` does before the next attempt."""
    async with engine.begin() as connection:
        await connection.execute(
            update(notifications)
            .where(t.id == row_id)
            .values(delivery_status="sending", attempts=t.attempts + 1, lease_owner="w")
        )


async def test_each_failed_attempt_is_listed_and_the_list_is_bounded(engine: AsyncEngine) -> None:
    outbox = SqlOutbox(engine)
    row_id = await new_row(engine)
    attempts = MAX_ATTEMPT_ERRORS + 5
    long = "x" * (MAX_MESSAGE * 3)
    with frozen(T0):
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                await attempt_again(engine, row_id)
            error = delivery_error(f"E{attempt}", f"{attempt} {long}", f"req-{attempt}")
            stored = await outbox.finish_many(
                "w", [Finish(row_id, DeliveryStatus.RETRY_SCHEDULED, error)]
            )
            assert stored[0].last_error == error  # the latest, whole, as before
        await attempt_again(engine, row_id)
        done = await outbox.finish_many("w", [Finish(row_id, DeliveryStatus.SENT)])
    row = done[0]
    assert row.attempts == attempts + 1
    assert row.last_error is None
    kept = list(row.attempt_errors)
    assert len(kept) == MAX_ATTEMPT_ERRORS  # the latest ones
    assert [e["attempt"] for e in kept] == list(range(6, attempts + 1))
    assert [e["code"] for e in kept] == [f"E{n}" for n in range(6, attempts + 1)]
    assert all(len(e["message"]) == MAX_MESSAGE for e in kept)
    assert kept[-1]["monday_request_id"] == f"req-{attempts}"
    assert kept[-1]["at"] == "2026-11-28T09:00:00.000000Z"


async def test_an_error_without_an_attempt_is_not_listed(engine: AsyncEngine) -> None:
    outbox = SqlOutbox(engine)
    # Claimed but never sent (the credential went away): `last_error` says why, no attempt.
    row_id = await new_row(engine, delivery_status="queued", attempts=0)
    error = delivery_error("NO_CREDENTIAL", "gone")
    stored = await outbox.finish_many("w", [Finish(row_id, DeliveryStatus.FAILED, error)])
    assert stored[0].last_error == error
    assert stored[0].attempt_errors == ()


async def test_an_interrupted_attempt_and_a_failed_relay_are_listed(engine: AsyncEngine) -> None:
    outbox = SqlOutbox(engine)
    stale = await new_row(engine, attempts=2, lease_expires_at=T0 - timedelta(seconds=1))
    with frozen(T0):
        assert await outbox.expire_stale_sending() == 1
    rows = SqlNotificationRows(engine)
    found = await rows.get(stale)
    assert found is not None and found.delivery_status == DeliveryStatus.UNKNOWN
    assert [(e["attempt"], e["code"]) for e in found.attempt_errors] == [
        (2, "DELIVERY_INTERRUPTED")
    ]

    seamless = await new_row(engine, delivery_status="awaiting_client", attempts=0)
    error = delivery_error("CLIENT_ERROR", "the view could not send it")
    relayed = await rows.record_relay(
        seamless, status=DeliveryStatus.FAILED, monday_id=None, error=error
    )
    assert relayed is not None and relayed.attempts == 1
    assert [(e["attempt"], e["code"]) for e in relayed.attempt_errors] == [(1, "CLIENT_ERROR")]
