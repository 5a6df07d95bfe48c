"""The async engine: one per process, SQLite in WAL mode or PostgreSQL.

On SQLite (see docs/storage.md) the engine keeps one writer at a time itself, so callers keep
writing `async with engine.begin() as conn:` on both databases:

- `engine.begin()` is a write transaction. It first waits its turn on an in-process
  `asyncio.Lock` (queued fairly in asyncio, holding no pooled connection while it waits), then
  at the process' `WriteGate` (first come, first served with the writer thread of `write()`,
  storage/write_gate.py), then opens `BEGIN IMMEDIATE`, which takes SQLite's write lock up
  front. A deferred transaction that reads and later writes has to upgrade its lock halfway,
  and on a busy database that ends in SQLite's busy handler (sleep and retry, no queue) or
  `database is locked`.
- `engine.connect()` is for reads: a deferred `BEGIN`, no lock, never waits for the writer
  (WAL lets readers read the last committed state while one writer writes).
- Other processes on the same file (the CLI, a second server) still meet at SQLite's own
  lock; `busy_timeout` covers those short waits.

PostgreSQL is unchanged: no process-wide lock, a pool of connections, row locks in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from server.logs import account_id_var
from server.storage import read_budget
from server.storage.pooled_writer import PooledWriter
from server.storage.readers import SQLiteReaders
from server.storage.write_gate import WriteGate
from server.storage.writer import SQLiteWriter, WriteFn

T = TypeVar("T")

BUSY_TIMEOUT_SECONDS = 30
_WRITE = "monday_notify_write"  # connection execution option: this transaction will write
_PER_STATEMENT = "monday_notify_per_statement"  # option: a read that needs no common snapshot


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


class SQLiteEngine(AsyncEngine):
    """An `AsyncEngine` whose `begin()` is the process' single SQLite writer (see above)."""

    __slots__ = ("_locks", "_owners", "gate", "readers", "writer")

    def __init__(self, sync_engine: Engine, writer: SQLiteWriter | None = None) -> None:
        super().__init__(sync_engine)
        # The dedicated writer connection of `write()` (None for an in-memory database).
        self.writer = writer
        # Whose turn it is to write: the writer thread's groups and `begin()` transactions.
        self.gate = WriteGate()
        # The read pool of `read_once()` (None for an in-memory database).
        self.readers: SQLiteReaders | None = None
        # One lock per event loop: an asyncio.Lock belongs to the loop that first waits on it.
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._owners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[Any]] = (
            weakref.WeakKeyDictionary()
        )

    def write_lock(self) -> asyncio.Lock:
        """The process' writer lock on the running loop (taken by `begin()` and `write()`)."""
        return self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())

    def check_not_writing(self) -> None:
        """Waiting for our own lock would hang forever: fail loudly instead."""
        if not self._owners:
            return  # no `begin()` is open on any loop (the send path's usual case)
        task = asyncio.current_task()
        if task is not None and self._owners.get(asyncio.get_running_loop()) is task:
            raise RuntimeError(
                "engine.begin() (or a write) inside another engine.begin() of the same task"
            )

    async def dispose(self, close: bool = True) -> None:
        if self.writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.writer.close)
        if self.readers is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.readers.close)
        await super().dispose(close)

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        self.check_not_writing()
        lock = self.write_lock()
        async with contextlib.AsyncExitStack() as stack:
            # The lock is taken before a connection is checked out (a waiting writer holds
            # no pooled connection) and given back right after COMMIT, before the
            # connection's return to the pool: the next writer need not wait for that.
            async with lock, self.gate.enter():
                if task is not None:
                    self._owners[loop] = task
                try:
                    connection = await stack.enter_async_context(self.connect())
                    await connection.execution_options(**{_WRITE: True})
                    async with connection.begin():
                        yield connection
                finally:
                    self._owners.pop(loop, None)


