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


async def test_a_backlog_does_not_hold_back_another_accounts_rows(engine: AsyncEngine) -> None:
    await seed(engine, A, 3000)
    await seed(engine, B, 5)  # newer ids, due later than every row of A
    outbox = SqlOutbox(engine)
    with frozen(T0):
        first = await outbox.claim("w1", lease_seconds=60, limit=CLAIM)
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
