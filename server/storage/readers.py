"""SQLite's read pool: a whole read as one call into a reader thread.

With aiosqlite every statement is four round trips between the event loop and the driver's
thread (cursor, execute, fetch, close) and returning the connection to the pool one more: a
ledger page with its `filter_count` was nine, and under load each one waits for a thread
wake-up and a turn of the event loop. Here a read is one synchronous function, `fn(connection)`
(plain SQLAlchemy Core on a sync `Connection` of the stdlib `sqlite3` driver), run in one
call into a reader thread: one hop there and one back, whatever the number of statements.

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
import collections
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import SingletonThreadPool

from server.storage.read_budget import PROGRESS_STEPS, ReadTooExpensive, spent

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
        self._threads: _Threads | None = None
        self._guard = threading.Lock()

    async def run(self, fn: ReadFn[T], *, seconds: float = math.inf, lane: str = "") -> T:
        """`fn(connection)` in one snapshot, in one call into a reader thread; its result.
        Interrupted `seconds` after it starts (`ReadTooExpensive`): the wait for a thread is
        not counted, so a cheap read queued behind expensive ones is not cut short. `lane`
        (an account): its reads take at most `size - 1` threads at once (`_Threads`)."""
        with self._guard:
            if self._threads is None:
                self._engine = self._new_engine()
                self._threads = _Threads(self._size, self._engine)
            threads = self._threads
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[T] = loop.create_future()
        ran = [0.0]  # how long the read itself took, written by the thread
        threads.submit((loop, answer, fn, seconds, lane, ran))
        try:
            return await answer
        finally:
            spent(ran[0])  # the request's budget counts the read, not its wait for a thread

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
        event.listen(engine, "connect", _watch_deadline)
        event.listen(engine, "begin", _begin)
        return engine

    def close(self) -> None:
        """Stop the threads and close their connections (engine disposal)."""
        with self._guard:
            threads, self._threads = self._threads, None
            engine, self._engine = self._engine, None
        if threads is not None:
            threads.stop()
        if engine is not None:
            engine.dispose()


# (loop, answer, fn, seconds it may run, lane, [seconds it ran])
Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", ReadFn[Any], float, str, list[float]]


class _Threads:
    """The reader threads. A job goes to the thread that became idle last (its CPU caches and
    its connection's page cache are the warm ones; handing jobs round the threads in turn cost
    a fifth more CPU per read), or waits in its lane's backlog. Each answer goes back to the
    waiting loop in one `call_soon_threadsafe`. (`run_in_executor` did the same with a
    concurrent Future chained to an asyncio one and a lock-and-condition queue: ~15 µs more
    per read.)

    Lanes (one per account): a lane runs on at most `size - 1` threads at once, and waiting
    lanes take turns for a free thread. Without them one caller's expensive reads held every
    thread and every other account's ledger waited behind them (a 5-row page took 1.8 s)."""

    def __init__(self, size: int, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._stopped = False
        self._per_lane = max(1, size - 1)
        self._running: collections.Counter[str] = collections.Counter()
        self._waiting: dict[str, collections.deque[Job]] = {}  # lane -> its jobs, in turn order
        self._inboxes: list[queue.SimpleQueue[Job | None]] = [
            queue.SimpleQueue() for _ in range(size)
        ]
        self._idle = list(self._inboxes)  # the last one is the next to work
        self._threads = [
            threading.Thread(target=self._work, args=(inbox,), name=f"sqlite-read-{i}")
            for i, inbox in enumerate(self._inboxes)
        ]
        for thread in self._threads:
            thread.daemon = True  # a reader left running never holds the process open
            thread.start()

    def submit(self, job: Job) -> None:
        lane = job[4]
        with self._lock:  # put under the lock: never after `stop`'s end-of-work marks
            if self._stopped:
                raise RuntimeError("the SQLite read pool is closed")
            if self._idle and self._running[lane] < self._per_lane and lane not in self._waiting:
                self._running[lane] += 1
                self._idle.pop().put(job)
            else:
                self._waiting.setdefault(lane, collections.deque()).append(job)

    def _next(self) -> Job | None:
        """The next job a free thread takes (under the lock): the first waiting lane, in turn,
        that is under its share; that lane goes to the back of the turn order."""
        for lane in list(self._waiting):
            if self._running[lane] >= self._per_lane:
                continue
            jobs = self._waiting.pop(lane)
            job = jobs.popleft()
            if jobs:
                self._waiting[lane] = jobs  # re-inserted: now last in the turn order
            self._running[lane] += 1
            return job
        return None

    def _work(self, inbox: queue.SimpleQueue[Job | None]) -> None:
        job = inbox.get()
        while job is not None:
            settle = _answer(self._engine, job)
            # Idle (or on the next waiting job) before the caller hears back: its next read
            # then comes to this thread, not to a cold one.
            with self._lock:
                self._running[job[4]] -= 1
                if not self._running[job[4]]:
                    del self._running[job[4]]
                following = self._next()
                if following is None:
                    self._idle.append(inbox)
            settle()
            job = following if following is not None else inbox.get()

    def stop(self) -> None:
        """End every thread once its job is done (no job is submitted any more); wait."""
        with self._lock:
            self._stopped = True
            for inbox in self._inboxes:
                inbox.put(None)
        for thread in self._threads:
            thread.join()


def _answer(engine: Engine, job: Job) -> Callable[[], None]:
    """Run `job`'s read; what hands its result (or error) to the waiting loop."""
    loop, answer, fn, seconds, _lane, ran = job
    result: Any = None
    error: BaseException | None = None
    started = time.monotonic()
    try:
        result = _run(engine, fn, started + seconds)
    except BaseException as exc:  # handed to the caller, whatever it is
        error = exc
    ran[0] = time.monotonic() - started

    def settle() -> None:
        try:
            loop.call_soon_threadsafe(_settle, answer, result, error)
        except RuntimeError:
            pass  # the caller's loop is closed: nobody is waiting any more

    return settle


def _settle(answer: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if answer.cancelled():  # the caller gave up waiting (its task was cancelled)
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)


# The deadline of the read the current reader thread runs (storage/read_budget.py).
_current = threading.local()


def _run(engine: Engine, fn: ReadFn[T], deadline: float) -> T:
    _current.deadline = deadline
    try:
        with engine.connect() as connection, connection.begin() as transaction:
            result = fn(connection)
            transaction.rollback()  # nothing to keep; ends the snapshot
            return result
    except (OperationalError, sqlite3.OperationalError) as error:
        # SQLAlchemy wraps the driver's error; a read at the raw cursor
        # (storage/compiled_reads.py) raises it as it is.
        if time.monotonic() > deadline and "interrupted" in str(error):
            raise ReadTooExpensive() from None  # stopped by `_past_deadline`
        raise
    finally:
        _current.deadline = math.inf


def _past_deadline() -> bool:
    # A true answer makes SQLite stop the statement ("interrupted").
    return time.monotonic() > getattr(_current, "deadline", math.inf)


def _watch_deadline(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.set_progress_handler(_past_deadline, PROGRESS_STEPS)


def _query_only(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _begin(connection: Connection) -> None:
    # The driver opens no transaction itself (isolation_level None, set by on_connect). Sent
    # at the driver's connection: through `exec_driver_sql` it cost a whole SQLAlchemy
    # execution (context, cursor result) on every read.
    connection.connection.driver_connection.execute("BEGIN")  # type: ignore[union-attr]
