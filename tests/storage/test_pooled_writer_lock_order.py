"""`PooledWriter` (PostgreSQL): two groups in flight lock rows in one order, never in a cycle.

The send's insert locks its user's send-rate row for the rest of its group's transaction
(storage/limits.py `call_in`). Two groups in flight could each hold one user's row and wait
for the other's: PostgreSQL would break that deadlock only after `deadlock_timeout` (1 s),
rolling one group back to run its jobs again alone. Each group runs its jobs in the order of
their `order` key, so they cannot. The test lines the groups up with advisory locks the test
holds, in the interleaving that deadlocks when a group runs its jobs as they arrived.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.storage.db import pooled_writer, write
from server.storage.limits import call_in, tokens_call
from server.storage.tables import delivery_limits
from tests.conditions import until, until_true

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
FIRST_LANE, SECOND_LANE, MIDDLE = 101, 102, 103  # advisory locks the test holds


def take(user: str) -> Any:
    """A send's take of one row from `user`'s bucket, as the insert makes it."""

    def run(connection: Connection) -> float:
        call = tokens_call(1, capacity=10, per_second=0.0, now=NOW)
        tokens: float = call_in(connection, f"sender:1001:{user}", call)
        return tokens

    return run


def wait_for(lock: int) -> Any:
    def run(connection: Connection) -> None:
        connection.execute(text(f"SELECT pg_advisory_xact_lock({lock})"))

    return run


async def waiting_for(holder: AsyncConnection, lock: int) -> bool:
    """A transaction waits for the test's advisory lock `lock`."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :lock"
        " AND NOT granted"
    )
    found = int((await holder.execute(query, {"lock": lock})).scalar_one())
    await holder.commit()
    return found > 0


async def waiting_for_a_row(holder: AsyncConnection) -> bool:
    """A transaction waits for another one (a row it locked)."""
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'transactionid' AND NOT granted")
    found = int((await holder.execute(query)).scalar_one())
    await holder.commit()
    return found > 0


async def test_two_groups_in_flight_lock_users_in_one_order(pg_engine: AsyncEngine) -> None:
    writer = pooled_writer(pg_engine)
    rollbacks: list[int] = []
    event.listen(pg_engine.sync_engine, "rollback", lambda conn: rollbacks.append(1))
    async with pg_engine.connect() as holder:
        for lock in (FIRST_LANE, SECOND_LANE, MIDDLE):
            await holder.execute(text(f"SELECT pg_advisory_lock({lock})"))
        await holder.commit()
        # Each lane takes a job that waits for the test.
        lanes = []
        for lock in (FIRST_LANE, SECOND_LANE):
            lanes.append(asyncio.ensure_future(write(pg_engine, wait_for(lock))))
            await until_true(
                lambda lock=lock: waiting_for(holder, lock), "a lane never took its job"
            )
        # The first group: user a, then (holding a's row) a wait for the test, then user b.
        first = [
            asyncio.ensure_future(write(pg_engine, take("a"), order="1001\x00a")),
            asyncio.ensure_future(write(pg_engine, wait_for(MIDDLE), order="1001\x00a\x00~")),
            asyncio.ensure_future(write(pg_engine, take("b"), order="1001\x00b")),
        ]
        await until(lambda: writer.queued == 3, "the first group's jobs never queued")
        await holder.execute(text(f"SELECT pg_advisory_unlock({FIRST_LANE})"))
        await holder.commit()
        await until_true(
            lambda: waiting_for(holder, MIDDLE), "the first group never reached its wait"
        )
        # The second group arrives b first, then a: run as it arrived, it would take b's row
        # and wait for a's, while the first group, once let go, waits for b's.
        second = [
            asyncio.ensure_future(write(pg_engine, take("b"), order="1001\x00b")),
            asyncio.ensure_future(write(pg_engine, take("a"), order="1001\x00a")),
        ]
        await until(lambda: writer.queued == 2, "the second group's jobs never queued")
        await holder.execute(text(f"SELECT pg_advisory_unlock({SECOND_LANE})"))
        await holder.commit()
        # The second group now waits for a row the first one holds (a's, in order).
        await until_true(lambda: waiting_for_a_row(holder), "the second group never waited")
        await holder.execute(text(f"SELECT pg_advisory_unlock({MIDDLE})"))
        await holder.commit()
        first_tokens = await asyncio.gather(*first)
        second_tokens = await asyncio.gather(*second)
        await asyncio.gather(*lanes)
        assert rollbacks == []  # no group was rolled back (a deadlock would roll one back)
    assert (first_tokens[0], first_tokens[2]) == (10.0, 10.0)
    assert second_tokens == [9.0, 9.0]
    async with pg_engine.connect() as connection:
        rows = await connection.execute(select(delivery_limits.c.scope, delivery_limits.c.tokens))
        assert dict(rows.tuples().all()) == {"sender:1001:a": 8.0, "sender:1001:b": 8.0}
