"""Concurrent sends, one monday request: the rows of inserts committed together.

The inserts of requests that arrive together are committed in one transaction (group commit,
storage/writer.py). Each insert stamps the rows it sends now with the monday request its own
inline attempt would send (insert.py `_stamp`). Before such a group commits, the stamped rows
of all its inserts are planned again together: the deliverer's planner puts rows that share a
credential into one request, as it does for the rows of one insert (up to its batch size).
Rows whose request changed are stamped again (key, ids, and the lease of the request's first
row, so one attempt can record them all), and each request that now holds the rows of more
than one insert is handed to the deliverer (`share`), which sends it once for all of them
(delivery/shared.py).

Each request still names exactly the rows and the document it sends, so a retry of an
`unknown` one is the very same request with the same key (contract §11), as for any other.
Rows sent with an automation's short-lived token are never joined with others: that token
sends only its own action's rows (contract §10).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from server.notifications.model import (
    DeliveryStatus,
    Notification,
    RequestPlanner,
    RequestSharer,
)
from server.storage.prepared import Prepared
from server.storage.tables import notifications
from server.storage.txn_group import current

_SLOT = "notifications.coalesce"
_t = notifications.c
_RESTAMP = Prepared(
    update(notifications)
    .where(_t.id == bindparam("r_id"), _t.delivery_status == DeliveryStatus.SENDING.value)
    .values(
        delivery_request_key=bindparam("r_key"),
        delivery_request_rows=bindparam("r_rows", type_=_t.delivery_request_rows.type),
        delivery_request_at=bindparam("r_at", type_=_t.delivery_request_at.type),
        lease_owner=bindparam("r_lease"),
        lease_expires_at=bindparam("r_lease_expires_at", type_=_t.lease_expires_at.type),
    )
)


def joinable(row: Notification) -> bool:
    """A row its insert stamped for the inline attempt, with a credential others share."""
    return (
        row.delivery_status == DeliveryStatus.SENDING
        and row.delivery_request_key is not None
        and row.credential_owner != "short_lived"
    )


def offer(
    connection: Connection,
    stored: list[Notification],
    plan: RequestPlanner,
    share: RequestSharer | None,
) -> None:
    """Offer an insert's rows (`stored`: the list it returns, updated in place if they are
    stamped again) to the other inserts of its transaction. Nothing happens for an insert
    run alone, without `share`, or with no joinable row."""
    group = current(connection)
    if group is None or share is None or not any(joinable(row) for row in stored):
        return
    coalescer = group.shared.get(_SLOT)
    if coalescer is None:
        coalescer = group.shared[_SLOT] = _Coalescer(plan, share)
        group.finalizers.append(coalescer.finish)
    coalescer.inserts.append(stored)


class _Coalescer:
    def __init__(self, plan: RequestPlanner, share: RequestSharer) -> None:
        self.plan = plan
        self.share = share
        self.inserts: list[list[Notification]] = []

    def finish(self, connection: Connection) -> None:
        """Plan the joinable rows of every insert together; stamp the rows whose request
        changed; hand over each request shared by several inserts."""
        if len(self.inserts) < 2:
            return
        insert_of: dict[int, int] = {}
        rows: list[Notification] = []
        for index, stored in enumerate(self.inserts):
            for row in stored:
                if joinable(row):
                    insert_of[row.id] = index
                    rows.append(row)
        rows.sort(key=lambda row: row.id)
        by_id = {row.id: row for row in rows}
        restamped: dict[int, Notification] = {}
        shared: list[tuple[list[Notification], int]] = []
        for request in self.plan(rows):
            members = [by_id[row_id] for row_id in request.ids]
            if all(
                row.delivery_request_key == request.key and row.delivery_request_rows == request.ids
                for row in members
            ):
                continue  # exactly as its insert stamped it
            first = members[0]
            at = min(row.delivery_request_at or row.timestamp for row in members)
            joined = [
                replace(
                    row,
                    delivery_request_key=request.key,
                    delivery_request_rows=request.ids,
                    delivery_request_at=at,
                    lease_owner=first.lease_owner,
                    lease_expires_at=first.lease_expires_at,
                )
                for row in members
            ]
            restamped.update((row.id, row) for row in joined)
            participants = len({insert_of[row.id] for row in members})
            if participants > 1:
                shared.append((joined, participants))
        if not restamped:
            return
        _RESTAMP.run_many(connection, [_restamp_values(row) for row in restamped.values()])
        for stored in self.inserts:
            for index, row in enumerate(stored):
                stored[index] = restamped.get(row.id, row)
        # Handed over only once stamped; a group rolled back after this leaves an entry no
        # row names, which the deliverer forgets in time (delivery/shared.py).
        for joined, participants in shared:
            self.share(joined, participants)


def _restamp_values(row: Notification) -> dict[str, Any]:
    return {
        "r_id": row.id,
        "r_key": row.delivery_request_key,
        "r_rows": list(row.delivery_request_rows),
        "r_at": row.delivery_request_at,
        "r_lease": row.lease_owner,
        "r_lease_expires_at": row.lease_expires_at,
    }
