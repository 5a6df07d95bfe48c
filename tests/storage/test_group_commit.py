"""`db.write`: one function per write transaction, group-committed (server/storage/writer.py).
Runs against SQLite (the writer thread) and PostgreSQL (`PooledWriter` over the pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.storage.db import SQLiteEngine, create_engine, write
from server.storage.tables import idempotency_keys


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def add_key(key: str) -> Callable[[Connection], str]:
    def run(connection: Connection) -> str:
        connection.execute(
            insert(idempotency_keys).values(
                account_id="1", user_id="2", key=key, body_digest="d", created_at=utcnow()
            )
        )
        return key

    return run


async def keys(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        result = await connection.execute(select(idempotency_keys.c.key))
        return sorted(row[0] for row in result.all())


async def test_concurrent_writes_all_commit_and_a_failing_one_only_fails_itself(
    engine: AsyncEngine,
) -> None:
    def duplicate_then_more(connection: Connection) -> None:
        connection.execute(
            insert(idempotency_keys).values(
                account_id="1",
                user_id="2",
                key="k-dup-extra",
                body_digest="d",
                created_at=utcnow(),
            )
        )
        add_key("k0")(connection)  # k0 is already written: this job must roll back

    # k0 lands first, so the duplicate conflicts whatever order the concurrent jobs run in.
    assert await write(engine, add_key("k0")) == "k0"
    jobs = [write(engine, add_key(f"k{i}")) for i in range(1, 20)]
    results = await asyncio.gather(
        *jobs, write(engine, duplicate_then_more), return_exceptions=True
    )
    assert results[:19] == [f"k{i}" for i in range(1, 20)]
    assert isinstance(results[19], IntegrityError)
    # The failed job left nothing behind (not even its first statement); the others stay.
    assert await keys(engine) == sorted(f"k{i}" for i in range(20))


async def test_a_write_and_begin_take_turns_and_both_land(engine: AsyncEngine) -> None:
    async def with_begin(key: str) -> None:
        async with engine.begin() as connection:
            await connection.run_sync(add_key(key))

    await asyncio.gather(
        *(write(engine, add_key(f"w{i}")) for i in range(10)),
        *(with_begin(f"b{i}") for i in range(10)),
    )
    async with engine.connect() as connection:
        count = (
            await connection.execute(select(func.count()).select_from(idempotency_keys))
        ).scalar()
    assert count == 20


async def test_a_write_inside_begin_of_the_same_task_fails_instead_of_hanging(
    sqlite_database_url: str,
) -> None:
    """Only SQLite has a process-wide writer lock, so this case exists only there."""
    engine = create_engine(sqlite_database_url)
    assert isinstance(engine, SQLiteEngine)
    try:
        await _nested_write_fails(engine)
    finally:
        await engine.dispose()


async def _nested_write_fails(engine: AsyncEngine) -> None:
    async with engine.begin():
        with pytest.raises(RuntimeError, match="inside another"):
            await write(engine, add_key("nested"))
