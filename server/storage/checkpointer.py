"""SQLite's WAL checkpoints, off the writer's path.

In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into the
database file and syncs both to disk. By default the connection whose commit takes the WAL
past 1,000 pages runs that checkpoint inside its commit: that was the writer thread, so every
~100 groups one group took 5-7 ms instead of well under one, and every request in it waited
(at a steady 1,000 sends a second, ~50 such groups in 4 s set the p90; docs/benchmarks.md).

So the writer's connection does not checkpoint (`PRAGMA wal_autocheckpoint=0`), and this
thread, on a connection of its own, runs a PASSIVE checkpoint whenever the writer has
committed since the last one, at most every `interval` seconds. PASSIVE never waits for a
reader or the writer: the writer goes on appending while pages are copied, and the WAL starts
over from its beginning once a checkpoint has caught up. sqlite3 releases the GIL while the
checkpoint runs. A failed checkpoint is logged and tried again at the next turn.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading

log = logging.getLogger(__name__)

# Seconds between two checkpoints while the writer commits (~10 checkpoints a second at
# most; an idle database is not touched).
INTERVAL = 0.1


class Checkpointer:
    def __init__(self, path: str, *, interval: float = INTERVAL) -> None:
        self._path = path
        self._interval = interval
        self._commits = 0  # bumped by the writer thread after each commit
        self._checkpointed = 0  # the commit count when a checkpoint last caught up
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        # The last checkpoint's answer: (busy, WAL frames, frames checkpointed).
        self.last: tuple[int, int, int] | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def committed(self) -> None:
        """From the writer thread, after a commit: there is something to checkpoint."""
        self._commits += 1

    def start(self) -> None:
        with self._guard:
            if self._thread is None:
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-checkpointer", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Stop the thread (the last connection to close checkpoints what is left)."""
        with self._guard:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        try:
            connection.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(self._interval):
                commits = self._commits
                if commits == self._checkpointed:
                    continue
                try:
                    row = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as error:
                    log.warning("a WAL checkpoint failed (tried again shortly): %s", error)
                    continue
                self.last = (int(row[0]), int(row[1]), int(row[2]))
                if self.last[2] >= self.last[1]:
                    # Caught up. Otherwise (a reader's snapshot still needs old pages) the
                    # next turn tries again even if nothing new was committed.
                    self._checkpointed = commits
        finally:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
