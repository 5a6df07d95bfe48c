"""Write transactions as one function each, and group commit on SQLite.

`await db.write(engine, fn)` runs `fn(connection)` (plain synchronous SQLAlchemy Core on a sync
`Connection`) in one write transaction and returns its result.

- **SQLite**: a dedicated writer connection in its own thread. Each pending `fn` is a job;
  jobs that arrive while a commit is in flight are written together in the next transaction
  (group commit). If one job raises (an `IntegrityError` of an idempotency key, say), that
  transaction is rolled back and every job of it runs again alone, so the error reaches only
  its own caller (`fn` runs SQL only, so running it again is safe). The thread takes group
  after group from the queue by itself, answering each group's callers as it is committed:
  neither a statement nor the start of the next group waits for the event loop (with
  aiosqlite every statement, fetch and cursor close was a round trip to the driver's thread;
  later, a trip through a busy loop between two groups took as long as a group).
  The batch runs under the engine's in-process writer lock (`SQLiteEngine.write_lock`), so
  it takes turns with `engine.begin()` users: still one writer per process.
- **PostgreSQL**: `PooledWriter` (storage/pooled_writer.py), group commit over the pool: the
  jobs that arrive while a group is being committed go into the next group's transaction
  (one `run_sync`, one checkout, one BEGIN/COMMIT), two groups in flight at most; a failing
  job rolls its group back and each of that group's jobs runs again alone.
- An in-memory SQLite database (which a second connection cannot see):
  `engine.begin()` + `run_sync(fn)`, one transaction per call.

`fn` must only run SQL: no network, no waiting, no `await` (it is synchronous), and it must not
depend on being alone in its transaction other than through its own statements. The jobs of
a group share a `TxnGroup` (storage/txn_group.py); a job run alone has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from server.storage.checkpointer import Checkpointer
from server.storage.txn_group import grouped
from server.storage.write_gate import WriteGate

T = TypeVar("T")
WriteFn = Callable[[Connection], T]
# At most this many jobs share one transaction (bounds how long one commit holds the lock).
MAX_BATCH = 64


@dataclass
class Job:
    fn: WriteFn[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop | None = None  # SQLite: the loop to answer on
    # PostgreSQL: where the job goes in its group, by the rows it locks (`PooledWriter`).
    order: str = ""
    # PostgreSQL: how many new row ids the job will reserve (`TxnGroup.ids_wanted`).
    ids: int = 0
    result: Any = None
    error: BaseException | None = None


class _RolledBack(Exception):
    """A lone job failed: its transaction was rolled back, the connection is fine."""


class SQLiteWriter:
    """One writer connection in one thread, with group commit (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        on_connect: Callable[[Any, Any], None],
        on_begin: Callable[[Connection], None],
        write_option: str,
        gate: WriteGate,
    ) -> None:
        sync_url = make_url(url).set(drivername="sqlite+pysqlite")
        self._url = sync_url
        self._on_connect = on_connect
        self._on_begin = on_begin
        self._write_option = write_option
        self._gate = gate
        self._engine: Engine | None = None
        self._connection: Connection | None = None
        # WAL checkpoints run there, not in the writer's commits (storage/checkpointer.py).
        self._checkpointer = Checkpointer(str(sync_url.database))
        # The writer thread and its queue (both under `_cond`).
        self._cond = threading.Condition()
        self._queue: list[Job] = []
        self._submitted = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        # The reader: its own connection and thread (see `read`).
        self._read_engine: Engine | None = None
        self._read_connection: Connection | None = None
        self._read_executor: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()

    @property
    def checkpointer(self) -> Checkpointer:
        return self._checkpointer

    @property
    def submitted(self) -> int:
        """Jobs handed to the writer so far (tests wait on it to line up a group)."""
        return self._submitted

    @property
    def queued(self) -> int:
        """Jobs waiting for the writer thread to take them (the next group)."""
        return len(self._queue)

    # ---------------------------------------------------------------- the event-loop side

    async def submit(self, fn: WriteFn[T]) -> T:
        loop = asyncio.get_running_loop()
        job = Job(fn, loop.create_future(), loop)
        with self._cond:
            self._queue.append(job)
            self._submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="sqlite-writer", daemon=True
                )
                self._thread.start()
                self._checkpointer.start()
            self._cond.notify()
        # A cancelled caller does not stop its job (it may already be in the transaction).
        result: T = await job.future
        return result

    async def read(self, fn: WriteFn[T]) -> T:
        """Run `fn(connection)` in a read transaction (a deferred `BEGIN`, a snapshot) on a
        dedicated reader connection: one call into its thread for the whole read."""
        with self._guard:
            if self._read_executor is None:
                self._read_executor = ThreadPoolExecutor(1, thread_name_prefix="sqlite-reader")
            executor = self._read_executor
        return await asyncio.get_running_loop().run_in_executor(executor, self._run_read, fn)

    # ---------------------------------------------------------------- the writer thread

    def _serve(self) -> None:
        """The writer thread: commit the queued jobs, up to MAX_BATCH a transaction, taking
        the next group as soon as one is committed, each in its turn at the process' write
        gate. Neither the start of a group nor a statement waits for an event loop (a trip
        through a busy loop between two groups took as long as a group); each group's callers
        are answered with one `call_soon_threadsafe` per loop. Ends when `close()` asks and
        the queue is empty."""
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._stopping:
                        self._cond.wait()
                    if not self._queue:
                        return
                    jobs, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    with self._gate.hold():
                        self._run_batch(jobs)
                except Exception as error:
                    fail_all(jobs, error)
                self._checkpointer.committed()
                _answer(jobs)
        finally:
            self._close()

    def _conn(self) -> Connection:
        if self._connection is None:
            engine = self._new_engine()
            self._engine = engine
            connection = engine.connect()
            # The checkpointer's thread checkpoints; this connection's commits only append.
            connection.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA wal_autocheckpoint=0"
            )
            self._connection = connection.execution_options(**{self._write_option: True})
        return self._connection

    def _new_engine(self) -> Engine:
        engine = create_sync_engine(self._url, poolclass=StaticPool)
        event.listen(engine, "connect", self._on_connect)
        event.listen(engine, "begin", self._on_begin)
        return engine

    def _run_read(self, fn: WriteFn[T]) -> T:
        if self._read_connection is None:
            self._read_engine = self._new_engine()
            self._read_connection = self._read_engine.connect()
        connection = self._read_connection
        try:
            with connection.begin() as transaction:
                result = fn(connection)
                transaction.rollback()  # nothing to keep; ends the snapshot
                return result
        except BaseException:
            connection.close()
            self._read_connection = None
            raise

    def _run_batch(self, jobs: list[Job]) -> None:
        """All `jobs` in one transaction; if one of them fails, that transaction is rolled
        back and each job runs again alone (its own transaction), so one job's error still
        touches only that job. Errors are rare (a taken Idempotency-Key, a moved revision),
        so this costs less than a SAVEPOINT and its RELEASE around every job."""
        if len(jobs) > 1:
            failed = False
            try:
                connection = self._conn()
                with connection.begin() as transaction, grouped(connection) as group:
                    try:
                        for job in jobs:
                            job.result = job.fn(connection)
                        group.finish(connection)
                    except Exception:
                        failed = True
                        transaction.rollback()
            except BaseException:
                self._close()  # COMMIT (or ROLLBACK) itself failed: start over next time
                raise
            if not failed:
                return
            for job in jobs:
                job.result = None
        for job in jobs:
            self._run_alone(job)

    def _run_alone(self, job: Job) -> None:
        connection = self._conn()
        try:
            with connection.begin():
                try:
                    job.result = job.fn(connection)
                except Exception as error:
                    # Its error rolls back the transaction; the connection is fine.
                    job.error = error
                    raise _RolledBack from error
        except _RolledBack:
            return
        except BaseException:
            # The transaction is gone (COMMIT failed): the connection may be in any
            # state, so start over with a fresh one next time.
            self._close()
            raise

    def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def close(self) -> None:
        """Close the writer connection and stop its thread (engine disposal)."""
        with self._cond:
            thread = self._thread
            self._stopping = True
            self._cond.notify()
        if thread is not None:
            thread.join()  # it commits what is queued, then closes its connection
        self._checkpointer.close()
        with self._cond:
            self._thread = None
            self._stopping = False
        with self._guard:
            reader, self._read_executor = self._read_executor, None
        if reader is not None:
            reader.submit(self._close_reader).result()
            reader.shutdown(wait=True)

    def _close_reader(self) -> None:
        if self._read_connection is not None:
            with contextlib.suppress(Exception):
                self._read_connection.close()
            self._read_connection = None
        if self._read_engine is not None:
            self._read_engine.dispose()
            self._read_engine = None


def fail_all(jobs: list[Job], error: Exception) -> None:
    """A group that failed as a whole: each job without its own error gets the group's."""
    for job in jobs:
        job.error = job.error or error


def _answer(jobs: list[Job]) -> None:
    """From the writer thread: settle `jobs` on their loops (unless one is gone)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Job]] = {}
    for job in jobs:
        assert job.loop is not None
        by_loop.setdefault(job.loop, []).append(job)
    for loop, answered in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle, answered)
        except RuntimeError:
            pass  # the loop is closed: nobody is waiting for these answers any more


def settle(jobs: list[Job]) -> None:
    """Answer each job's caller (a cancelled caller's future is already done)."""
    for job in jobs:
        if job.future.done():
            continue
        if job.error is not None:
            job.future.set_exception(job.error)
        else:
            job.future.set_result(job.result)
