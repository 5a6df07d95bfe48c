"""SQLite's read pool: a whole read as one call into a reader thread.

With aiosqlite every statement is four round trips between the event loop and the driver's
thread (cursor, execute, fetch, close) and returning the connection to the pool one more: a
ledger page with its `filter_count` was nine, and under load each one waits for a thread
wake-up and a turn of the event loop. Here a read is one synchronous function, `fn(connection)`
(plain SQLAlchemy Core on a sync `Connection` of the stdlib `sqlite3` driver), run in one
executor call: one hop there and one back, whatever the number of statements.

- Each reader thread keeps its own connection (`SingletonThreadPool`), opened read-only in
  effect (`PRAGMA query_only`, so a write by mistake fails instead of taking the write lock)
  with the writer's pragmas (WAL, busy timeout).
- `fn` runs in a deferred `BEGIN` … `ROLLBACK`: its statements share one snapshot (a page and
  its count agree), which WAL gives readers without waiting for the writer.
- SQLAlchemy's compiled cache is per engine and the statements handed in are memoised by the
  caller (server/notifications/reads.py), so a repeated read neither rebuilds nor recompiles;
  a query read again and again runs at the driver's cursor (storage/compiled_reads.py).

PostgreSQL has no read pool: `fn` runs on an asyncpg connection through `run_sync`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import SingletonThreadPool

T = TypeVar("T")
ReadFn = Callable[[Connection], T]
# Two cores on the reference machine; sqlite3 releases the GIL while it steps, so a second
# reader overlaps one statement with another request's Python.
DEFAULT_READERS = 2


class SQLiteReaders:
    """`size` reader threads, each with its own read-only connection to the database file."""

    def __init__(
        self, url: str, *, on_connect: Callable[[Any, Any], None], size: int = DEFAULT_READERS
    ) -> None:
        self._url = make_url(url).set(drivername="sqlite+pysqlite")
        self._on_connect = on_connect
        self._size = size
        self._engine: Engine | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()

    async def run(self, fn: ReadFn[T]) -> T:
        """`fn(connection)` in one snapshot, in one call into a reader thread; its result."""
        with self._guard:
            if self._executor is None:
                self._engine = self._new_engine()
                self._executor = ThreadPoolExecutor(self._size, thread_name_prefix="sqlite-read")
            executor, engine = self._executor, self._engine
        assert engine is not None
        return await asyncio.get_running_loop().run_in_executor(executor, _run, engine, fn)

    def _new_engine(self) -> Engine:
        # One connection per reader thread; closing them all at disposal happens on the
        # disposing thread, hence check_same_thread off (no connection is ever shared).
        engine = create_sync_engine(
            self._url,
            poolclass=SingletonThreadPool,
            pool_size=self._size,
            connect_args={"check_same_thread": False},
        )
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "connect", _query_only)
        event.listen(engine, "begin", _begin)
        return engine

    def close(self) -> None:
        """Stop the threads and close their connections (engine disposal)."""
        with self._guard:
            executor, self._executor = self._executor, None
            engine, self._engine = self._engine, None
        if executor is not None:
            executor.shutdown(wait=True)
        if engine is not None:
            engine.dispose()


def _run(engine: Engine, fn: ReadFn[T]) -> T:
    with engine.connect() as connection, connection.begin() as transaction:
        result = fn(connection)
        transaction.rollback()  # nothing to keep; ends the snapshot
        return result


def _query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _begin(connection: Connection) -> None:
    # The driver opens no transaction itself (isolation_level None, set by on_connect). Sent
    # at the driver's connection: through `exec_driver_sql` it cost a whole SQLAlchemy
    # execution (context, cursor result) on every read.
    connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
