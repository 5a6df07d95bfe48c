"""SQLite's single writer (docs/storage.md): `engine.begin()` takes the write lock up front."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.storage.tables import idempotency_keys


def other_process_can_write(path: Path) -> bool:
    """What another process sees: can it take the write lock right now (no waiting)?"""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return False
    finally:
        other.close()


def key_row(key: str) -> dict[str, object]:
    return {
        "account_id": "1",
        "user_id": "2",
        "key": key,
        "body_digest": "d",
        "created_at": utcnow(),
    }


async def test_a_write_transaction_holds_the_lock_before_its_first_write(
    sqlite_file: tuple[AsyncEngine, Path],
) -> None:
    engine, path = sqlite_file
    async with engine.begin() as conn:
        # Only a read so far: a deferred transaction would not hold the write lock yet.
        await conn.execute(select(func.count()).select_from(idempotency_keys))
        assert not other_process_can_write(path)
        # Readers are never blocked by the writer (WAL).
        async with engine.connect() as reader:
            count = await reader.execute(select(func.count()).select_from(idempotency_keys))
            assert count.scalar_one() == 0
    assert other_process_can_write(path)


async def test_reads_take_no_write_lock(sqlite_file: tuple[AsyncEngine, Path]) -> None:
    engine, path = sqlite_file
    async with engine.connect() as conn:
        await conn.execute(select(func.count()).select_from(idempotency_keys))
        assert other_process_can_write(path)


async def test_writers_queue_and_all_commit(sqlite_file: tuple[AsyncEngine, Path]) -> None:
    engine, _ = sqlite_file

    async def write(n: int) -> None:
        async with engine.begin() as conn:
            await conn.execute(select(func.count()).select_from(idempotency_keys))
            await conn.execute(insert(idempotency_keys).values(**key_row(f"k{n}")))

    await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(100))), timeout=60)
    async with engine.connect() as conn:
        count = await conn.execute(select(func.count()).select_from(idempotency_keys))
        assert count.scalar_one() == 100


async def test_a_nested_write_transaction_fails_instead_of_hanging(
    sqlite_file: tuple[AsyncEngine, Path],
) -> None:
    engine, _ = sqlite_file
    async with engine.begin() as conn:
        await conn.execute(insert(idempotency_keys).values(**key_row("outer")))
        with pytest.raises(RuntimeError, match="inside another"):
            async with engine.begin():
                pass
    # The outer transaction still committed, and the writer is free again.
    async with engine.begin() as conn:
        await conn.execute(insert(idempotency_keys).values(**key_row("after")))
    async with engine.connect() as conn:
        count = await conn.execute(select(func.count()).select_from(idempotency_keys))
        assert count.scalar_one() == 2
