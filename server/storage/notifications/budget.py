"""The shared monday budget, spent by the send's insert for the requests it stamps.

With several instances on one PostgreSQL, each call to monday spends one unit of its
account's minute budget in `delivery_limits` (storage/limits.py). A send's inline attempt
would spend it in a transaction of its own just before calling monday; the insert spends it
instead, in its transaction, for each request it stamps, so a send writes once before monday
is called (issue 10). What each take said (nothing, or the Block that holds the call back)
is handed to the deliverer once the rows are written (`BudgetTaken`), and its attempt gives
it to the governor instead of taking again (delivery/pretaken.py).

The accounts' rows are locked after every other row the transaction locks and in the order
of their account, so two writer groups in flight never wait for each other in a cycle
(storage/pooled_writer.py, `PooledWriter`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from server.notifications.model import Block, BudgetTaken, PlannedRequest
from server.storage.limits import account_scope, call_in, take_call

# A request the insert stamped: its account, the request, where its take is handed.
Stamped = tuple[str, PlannedRequest, BudgetTaken]
Taken = tuple[BudgetTaken, tuple[int, ...], Block | None]


def take_budgets(connection: Connection, stamped: Sequence[Stamped], now: datetime) -> list[Taken]:
    """One call of its account's budget for each stamped request, accounts in order."""
    taken: list[Taken] = []
    for account_id, request, budget in sorted(stamped, key=lambda entry: entry[0]):
        block: Block | None = call_in(connection, account_scope(account_id), take_call(now))
        taken.append((budget, tuple(sorted(request.ids)), block))
    return taken


def hand_over(taken: Sequence[Taken], now: datetime) -> None:
    """Tell the deliverer what each take said (once the rows it names are written)."""
    for budget, ids, block in taken:
        budget(ids, now, block)
