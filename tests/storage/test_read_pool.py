"""`read_once` (storage/db.py, storage/readers.py): a whole read as one synchronous function,
on SQLite in a read-pool thread on a read-only connection, on PostgreSQL through asyncpg."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

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


@pytest.fixture
async def sqlite_engine(tmp_path: Any) -> AsyncIterator[Any]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'lanes.db'}")
    async with engine.begin() as conn:  # the file exists before the readers open it
        await conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield engine
    await engine.dispose()


COUNT_TO_100_000 = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
    "SELECT count(*) FROM c"
)


async def test_one_account_cannot_take_every_reader(sqlite_engine: Any) -> None:
    """An account's reads hold at most one of the two threads: another account's read runs
    while three of the first one's are still held (before, two of them held both threads
    and everyone else's ledger waited behind them)."""
    readers = sqlite_engine.readers
    release = threading.Event()

    def held(_conn: Connection) -> str:
        release.wait(60)
        return "held"

    hog = [asyncio.create_task(readers.run(held, lane="1001")) for _ in range(3)]
    try:
        other = await asyncio.wait_for(
            readers.run(lambda conn: conn.exec_driver_sql("SELECT 7").scalar(), lane="2002"),
            timeout=30,
        )
        assert other == 7
        assert not any(task.done() for task in hog)
    finally:
        release.set()
    assert await asyncio.gather(*hog) == ["held"] * 3


async def test_a_read_has_its_time_from_when_it_starts_not_from_its_wait(
    sqlite_engine: Any,
) -> None:
    """A read queued behind its own account's held read waits longer than its bound, then
    runs in full: the wait for a thread is not what the bound is for."""
    readers = sqlite_engine.readers
    release = threading.Event()
    held = asyncio.create_task(readers.run(lambda _conn: release.wait(60), lane="1001"))
    queued = asyncio.create_task(
        readers.run(
            lambda conn: conn.exec_driver_sql(COUNT_TO_100_000).scalar(), seconds=2, lane="1001"
        )
    )
    await asyncio.sleep(2.5)  # the queued read waits past its 2 s (this is the scenario)
    assert not queued.done()
    release.set()
    assert await held is True
    assert await queued == 100_000
