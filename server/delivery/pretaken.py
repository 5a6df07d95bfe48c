"""Shared-budget takes the send's insert made for the requests it stamped (PostgreSQL).

With several instances on one PostgreSQL, every call to monday spends one unit of the
account's shared minute budget (storage/limits.py). For a request the send's insert stamps
for its inline attempt, that take is made inside the insert's transaction, so the send writes
once before monday is called; the insert hands its result here and the attempt gives it to
the governor (`Governor.acquire(pretaken=...)`) instead of taking again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from server.notifications.model import Block

# Emptied past this many (takes of inserts rolled back, or requests never attempted).
MAX_PRETAKEN = 4096
Taken = tuple[datetime, Block | None]


@dataclass
class PretakenBudgets:
    _taken: dict[tuple[int, ...], Taken] = field(default_factory=dict)

    def put(self, ids: tuple[int, ...], taken_at: datetime, block: Block | None) -> None:
        """Called in the insert's transaction, by the writer (a `BudgetTaken`)."""
        if len(self._taken) > MAX_PRETAKEN:
            self._taken.clear()  # a lost entry only costs the attempt a take of its own
        self._taken[ids] = (taken_at, block)

    def pop(self, ids: tuple[int, ...]) -> Taken | None:
        """The take made for the request of exactly these rows (ascending ids), once."""
        return self._taken.pop(ids, None)
