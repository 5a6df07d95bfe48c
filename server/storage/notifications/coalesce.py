"""Concurrent sends, one monday request: the inserts of one writer group, planned together.

The inserts of requests that arrive together are committed in one transaction (group commit,
storage/writer.py). Inside such a group an insert does everything that may fail on its own
(the revision check, the Idempotency-Key reservation, its ids, the §12 gate's decision) and
leaves its rows here; after the group's last job and before its COMMIT, the rows every insert
sends now are planned together by the deliverer's planner, which puts rows that share a
credential into one request as it does for the rows of one insert (up to its batch size).
Each request's rows are stamped `sending` with its key, ids and one lease (its first row's,
so one attempt can record them all), every row and audit entry of the group is written,
and each request holding the rows of more than one insert is handed to the deliverer
(`share`), which sends it once for all of them (delivery/shared.py).

Each request still names exactly the rows and the document it sends, so a retry of an
`unknown` one is the very same request with the same key (contract §11), as for any other.
Rows sent with an automation's short-lived token are never joined with others: that token
sends only its own action's rows (contract §10). If anything here fails, the group is rolled
back and each insert runs again alone, planning and writing only its own rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from server.clock import utcnow
from server.notifications.model import (
    BudgetTaken,
    DeliveryStatus,
    Notification,
    PlannedRequest,
    RequestPlanner,
    RequestSharer,
    transition,
)
from server.sender import SHORT_LIVED
from server.storage.notifications.budget import Stamped, take_budgets
from server.storage.txn_group import TxnGroup

_SLOT = "notifications.coalesce"
_SENDING = transition(DeliveryStatus.QUEUED, DeliveryStatus.SENDING).value
Values = dict[str, Any]
WriteValues = Callable[[Connection, Sequence[Values], Sequence[Values]], None]
StoredRow = Callable[[Values], Notification]


@dataclass
class PendingInsert:
    """One insert's rows, written by the group's finalizer."""

    values: list[Values]  # the rows' column values, in the insert's order
    audit_rows: list[Values]
    cleared: list[Notification]  # the rows its inline attempt sends now (unstamped)
    plan: RequestPlanner
    share: RequestSharer
    budget: BudgetTaken | None = None  # where its requests' shared-budget takes go
    stored: list[Notification] = field(default_factory=list)  # what the insert returns


def stamp(
    by_id: Mapping[int, Values],
    request: PlannedRequest,
    at: datetime,
    lease: tuple[str | None, datetime | None] | None = None,
) -> None:
    """Give the rows of `request` (values by id) the values of `sending` in it (what
    `mark_sending_request` does before a later attempt): its key was computed from its rows
    as they will be stored. `lease`: one lease for all of them (rows of several inserts)."""
    rows = list(request.ids)
    for row_id in rows:
        value = by_id[row_id]
        value.update(
            delivery_status=_SENDING,
            attempts=1,
            delivery_request_key=request.key,
            delivery_request_rows=rows,
            delivery_request_at=at,
        )
        if lease is not None:
            value.update(lease_owner=lease[0], lease_expires_at=lease[1])


def defer_insert(
    group: TxnGroup, pending: PendingInsert, *, write: WriteValues, stored_row: StoredRow
) -> list[Notification]:
    """Leave an insert's rows to the group's finalizer; the list it returns is filled with
    the rows as stored before the COMMIT (the caller reads it only after)."""
    coalescer = group.shared.get(_SLOT)
    if coalescer is None:
        coalescer = group.shared[_SLOT] = _Coalescer(write, stored_row)
        group.finalizers.append(coalescer.finish)
    coalescer.pending.append(pending)
    return pending.stored


def _budgeted(
    requests: Sequence[PlannedRequest], by_id: Mapping[int, Values], budget: BudgetTaken | None
) -> list[Stamped]:
    if budget is None:
        return []
    return [(by_id[request.ids[0]]["account_id"], request, budget) for request in requests]


def _joinable(row: Notification) -> bool:
    return row.credential_owner != SHORT_LIVED


class _Coalescer:
    def __init__(self, write: WriteValues, stored_row: StoredRow) -> None:
        self.write = write
        self.stored_row = stored_row
        self.pending: list[PendingInsert] = []

    def finish(self, connection: Connection) -> None:
        """Plan, stamp and write the rows of every insert of the group; hand over each
        request shared by several inserts."""
        by_id: dict[int, Values] = {}
        stamped: list[Stamped] = []
        insert_of: dict[int, int] = {}
        joinable: list[Notification] = []
        first = self.pending[0]
        for index, pending in enumerate(self.pending):
            by_id.update((value["id"], value) for value in pending.values)
            # One deliverer sends a shared request: an insert planned by another (two apps
            # on one engine) is planned alone, as are short-lived-token rows.
            ours = pending.plan == first.plan and pending.share == first.share
            alone = [row for row in pending.cleared if not (ours and _joinable(row))]
            if alone:  # planned as its own insert would plan them
                requests = pending.plan(alone)
                self._stamp(requests, by_id)
                stamped += _budgeted(requests, by_id, pending.budget)
            for row in pending.cleared:
                if ours and _joinable(row):
                    insert_of[row.id] = index
                    joinable.append(row)
        shared: list[tuple[PlannedRequest, int]] = []
        if joinable:
            joinable.sort(key=lambda row: row.id)
            for request in first.plan(joinable):
                self._stamp([request], by_id)
                stamped += _budgeted([request], by_id, first.budget)
                participants = len({insert_of[row_id] for row_id in request.ids})
                if participants > 1:
                    shared.append((request, participants))
        self.write(
            connection,
            [value for pending in self.pending for value in pending.values],
            [audit for pending in self.pending for audit in pending.audit_rows],
        )
        rows: dict[int, Notification] = {}
        for pending in self.pending:
            pending.stored[:] = [self.stored_row(value) for value in pending.values]
            rows.update((row.id, row) for row in pending.stored)
        # Handed over only once written; a group rolled back after this leaves an entry no
        # row names, which the deliverer forgets in time (delivery/shared.py).
        for request, participants in shared:
            first.share([rows[row_id] for row_id in request.ids], participants)
        # The accounts' budgets last (in the group's account pass), as `insert_rows` does.
        take_budgets(connection, stamped, utcnow())

    @staticmethod
    def _stamp(requests: Sequence[PlannedRequest], by_id: Mapping[int, Values]) -> None:
        for request in requests:
            first = by_id[request.ids[0]]
            lease = (first["lease_owner"], first["lease_expires_at"])
            stamp(by_id, request, first["timestamp"], lease)
