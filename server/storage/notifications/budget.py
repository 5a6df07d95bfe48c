"""The shared monday budget, spent by the send's insert for the requests it stamps.

With several instances on one PostgreSQL, each call to monday spends one unit of its
account's minute budget in `delivery_limits` (storage/limits.py). A send's inline attempt
would spend it in a transaction of its own just before calling monday; the insert spends it
instead, in its transaction, for each request it stamps, so a send writes once before monday
is called (issue 10). What each take said (nothing, or the Block that holds the call back)
is handed to the deliverer once the rows are written (`BudgetTaken`), and its attempt gives
it to the governor instead of taking again (delivery/pretaken.py).

The takes go through `account_calls` (storage/limits.py): the accounts' rows are locked after
every other row the transaction locks and in the order of their account (in a writer group,
together with the group's other account calls, the governor's `learn` among them), so two
writer groups in flight never wait for each other in a cycle (storage/pooled_writer.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.engine import Connection

from server.notifications.model import Block, BudgetTaken, PlannedRequest
from server.storage.limits import account_calls, account_scope, take_call

# A request the insert stamped: its account, the request, where its take is handed.
Stamped = tuple[str, PlannedRequest, BudgetTaken]


def take_budgets(connection: Connection, stamped: Sequence[Stamped], now: datetime) -> None:
    """One call of its account's budget for each stamped request; what each take said is
    handed to the deliverer once taken (in a writer group: in its account pass, after the
    rows are written)."""
    if not stamped:
        return
    calls = [(account_scope(account_id), take_call(now)) for account_id, _, _ in stamped]

    def hand_over(blocks: list[Block | None]) -> None:
        for (_, request, budget), block in zip(stamped, blocks, strict=True):
            budget(tuple(sorted(request.ids)), now, block)

    account_calls(connection, calls, hand_over)
