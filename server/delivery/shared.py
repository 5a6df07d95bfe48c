"""One monday request for the inline attempts of several sends.

When the writer commits the inserts of concurrent sends together, rows that share a
credential are stamped as one request (storage/notifications/coalesce.py), which is handed
over here. Each send's inline attempt then finds its rows to be part of that request: the
first to arrive starts one task that sends the whole request and records every outcome; each
send waits for it and answers with its own rows. The wait is shielded, so a send that goes
away does not cancel the call the others wait for.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from server.notifications.model import Notification

log = logging.getLogger(__name__)

# Requests handed over and not yet joined by all their sends. An entry stays only when its
# transaction was rolled back after the hand-over (no row names it); past this many, the
# oldest is forgotten.
MAX_SHARED = 4096

SendRequest = Callable[[list[Notification]], Awaitable[list[Notification]]]


@dataclass
class _Shared:
    rows: list[Notification]
    participants: int
    joined: int = 0
    task: asyncio.Task[list[Notification]] | None = None


class SharedRequests:
    def __init__(self, limit: int = MAX_SHARED) -> None:
        self._limit = limit
        self._lock = threading.Lock()  # `add` runs in the writer's thread
        self._requests: dict[str, _Shared] = {}
        self._tasks: set[asyncio.Task[list[Notification]]] = set()

    def __len__(self) -> int:
        return len(self._requests)

    def add(self, rows: Sequence[Notification], participants: int) -> None:
        """`rows`: one stamped request holding the rows of `participants` sends."""
        key = rows[0].delivery_request_key
        assert key is not None, "a stamped request"
        with self._lock:
            if len(self._requests) >= self._limit:
                self._requests.pop(next(iter(self._requests)))
            self._requests[key] = _Shared(list(rows), participants)

    @staticmethod
    def is_part(rows: Sequence[Notification]) -> bool:
        """Whether `rows`, one send's rows of one stamped request, are only part of it."""
        return len(rows[0].delivery_request_rows) != len(rows)

    async def join(self, rows: Sequence[Notification], send: SendRequest) -> list[Notification]:
        """Wait for the request `rows` are part of to be sent (`send(all its rows)`, started
        by the first send to arrive); `rows` as recorded. [] if the request is not known
        here: its rows keep their lease, and the worker retries them, as the same request,
        when it expires."""
        key = rows[0].delivery_request_key
        assert key is not None, "a stamped request"
        with self._lock:
            shared = self._requests.get(key)
            if shared is not None:
                shared.joined += 1
                if shared.joined >= shared.participants:
                    del self._requests[key]
        if shared is None:
            log.warning("a coalesced monday request was not found; its rows wait for the worker")
            return []
        task = shared.task
        if task is None:
            task = shared.task = asyncio.ensure_future(send(shared.rows))
            self._tasks.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._tasks.discard)
        recorded = await asyncio.shield(task)
        ids = {row.id for row in rows}
        return [row for row in recorded if row.id in ids]