@contextlib.asynccontextmanager
async def statement_reads(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads whose statements need not share one snapshot (a page and its
    count): on SQLite no `BEGIN`, so each SELECT reads the last committed state by itself, as
    every statement does under PostgreSQL's READ COMMITTED (which is unchanged here). That
    saves the `BEGIN`'s round trips to aiosqlite's thread on every API read."""
    async with engine.connect() as connection:
        await connection.execution_options(**{_PER_STATEMENT: True})
        yield connection


def create_engine(url: str, *, echo: bool = False) -> AsyncEngine:
    """An engine for `url`: SQLite gets its folder, WAL and one writer; PostgreSQL a pool."""
    if is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        plain = create_async_engine(url, echo=echo, connect_args={"timeout": BUSY_TIMEOUT_SECONDS})
        event.listen(plain.sync_engine, "connect", _sqlite_connect)
        event.listen(plain.sync_engine, "begin", _sqlite_begin)
        engine = SQLiteEngine(plain.sync_engine)
        if database and database != ":memory:":
            engine.writer = SQLiteWriter(
                url,
                on_connect=_sqlite_connect,
                on_begin=_sqlite_begin,
                write_option=_WRITE,
                gate=engine.gate,
            )
            engine.readers = SQLiteReaders(url, on_connect=_sqlite_connect)
        return engine
    return create_async_engine(url, echo=echo, pool_size=10, max_overflow=10, pool_pre_ping=True)


async def write(engine: AsyncEngine, fn: WriteFn[T], *, order: str = "", ids: int = 0) -> T:
    """Run `fn(connection)` (synchronous SQL only) in one write transaction; its result.

    On SQLite with a file, `fn` goes to the dedicated writer connection and is committed
    together with the writes that arrive meanwhile (server/storage/writer.py); on PostgreSQL
    it is group-committed too, over the pool (`PooledWriter`); elsewhere (in-memory SQLite)
    it runs in `engine.begin()`. `order`: the key of the rows `fn` locks that another
    transaction may lock too (PostgreSQL runs a group's jobs in this order: `PooledWriter`).
    `ids`: how many new notification ids `fn` will reserve (PostgreSQL reserves a group's
    in one statement: `TxnGroup.ids_wanted`).
    """
    if isinstance(engine, SQLiteEngine) and engine.writer is not None:
        engine.check_not_writing()
        return await engine.writer.submit(fn)
    if engine.dialect.name == "postgresql":
        return await pooled_writer(engine).submit(fn, order=order, ids=ids)
    async with engine.begin() as connection:
        return await connection.run_sync(fn)


# One group-committing writer per PostgreSQL engine (server/storage/pooled_writer.py).
_POOLED: weakref.WeakKeyDictionary[AsyncEngine, PooledWriter] = weakref.WeakKeyDictionary()


def pooled_writer(engine: AsyncEngine) -> PooledWriter:
    """The PostgreSQL engine's group-committing writer (created on first use)."""
    writer = _POOLED.get(engine)
    if writer is None:
        writer = _POOLED[engine] = PooledWriter(engine.begin)
    return writer


async def read(engine: AsyncEngine, fn: WriteFn[T]) -> T:
    """Run `fn(connection)` (synchronous SELECTs only) in one read transaction; its result.

    On SQLite with a file, on a dedicated reader connection: one call into its thread per
    read, where aiosqlite makes one per statement, fetch and cursor close.
    """
    if isinstance(engine, SQLiteEngine) and engine.writer is not None:
        return await engine.writer.read(fn)
    async with engine.connect() as connection:
        return await connection.run_sync(fn)


async def read_once(engine: AsyncEngine, fn: WriteFn[T]) -> T:
    """Run `fn(connection)` (synchronous SELECTs only) as one read; its result.

    On SQLite with a file: one call into a thread of the read pool (storage/readers.py), on a
    read-only connection of the stdlib driver, in one snapshot. Elsewhere (PostgreSQL's
    asyncpg, an in-memory SQLite database) in `engine.connect()` through `run_sync`: each
    statement reads the last committed state (READ COMMITTED).

    Bounded in time (storage/read_budget.py): past its deadline it raises
    `ReadTooExpensive`.
    """
    seconds = read_budget.read_seconds()
    try:
        if isinstance(engine, SQLiteEngine) and engine.readers is not None:
            # The pool counts the read's own time against the request (not its wait).
            lane = account_id_var.get() or ""  # set by the request's authentication
            return await engine.readers.run(fn, seconds=seconds, lane=lane)
        started = read_budget.now()
        try:
            async with engine.connect() as connection:
                if connection.dialect.name != "postgresql":
                    return await connection.run_sync(fn)
                return await connection.run_sync(_timed(fn, seconds))
        finally:
            read_budget.spent(read_budget.now() - started)
    except read_budget.ReadTooExpensive:
        raise read_budget.ReadTooExpensive(read_budget.per_read()) from None
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) == QUERY_CANCELED:
            raise read_budget.ReadTooExpensive(read_budget.per_read()) from None
        raise


# PostgreSQL's SQLSTATE for a statement cancelled by `statement_timeout`.
QUERY_CANCELED = "57014"


def _timed(fn: WriteFn[T], seconds: float) -> WriteFn[T]:
    def run(connection: Connection) -> T:
        # LOCAL: only this read's transaction (the connection goes back to the pool after).
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(seconds * 1000))}")
        return fn(connection)

    return run


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not open transactions itself (its implicit, deferred BEGIN comes before
    # the first write, too late to take the lock up front): `_sqlite_begin` opens them.
    dbapi_connection.isolation_level = None
    # WAL lets readers run while the single writer writes; foreign keys are off by default.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    options = connection.get_execution_options()
    if options.get(_WRITE, False):
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif not options.get(_PER_STATEMENT, False):
        connection.exec_driver_sql("BEGIN")
