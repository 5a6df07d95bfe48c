"""The outbox claim's order (contract §11: accounts are served fairly): one account's backlog
never delays another account's due rows by more than one delivery batch.

The worker's claim takes rows due for a first or later attempt and `unknown` rows due for a
retry of their request (resend.py) in one ranking, so neither kind of backlog, of any
account, holds back the other kind or another account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, case, func, select

from server.notifications.model import DeliveryStatus
from server.storage.tables import notifications

t = notifications.c


# A claim ranks this many times `limit` candidates, so that a claim racing another one (on
# another instance) still finds enough rows the other has not locked.
CANDIDATES_PER_ROW = 4


def fair_candidates(due: Any, limit: int) -> Select[Any]:
    """Up to `limit * CANDIDATES_PER_ROW` due row ids in claim order: round robin over
    accounts, by each row's place in its own account's queue (due longest first: a retry
    since its `next_attempt_at`, a row never tried since it was written), then by that age.
    The same order on both engines.

    An account has two queues: rows to send (`queued`, `retry_scheduled`) and `unknown` rows
    to ask again with their first request. Each has its own places, so an account's 1st
    resend ranks with its 1st send and every other account's 1st row: a backlog of either
    kind cannot starve the other (a resend must go out within its 25-minute window, so it
    does not wait behind its own account's send backlog either).

    Only ids, without locks: PostgreSQL allows no `FOR UPDATE` where a window function is,
    and a join of the ranking back to the table lets a planner with stale statistics pick a
    quadratic plan. The caller locks the chosen ids by primary key. The cost is one pass
    over the due rows per claim; due rows are few unless delivery is behind
    (`queue_oldest_due_seconds`).
    """
    due_since = func.coalesce(t.next_attempt_at, t.timestamp)
    resend = case((t.delivery_status == DeliveryStatus.UNKNOWN.value, 1), else_=0)
    place = func.row_number().over(partition_by=(t.account_id, resend), order_by=(due_since, t.id))
    ranked = (
        select(t.id.label("row_id"), place.label("place"), due_since.label("since"))
        .where(due)
        .subquery("ranked")
    )
    return (
        select(ranked.c.row_id)
        .order_by(ranked.c.place, ranked.c.since, ranked.c.row_id)
        .limit(limit * CANDIDATES_PER_ROW)
    )
