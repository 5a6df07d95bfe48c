"""WAL checkpoints off the writer's path (storage/checkpointer.py): the checkpointer catches up
with what the writer commits, the WAL starts over instead of growing, and the thread stops
with the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.storage.checkpointer import Checkpointer
from server.storage.db import SQLiteEngine, create_engine, write
from server.storage.migrate import upgrade
from server.storage.tables import idempotency_keys
from tests.pg import sqlite_url

ROWS_PER_ROUND = 400
ROUNDS = 6


def checkpointer_of(engine: AsyncEngine) -> Checkpointer:
    assert isinstance(engine, SQLiteEngine) and engine.writer is not None
    return engine.writer.checkpointer


async def write_round(engine: AsyncEngine, round_no: int) -> None:
    rows = [
        {
            "account_id": "1",
            "user_id": "2",
            "key": f"k{round_no}-{i}-" + "x" * 100,
            "body_digest": "d" * 64,
            "created_at": utcnow(),
        }
        for i in range(ROWS_PER_ROUND)
    ]

    def run(connection: Connection) -> None:
        connection.execute(insert(idempotency_keys), rows)

    await write(engine, run)


async def caught_up(checkpointer: Checkpointer) -> tuple[int, int, int]:
    """Wait (for the condition, not for a time) until a checkpoint has copied every frame."""
    for _ in range(2000):
        last = checkpointer.last
        if last is not None and last[1] > 0 and last[2] == last[1]:
            return last
        await asyncio.sleep(0.01)
    raise AssertionError(f"no checkpoint caught up: last {checkpointer.last}")


async def test_the_checkpointer_catches_up_and_the_wal_starts_over(
    sqlite_file: tuple[AsyncEngine, Path],
) -> None:
    engine, path = sqlite_file
    wal = path.with_name(path.name + "-wal")
    checkpointer = checkpointer_of(engine)
    await write_round(engine, 0)
    assert checkpointer.running
    await caught_up(checkpointer)
    size_after_one_round = wal.stat().st_size
    for round_no in range(1, ROUNDS):
        checkpointer.last = None
        await write_round(engine, round_no)
        await caught_up(checkpointer)
    # Each round's pages went into the database file and the WAL was reused from its start:
    # had nothing checkpointed, it would hold all ROUNDS rounds.
    assert wal.stat().st_size <= 2 * size_after_one_round


async def test_the_checkpointer_stops_with_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "stops.db"
    await upgrade(sqlite_url(path))
    engine = create_engine(sqlite_url(path))
    checkpointer = checkpointer_of(engine)
    assert not checkpointer.running  # nothing written yet: no thread
    await write_round(engine, 0)
    assert checkpointer.running
    await engine.dispose()
    assert not checkpointer.running
