"""Accounts are served fairly (contract §11): one account's backlog does not delay another
account's due rows beyond one claim. Both engines (`database_url` is parametrised)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import frozen
from server.storage.db import create_engine
from server.storage.notifications import SqlOutbox
from server.storage.tables import notifications

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
A, B, C = "2001", "2002", "2003"
CLAIM = 100  # the delivery worker's claim size (worker.py claim_limit)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def due_row(account: str, n: int, *, retry: bool) -> dict[str, Any]:
    return {
        "timestamp": T0 - timedelta(hours=2) + timedelta(seconds=n),
        "recipient": "12",
        "sender": "11",
        "message": f"{account}-{n}",
        "collection": "Project",
        "item": "1",
        "account_id": account,
        "sent_as": "app",
        "transport": "server",
        "credential_owner": "11",
        "delivery_status": "retry_scheduled" if retry else "queued",
        "next_attempt_at": T0 - timedelta(hours=1) + timedelta(seconds=n) if retry else None,
    }


async def seed(engine: AsyncEngine, account: str, count: int) -> None:
    # Half never attempted (no next_attempt_at), half retries due long ago: both orders in
    # which the old claim took the oldest rows first put a later account's rows last.
    rows = [due_row(account, n, retry=n % 2 == 1) for n in range(count)]
    async with engine.begin() as connection:
        await connection.execute(insert(notifications), rows)


@pytest.mark.parametrize("worker", [False, True], ids=["claim", "worker-claim"])
async def test_a_backlog_does_not_hold_back_another_accounts_rows(
    engine: AsyncEngine, worker: bool
) -> None:
    await seed(engine, A, 3000)
    await seed(engine, B, 5)  # newer ids, due later than every row of A
    outbox = SqlOutbox(engine)
    # The worker's claim also takes `unknown` rows to ask again about (none here).
    since = T0 - timedelta(minutes=25) if worker else None
    with frozen(T0):
        first = await outbox.claim("w1", lease_seconds=60, limit=CLAIM, resend_since=since)
    by_account = Counter(row.account_id for row in first)
    assert by_account == {B: 5, A: CLAIM - 5}


async def test_round_robin_over_accounts_and_no_row_taken_twice(engine: AsyncEngine) -> None:
    await seed(engine, A, 300)
    await seed(engine, B, 40)
    await seed(engine, C, 2)
    outbox = SqlOutbox(engine)
    with frozen(T0):
        three = await outbox.claim("w1", lease_seconds=60, limit=3)
        assert sorted(row.account_id for row in three) == [A, B, C]
        # Within an account, its oldest due row first.
        a_row = next(row for row in three if row.account_id == A)
        assert a_row.message == f"{A}-0"
        # Concurrent claims (several workers) share the rest without overlap, until none
        # is left.
        ids = [row.id for row in three]
        while True:
            claims = await asyncio.gather(
                *(outbox.claim(f"w{i}", lease_seconds=60, limit=50) for i in range(4))
            )
            claimed = [row.id for claim in claims for row in claim]
            if not claimed:
                break
            ids += claimed
    assert len(ids) == len(set(ids)) == 342


RESEND_SINCE = T0 - timedelta(minutes=25)


def unknown_row(account: str, n: int) -> dict[str, Any]:
    """An `unknown` row due for a retry of its own one-row request (resend.py)."""
    return {
        **due_row(account, n, retry=False),
        "message": f"{account}-u{n}",
        "delivery_status": "unknown",
        "attempts": 1,
        "next_attempt_at": T0 - timedelta(minutes=10) + timedelta(seconds=n),
        "delivery_request_key": f"{account}-key-{n}",
        "delivery_request_at": T0 - timedelta(minutes=20),
    }


async def seed_unknown(engine: AsyncEngine, account: str, count: int) -> None:
    rows = [unknown_row(account, n) for n in range(count)]
    async with engine.begin() as connection:
        await connection.execute(insert(notifications), rows)


async def test_a_backlog_of_resends_does_not_hold_back_another_accounts_rows(
    engine: AsyncEngine,
) -> None:
    await seed_unknown(engine, A, 3000)  # due long before any row of B
    await seed(engine, B, 5)
    await seed_unknown(engine, B, 5)
    outbox = SqlOutbox(engine)
    with frozen(T0):
        first = await outbox.claim("w1", lease_seconds=60, limit=CLAIM, resend_since=RESEND_SINCE)
    kinds = Counter((row.account_id, row.delivery_status.value) for row in first)
    assert kinds == {
        (B, "queued"): 3,
        (B, "retry_scheduled"): 2,
        (B, "unknown"): 5,
        (A, "unknown"): CLAIM - 10,
    }


async def test_resends_and_sends_of_one_account_take_turns(engine: AsyncEngine) -> None:
    await seed(engine, A, 200)  # due an hour before any resend
    await seed_unknown(engine, A, 200)
    outbox = SqlOutbox(engine)
    with frozen(T0):
        first = await outbox.claim("w1", lease_seconds=60, limit=10, resend_since=RESEND_SINCE)
        kinds = Counter(row.delivery_status.value == "unknown" for row in first)
        assert kinds == {True: 5, False: 5}
        # Without `resend_since` (the send path's own claim) no `unknown` row is taken.
        plain = await outbox.claim("w2", lease_seconds=60, limit=10)
    assert {row.delivery_status.value for row in plain} <= {"queued", "retry_scheduled"}
    assert len(plain) == 10


async def test_a_claimed_resend_brings_the_rest_of_its_request(engine: AsyncEngine) -> None:
    await seed(engine, A, 50)
    rows = [unknown_row(B, n) | {"delivery_request_key": "one-request"} for n in range(4)]
    # Only the first is due; its request's other rows come along all the same.
    for n, values in enumerate(rows[1:], start=1):
        values["next_attempt_at"] = T0 + timedelta(minutes=n)
    async with engine.begin() as connection:
        await connection.execute(insert(notifications), rows)
    outbox = SqlOutbox(engine)
    with frozen(T0):
        first = await outbox.claim("w1", lease_seconds=60, limit=2, resend_since=RESEND_SINCE)
    by_account = Counter(row.account_id for row in first)
    assert by_account == {A: 1, B: 4}
    past = T0 + timedelta(minutes=30)
    with frozen(past):  # past the window (a first send 50 minutes ago): not claimed again
        late = await outbox.claim(
            "w2", lease_seconds=60, limit=100, resend_since=past - timedelta(minutes=25)
        )
    assert all(row.account_id == A for row in late)
