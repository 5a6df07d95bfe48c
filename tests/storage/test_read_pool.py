"""`read_once` (storage/db.py, storage/readers.py): a whole read as one synchronous function,
on SQLite in a read-pool thread on a read-only connection, on PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.storage.db import create_engine, read_once, write
from server.storage.tables import idempotency_keys


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def key_row(key: str) -> dict[str, object]:
    return {
        "account_id": "1",
        "user_id": "2",
        "key": key,
        "body_digest": "d",
        "created_at": utcnow(),
    }


def count_keys(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one())


async def test_a_read_sees_every_write_committed_before_it(engine: AsyncEngine) -> None:
    assert await read_once(engine, count_keys) == 0
    for n in range(1, 4):
        await write(
            engine, lambda conn, n=n: conn.execute(insert(idempotency_keys), key_row(f"k{n}"))
        )
        # The reader threads keep their connections: each read starts a fresh snapshot.
        assert await read_once(engine, count_keys) == n


async def test_concurrent_reads_all_answer(engine: AsyncEngine) -> None:
    await write(engine, lambda conn: conn.execute(insert(idempotency_keys), key_row("k")))
    counts = await asyncio.gather(*(read_once(engine, count_keys) for _ in range(20)))
    assert counts == [1] * 20


async def test_an_error_in_a_read_reaches_the_caller_and_the_pool_goes_on(
    engine: AsyncEngine,
) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(text("SELECT no_such_column FROM idempotency_keys"))

    with pytest.raises(Exception, match="no_such_column"):
        await read_once(engine, broken)
    assert await read_once(engine, count_keys) == 0


async def test_a_sqlite_read_can_not_write(sqlite_database_url: str) -> None:
    engine = create_engine(sqlite_database_url)
    try:

        def sneaky(conn: Connection) -> None:
            conn.execute(insert(idempotency_keys), key_row("k"))

        with pytest.raises(OperationalError, match="readonly"):
            await read_once(engine, sneaky)
        assert await read_once(engine, count_keys) == 0
    finally:
        await engine.dispose()


async def test_a_read_whose_caller_gave_up_leaves_the_pool_working(
    sqlite_database_url: str,
) -> None:
    """SQLite's pool: a read whose task is cancelled finishes in its thread, unanswered, and
    the pool's threads go on serving (more reads at once than there are threads)."""
    engine = create_engine(sqlite_database_url)
    started, release = threading.Event(), threading.Event()

    def held(conn: Connection) -> int:
        started.set()
        release.wait(10)
        return count_keys(conn)

    try:
        task = asyncio.create_task(read_once(engine, held))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        counts = await asyncio.gather(*(read_once(engine, count_keys) for _ in range(10)))
        assert counts == [0] * 10
    finally:
        release.set()
        await engine.dispose()
