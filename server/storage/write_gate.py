"""The process' turn to write to a SQLite file: the writer thread's groups and `engine.begin()`
transactions take turns through one `WriteGate`.

A first-come, first-served ticket lock (a plain `threading.Lock` is not fair: under steady
load the writer thread, which takes it again right after each group, would starve a waiting
`engine.begin()`). The writer thread takes it with `hold()`; event-loop code with `enter()`,
which waits in a worker thread only when the gate is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator


class WriteGate:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket whose holder may write now

    def acquire(self) -> None:
        """Block (a thread) until it is this caller's turn."""
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                self._cond.wait()

    def try_acquire(self) -> bool:
        """Take the gate if nobody holds it or waits for it; never blocks."""
        with self._cond:
            if self._serving != self._next:
                return False
            self._next += 1
            return True

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    @contextlib.asynccontextmanager
    async def enter(self) -> AsyncIterator[None]:
        """`hold()` for a coroutine: the event loop never blocks on the gate."""
        if not self.try_acquire():
            waiting = asyncio.get_running_loop().run_in_executor(None, self.acquire)
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                # The turn still comes; give it back then, or every later writer would wait.
                waiting.add_done_callback(lambda _: self.release())
                raise
        try:
            yield
        finally:
            self.release()
