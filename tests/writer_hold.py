"""Line up writes so the SQLite writer commits them as one group (storage/writer.py).

While the test holds the engine's write gate, the writer thread takes a no-op job of the
test's own and waits at the gate with it; every job submitted meanwhile stays queued, and on
release the writer commits the no-op alone, then all the queued jobs in one group. (Without
the no-op, the writer might take the first one or two of the test's jobs before the others
arrive, and commit them apart.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import SQLiteEngine, write
from server.storage.writer import SQLiteWriter
from tests.conditions import until


@asynccontextmanager
async def writer_held(engine: AsyncEngine) -> AsyncIterator[SQLiteWriter]:
    """Inside: jobs submitted to the writer wait in its queue (`writer.queued`); they are
    committed in one group once the block is left."""
    assert isinstance(engine, SQLiteEngine) and engine.writer is not None
    writer = engine.writer
    async with engine.gate.enter():
        before = writer.submitted
        blocker = asyncio.ensure_future(write(engine, lambda connection: None))
        await until(
            lambda: writer.submitted > before and writer.queued == 0,
            "the writer never took the no-op job",
        )
        yield writer
    await blocker
