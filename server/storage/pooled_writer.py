"""Group commit over a connection pool (PostgreSQL): `db.write` there (storage/writer.py
describes the contract of a `write()` job; this is its PostgreSQL side)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from server.storage.txn_group import grouped
from server.storage.writer import MAX_BATCH, Job, T, WriteFn, fail_all, settle


class _BatchFailed(Exception):
    """A job of a group failed: roll the group's transaction back, run each job alone."""


class PooledWriter:
    """Group commit over a connection pool (PostgreSQL): the `write()` jobs that arrive
    while a group is being committed go into the next group's transaction together, run
    by one `run_sync` call (one checkout, one BEGIN/COMMIT and no per-job round trips of
    their own). As on SQLite, a failing job rolls its group back and every job of that
    group runs again alone, so an error reaches only its own caller. Up to `lanes` groups
    are in flight at once (the pool has more connections than one writer would use).

    Two groups in flight at once may want rows the other has locked (a user's send-rate row,
    an Idempotency-Key). Each group runs its jobs in the order of their `order` (the key
    of the rows they lock), so every transaction locks such rows in one global order and
    none waits in a cycle (PostgreSQL would break a deadlock only after `deadlock_timeout`,
    rolling a whole group back).
    """

    def __init__(self, begin: Callable[[], Any], *, lanes: int = 2) -> None:
        self._begin = begin  # engine.begin: an async context manager of an AsyncConnection
        self._lanes = lanes
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _PoolState] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def queued(self) -> int:
        """Jobs waiting for a lane to take them (the next groups), on every loop."""
        return sum(len(state.queue) for state in self._states.values())

    async def submit(self, fn: WriteFn[T], *, order: str = "", ids: int = 0) -> T:
        loop = asyncio.get_running_loop()
        state = self._states.setdefault(loop, _PoolState())
        job = Job(fn, loop.create_future(), order=order, ids=ids)
        state.queue.append(job)
        if state.running < self._lanes:
            state.running += 1
            state.tasks.add(loop.create_task(self._drain(state)))
        result: T = await job.future
        return result

    async def _drain(self, state: _PoolState) -> None:
        try:
            while state.queue:
                jobs, state.queue = state.queue[:MAX_BATCH], state.queue[MAX_BATCH:]
                jobs.sort(key=_lock_order)
                try:
                    await self._run_group(jobs)
                except Exception as error:
                    fail_all(jobs, error)
                settle(jobs)
        except asyncio.CancelledError:
            for job in state.queue:
                job.future.cancel()
            state.queue = []
            raise
        finally:
            state.running -= 1
            task = asyncio.current_task()
            if task is not None:
                state.tasks.discard(task)

    async def _run_group(self, jobs: list[Job]) -> None:
        if len(jobs) > 1:
            try:
                async with self._begin() as connection:
                    await connection.run_sync(_run_all, jobs)
                return
            except _BatchFailed:
                for job in jobs:
                    job.result = None
        for job in jobs:
            try:
                async with self._begin() as connection:
                    job.result = await connection.run_sync(job.fn)
            except Exception as error:
                job.error = error


@dataclass
class _PoolState:
    queue: list[Job] = field(default_factory=list)
    running: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _run_all(connection: Connection, jobs: list[Job]) -> None:
    with grouped(connection, ids_wanted=sum(job.ids for job in jobs)) as group:
        try:
            for job in jobs:
                job.result = job.fn(connection)
            group.finish(connection)
        except Exception as error:
            raise _BatchFailed from error


def _lock_order(job: Job) -> str:
    return job.order
