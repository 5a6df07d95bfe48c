"""Line several `write()` jobs up in one PostgreSQL writer group.

`PooledWriter` runs up to two groups at once, each taking every job queued when it starts.
`lanes_held` fills both lanes with a job that waits for an advisory lock the test holds;
the jobs the test then queues wait together, and one lane takes them all as one group when
the lock is let go.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import pooled_writer, write
from tests.conditions import until, until_true

LANES_LOCK = 4243


def _held(connection: Connection) -> None:
    connection.execute(text(f"SELECT pg_advisory_xact_lock({LANES_LOCK})"))


async def _waiting(engine: AsyncEngine, lanes: int) -> bool:
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    async with engine.connect() as connection:
        return int((await connection.execute(query)).scalar_one()) >= lanes


@asynccontextmanager
async def lanes_held(engine: AsyncEngine) -> AsyncIterator[Callable[[int], Awaitable[None]]]:
    """Hold both lanes; yields `release(n)`, which waits until `n` jobs are queued, then
    lets the lanes go (the queued jobs then run as one group)."""
    writer = pooled_writer(engine)
    async with engine.connect() as holder:
        await holder.execute(text(f"SELECT pg_advisory_lock({LANES_LOCK})"))
        await holder.commit()
        blockers: list[asyncio.Future[Any]] = []
        for lanes in (1, 2):  # one held job in each lane, each taken alone
            blockers.append(asyncio.ensure_future(write(engine, _held)))
            await until_true(lambda lanes=lanes: _waiting(engine, lanes), "a lane never took")

        async def release(jobs: int) -> None:
            await until(lambda: writer.queued == jobs, "the jobs never queued")
            await holder.execute(text(f"SELECT pg_advisory_unlock({LANES_LOCK})"))
            await holder.commit()
            await asyncio.gather(*blockers)

        yield release
