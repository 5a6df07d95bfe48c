"""How much database time a ledger read may take, alone and with the rest of its request.

Any caller with a session token can send a filter that passes every size limit (500 rules,
16 levels, 10,000 values) and still costs seconds: 500 `_icontains` rules over 25,000 rows
took 4.6 s on SQLite, and a GraphQL document runs up to 30 such reads. Meanwhile the two
reader threads (storage/readers.py) serve every account, so one caller's read stalled every
other account's ledger. No limit on the shape of a filter can bound that (the cost grows
with the rows it scans), so the time itself is bounded:

- a read stops after `LEDGER_READ_SECONDS` (a setting, 2 s by default);
- the reads of one HTTP request (a GraphQL document's aliases) share twice that
  (`start_request`, called by the request middleware); a read past it does not start. A
  realtime connection's reads have the per-read bound only (the connection lives for hours).

SQLite: a progress handler on each reader connection looks at the read's deadline every
`PROGRESS_STEPS` virtual-machine instructions and interrupts the statement past it.
PostgreSQL: `SET LOCAL statement_timeout` in the read's transaction. Either way the caller
gets `ReadTooExpensive`, which the ledger answers as 400 `QUERY_TOO_EXPENSIVE`.
"""

from __future__ import annotations

import math
import time
from contextvars import ContextVar
from dataclasses import dataclass

# A ledger page with its counts takes milliseconds at 100,000 rows (docs/benchmarks.md):
# this is hundreds of times that, so only a read built to be expensive meets it.
DEFAULT_READ_SECONDS = 2.0
# One request's reads together: this many times one read's bound.
READS_PER_REQUEST = 2
# ~0.1-1 ms of SQLite's work between two looks at the clock (each look is one Python call).
PROGRESS_STEPS = 20_000


class ReadTooExpensive(Exception):
    """The read was stopped at its deadline (or not started: the request's time is spent)."""

    def __init__(self, per_read: float | None = None) -> None:
        super().__init__(per_read)
        # The bound that stopped it (None where it is not known: a reader thread, which does
        # not run in the request's context; `read_once` fills it in).
        self.per_read = per_read


@dataclass
class RequestBudget:
    per_read: float
    left: float  # for all the request's reads together (inf: no total)


_request: ContextVar[RequestBudget | None] = ContextVar("read_budget", default=None)


def start_request(per_read: float, *, whole_request: bool = True) -> None:
    """Give the current request (its asyncio context, and the tasks it starts) its own time
    for reads; `whole_request=False`: only each read's bound (a realtime connection)."""
    left = per_read * READS_PER_REQUEST if whole_request else math.inf
    _request.set(RequestBudget(per_read, left))


def read_seconds() -> float:
    """How long the next read may run; `ReadTooExpensive` if its request has no time left."""
    budget = _request.get()
    if budget is None:
        return DEFAULT_READ_SECONDS
    if budget.left <= 0:
        raise ReadTooExpensive(budget.per_read)
    return min(budget.per_read, budget.left)


def per_read() -> float:
    budget = _request.get()
    return DEFAULT_READ_SECONDS if budget is None else budget.per_read


def spent(seconds: float) -> None:
    """Count a finished (or stopped) read against its request."""
    budget = _request.get()
    if budget is not None:
        budget.left -= seconds


def now() -> float:
    return time.monotonic()
