"""Statements of the per-user send limit's shaping (notifications/send_limit.py, §11).

`waiting` counts a user's rows not yet sent (the backlog the limit bounds); `pace` gives rows
a send wrote (leased to it) the moments the limit chose for them, and releases them to the
delivery worker, which claims each once its `next_attempt_at` has come.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications.changes import OnChange, RowChange, ignore
from server.notifications.model import WAITING, DeliveryStatus
from server.storage.db import read, write
from server.storage.tables import notifications

t = notifications.c
_WAITING = [s.value for s in WAITING]


def waiting_rows(connection: Connection, account_id: str, user_id: str) -> int:
    """`SqlSendBacklog.waiting` in the caller's transaction (the send's insert, PostgreSQL)."""
    statement = select(func.count()).where(
        t.account_id == account_id, t.sender == user_id, t.delivery_status.in_(_WAITING)
    )
    return int(connection.execute(statement).scalar_one())


class SqlSendBacklog:
    def __init__(self, engine: AsyncEngine, on_change: OnChange = ignore) -> None:
        self.engine = engine
        self.on_change = on_change

    async def waiting(self, account_id: str, user_id: str) -> int:
        """Rows the user asked for that are not sent yet (queued, retry_scheduled, sending)."""

        def run(connection: Connection) -> int:
            return waiting_rows(connection, account_id, user_id)

        return await read(self.engine, run)

    async def pace(self, owner: str, schedule: Sequence[tuple[int, datetime]]) -> None:
        """Each (row id, moment): the row stays `queued`, due at that moment, lease released.
        Only rows still leased to `owner` (the send that wrote them) and still `queued` move."""
        if not schedule:
            return
        statement = (
            update(notifications)
            .where(
                t.id == bindparam("row_id"),
                t.lease_owner == owner,
                t.delivery_status == DeliveryStatus.QUEUED.value,
            )
            .values(next_attempt_at=bindparam("due"), lease_owner=None, lease_expires_at=None)
        )
        parameters = [{"row_id": row_id, "due": due} for row_id, due in schedule]

        def run(connection: Connection) -> None:
            connection.execute(statement, parameters)

        await write(self.engine, run)
        self.on_change(RowChange("update", tuple(row_id for row_id, _ in schedule)))
