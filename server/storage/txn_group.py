"""What the jobs of one group-committed write transaction share (storage/writer.py).

When several `write()` jobs are committed in one transaction, the writer opens a `TxnGroup`
on the connection for that transaction. A job may leave state in `shared` for the jobs after
it and register a finalizer, which runs once after every job of the group succeeded and
before the COMMIT, in the same transaction. If a job or a finalizer fails, the group is
rolled back and each job runs again alone, without a group (`current()` is None then), so a
job must work the same with or without one. The send path's inserts use this to send the
rows of concurrent requests to monday as one request (storage/notifications/coalesce.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.engine import Connection

Finalizer = Callable[[Connection], None]
_KEY = "monday_notify.txn_group"


class TxnGroup:
    __slots__ = ("finalizers", "ids_wanted", "last", "shared")

    def __init__(self, ids_wanted: int = 0) -> None:
        self.finalizers: list[Finalizer] = []
        # Run after every finalizer (a finalizer may still add to `finalizers` while they
        # run): the pass over the accounts' limit rows, which every group locks last
        # (storage/limits.py `account_calls`).
        self.last: list[Finalizer] = []
        self.shared: dict[str, Any] = {}
        # New row ids the group's jobs said they will reserve (PostgreSQL: the first job's
        # reservation takes them all in one statement; storage/notifications/insert.py).
        self.ids_wanted = ids_wanted

    def finish(self, connection: Connection) -> None:
        """Run the finalizers, then the `last` ones (after the last job, before the COMMIT)."""
        for finalizer in self.finalizers:
            finalizer(connection)
        for finalizer in self.last:
            finalizer(connection)


def current(connection: Connection) -> TxnGroup | None:
    """The group of the transaction `connection` is in, if it is a group's."""
    group: TxnGroup | None = connection.info.get(_KEY)
    return group


@contextlib.contextmanager
def grouped(connection: Connection, *, ids_wanted: int = 0) -> Iterator[TxnGroup]:
    """Open a group for the jobs run on `connection` inside this block."""
    group = TxnGroup(ids_wanted)
    connection.info[_KEY] = group
    try:
        yield group
    finally:
        connection.info.pop(_KEY, None)
