"""Rows inserted for the inline attempt, moved to `sending` in the insert's own transaction
and stamped with the monday request they go out in (contract §11: its rows and
Idempotency-Key), so the attempt needs no write of its own before monday is called."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.engine import Connection

from server.notifications.model import DeliveryStatus, Notification, RequestPlanner, transition
from server.storage.tables import notifications

t = notifications.c


def stamp_planned(
    connection: Connection,
    stored: list[Notification],
    plan: RequestPlanner,
    lease_owner: str,
    now: datetime,
) -> list[Notification]:
    """Move the leased rows to `sending` for the requests `plan` makes of them (what
    `mark_sending_request` does before a later attempt), inside the insert's transaction."""
    leased = [row for row in stored if row.lease_owner == lease_owner]
    sending = transition(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
    by_id = {row.id: row for row in stored}
    for request in plan(leased) if leased else ():
        ids = list(request.ids)
        connection.execute(
            update(notifications)
            .where(t.id.in_(ids), t.lease_owner == lease_owner)
            .values(
                delivery_status=sending.value,
                attempts=t.attempts + 1,
                delivery_request_key=request.key,
                delivery_request_rows=ids,
                delivery_request_at=now,
            )
        )
        for row_id in ids:
            by_id[row_id] = replace(
                by_id[row_id],
                delivery_status=sending,
                attempts=by_id[row_id].attempts + 1,
                delivery_request_key=request.key,
                delivery_request_rows=request.ids,
                delivery_request_at=now,
            )
    return [by_id[row.id] for row in stored]
