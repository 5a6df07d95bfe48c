"""Statements on the `notifications` rows and the `sender_audit` log (not the outbox).

The send path's insert (rows and their audit entries in one transaction), reads by id, the
relay outcome, and the ledger API's status changes and deletes. Who may reach which rows is
the ledger service's rule, handed in as a `Visibility`; this module only turns it into SQL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, String, and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.clock import utcnow
from server.notifications.changes import OnChange, RowChange, ignore
from server.notifications.model import (
    AuditEntry,
    BudgetTaken,
    DeliveryStatus,
    DueFilter,
    KeyReservation,
    LedgerStatus,
    NewNotification,
    Notification,
    RequestPlanner,
    RequestSharer,
    Visibility,
    transition,
)
from server.notifications.ports import SendRateTake
from server.notifications.query import Query, order_by
from server.storage.db import read, read_once, write
from server.storage.notifications.attempt_errors import attempt_error_entry, with_attempt_error
from server.storage.notifications.insert import audit_values, insert_rows
from server.storage.notifications.visibility import visibility_condition as visibility_condition
from server.storage.tables import notifications, sender_audit

t = notifications.c


def _matching_ids(visibility: Visibility, query: Query, *also: Any) -> Select[Any]:
    """The ids a `{query}` write reaches (with `also`): visible rows matching filter and
    search, in the query's order and window (all of them unless the caller set a limit)."""
    limit, offset = query.write_window()
    where = and_(visibility_condition(visibility), *query.conditions())
    stmt = select(t.id, *also).where(where).order_by(*order_by(query))
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    return stmt


# A `{query}` write changes its rows this many at a time, one short transaction each, so
# "archive all" over a large ledger never holds SQLite's one write lock for long.
WRITE_CHUNK = 2000


def _chunks(ids: Sequence[int]) -> list[list[int]]:
    return [list(ids[start : start + WRITE_CHUNK]) for start in range(0, len(ids), WRITE_CHUNK)]


class _NotAll(Exception):
    """Raised inside a transaction to roll it back when a batch reached fewer rows than asked."""


def _status_values(status: LedgerStatus | None) -> dict[str, Any]:
    # An empty change still runs the scoped UPDATE, so visibility is checked the same way.
    return {"status": status} if status is not None else {"status": t.status}


class SqlNotificationRows:
    """The `notifications` and `sender_audit` statements, over one SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine, on_change: OnChange = ignore) -> None:
        self.engine = engine
        # Called after each committed write (the realtime change bus; contract §13).
        self.on_change = on_change

    def _updated(self, rows: Sequence[Notification]) -> None:
        if rows:
            self.on_change(RowChange("update", tuple(r.id for r in rows), rows[0].account_id))

    # ------------------------------------------------------------ the send path

    async def insert(
        self,
        *,
        account_id: str,
        sender: str,
        rows: Sequence[NewNotification],
        audits: Sequence[AuditEntry],
        idempotency_key: str | None,
        lease_owner: str | None = None,
        lease_seconds: float = 60,
        plan: RequestPlanner | None = None,
        share: RequestSharer | None = None,
        reserve: KeyReservation | None = None,
        clear: DueFilter | None = None,
        expect_revision: int | None = None,
        take: SendRateTake | None = None,
        budget: BudgetTaken | None = None,
    ) -> list[Notification]:
        """Write `rows` and one audit entry each (`audits[i]` for `rows[i]`), in one
        transaction; the rows as stored, in order.

        With `lease_owner`, rows the server sends are written already leased to the caller,
        so the background worker cannot take them before the request's own first attempt.
        With `plan` too, those rows are moved to `sending` in the same transaction, each
        stamped with the monday request `plan` says the inline attempt sends them in (its
        rows and Idempotency-Key, contract §11): the attempt needs no write of its own.
        With `clear` too, only the rows it lets through (given the §12 gate's facts, read
        here) are stamped; the others stay `queued` and leased (storage/notifications/stamp.py).
        With `expect_revision`, the account's installation `revision` is read first in the
        same transaction: `RevisionMoved` (nothing written) unless it is that one (the send
        was decided on cached facts; installations/facts.py).
        With `reserve`, the request's `Idempotency-Key` row is inserted first, in the same
        transaction: `KeyTaken` (nothing written) if another request holds it.
        With `take`, the user's shared send-rate bucket is taken from first, in the same
        transaction, and `take.settle` decides the pacing (rows paced are not stamped) or
        refuses (nothing written, nothing taken). With `budget` too, each request stamped
        spends one call of its account's shared monday budget in the same transaction, and
        `budget` is handed what the take said (storage/notifications/budget.py).
        """
        now = utcnow()
        lease_expires_at = now + timedelta(seconds=lease_seconds)

        def run(connection: Connection) -> list[Notification]:
            return insert_rows(
                connection,
                account_id=account_id,
                sender=sender,
                rows=rows,
                audits=audits,
                idempotency_key=idempotency_key,
                now=now,
                lease_owner=lease_owner,
                lease_expires_at=lease_expires_at,
                plan=plan,
                share=share,
                reserve=reserve,
                clear=clear,
                expect_revision=expect_revision,
                take=take,
                budget=budget,
            )

        # Concurrent groups lock a user's rows (bucket, keys) in the order of this key.
        order = f"{account_id}\x00{sender}\x00{idempotency_key or ''}"
        stored = await write(self.engine, run, order=order, ids=len(rows))
        self.on_change(RowChange("create", tuple(n.id for n in stored), account_id))
        return stored

    async def write_audit(self, entry: AuditEntry) -> None:
        """An audit entry with no row (a refusal)."""
        async with self.engine.begin() as connection:
            await connection.execute(insert(sender_audit).values(audit_values(entry, None)))

    async def get_many(self, ids: Sequence[int]) -> list[Notification]:
        """Rows by id, in the order of `ids` (missing ones left out)."""
        if not ids:
            return []
        statement = select(notifications).where(t.id.in_(list(ids)))

        def run(connection: Connection) -> dict[int, Notification]:
            result = connection.execute(statement)
            return {int(row["id"]): Notification.from_row(row) for row in result.mappings()}

        by_id = await read(self.engine, run)
        return [by_id[i] for i in ids if i in by_id]

    async def get(self, row_id: int) -> Notification | None:
        rows = await self.get_many([row_id])
        return rows[0] if rows else None

    async def record_relay(
        self,
        row_id: int,
        *,
        status: DeliveryStatus,
        monday_id: str | None,
        error: Mapping[str, Any] | None,
    ) -> Notification | None:
        """Record a seamless send's outcome; None when the row could not move (it was not
        in a status that may move to `status`, i.e. no longer awaiting the client)."""
        values: dict[str, Any] = {
            "attempts": t.attempts + 1,
            "delivery_status": status.value,
            "last_error": error,
        }
        entry = attempt_error_entry(error, utcnow())
        if entry is not None:  # the client's attempt failed: listed as this attempt's error
            values["attempt_errors"] = with_attempt_error(
                bindparam("relay_error", entry, type_=String), t.attempts + 1
            )
        if status == DeliveryStatus.SENT:
            values.update(sent_at=utcnow(), monday_id=monday_id)
        awaiting = DeliveryStatus.AWAITING_CLIENT
        transition(awaiting, status)  # a relay only ever ends a seamless send
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(notifications)
                .where(t.id == row_id, t.delivery_status == awaiting.value)
                .values(**values)
                .returning(*notifications.c)
            )
            row = result.mappings().first()
        if row is None:
            return None
        stored = Notification.from_row(row)
        self._updated([stored])
        return stored

    # ------------------------------------------------------------ the ledger API's writes

    async def _set_status(
        self,
        connection: AsyncConnection,
        visibility: Visibility,
        keys: Sequence[int],
        status: LedgerStatus | None,
    ) -> list[Notification]:
        stmt = (
            update(notifications)
            .where(t.id.in_(list(keys)), visibility_condition(visibility))
            .values(_status_values(status))
            .returning(*notifications.c)
        )
        rows = [Notification.from_row(r) for r in (await connection.execute(stmt)).mappings()]
        if len(rows) != len(set(keys)):
            raise _NotAll
        return rows

    async def set_status(
        self, visibility: Visibility, changes: Sequence[tuple[int, LedgerStatus | None]]
    ) -> list[Notification] | None:
        """Apply each `(id, status)` (None: no change) in one transaction; the changed rows,
        or None, with nothing changed, when a key is missing or outside `visibility`."""
        # Each key as its changes leave it ("no change" keeps an earlier one), then one
        # UPDATE per status: a batch of 10,000 items (the same key 10,000 times, say) was
        # 10,000 statements holding the write lock for seconds.
        final: dict[int, LedgerStatus | None] = {}
        for key, status in changes:
            final[key] = status if status is not None else final.get(key)
        by_status: dict[LedgerStatus | None, list[int]] = {}
        for key, status in final.items():
            by_status.setdefault(status, []).append(key)
        changed: list[Notification] = []
        try:
            async with self.engine.begin() as connection:
                for status, keys in by_status.items():
                    changed.extend(await self._set_status(connection, visibility, keys, status))
        except _NotAll:
            return None
        self._updated(changed)
        return changed

    async def set_status_all(
        self, visibility: Visibility, keys: Sequence[int], status: LedgerStatus | None
    ) -> list[Notification] | None:
        """One status for all `keys`: the rows, or None (nothing changed) as in `set_status`."""
        try:
            async with self.engine.begin() as connection:
                rows = await self._set_status(connection, visibility, keys, status)
        except _NotAll:
            return None
        self._updated(rows)
        return rows

    async def set_status_matching(
        self, visibility: Visibility, query: Query, status: LedgerStatus | None
    ) -> list[Notification]:
        """The visible rows matching `query` get `status`; the changed rows.

        The filter runs in a read (bounded in time: `ReadTooExpensive`), not inside the
        write: an expensive filter must not hold the write lock every send waits for (it held
        it for seconds). The rows it found are then changed by id, a chunk a transaction; one
        deleted meanwhile is left out."""
        stmt = _matching_ids(visibility, query)
        ids = await read_once(self.engine, lambda conn: [int(i) for i in conn.scalars(stmt)])
        changed: list[Notification] = []
        for chunk in _chunks(ids):
            update_chunk = (
                update(notifications)
                .where(t.id.in_(chunk), visibility_condition(visibility))
                .values(_status_values(status))
                .returning(*notifications.c)
            )
            async with self.engine.begin() as connection:
                rows = (await connection.execute(update_chunk)).mappings().all()
            done = [Notification.from_row(r) for r in rows]
            self._updated(done)
            changed.extend(done)
        return changed

    async def delete(self, deletable: Visibility, keys: Sequence[int]) -> list[int] | None:
        """Delete `keys`: their ids, or None (nothing deleted) when one is outside `deletable`."""
        unique = list(dict.fromkeys(keys))
        stmt = (
            delete(notifications)
            .where(t.id.in_(unique), visibility_condition(deletable))
            .returning(t.id, t.recipient, t.sender)
        )
        try:
            async with self.engine.begin() as connection:
                gone = [(int(k), str(r), str(s)) for k, r, s in (await connection.execute(stmt))]
                if len(gone) != len(unique):
                    raise _NotAll
        except _NotAll:
            return None
        self._deleted(deletable.account_id, gone)
        return [row_id for row_id, _r, _s in gone]

    def _deleted(self, account_id: str, gone: Sequence[tuple[int, str, str]]) -> None:
        if gone:
            ids = tuple(row_id for row_id, _r, _s in gone)
            self.on_change(RowChange("delete", ids, account_id, tuple(gone)))

    async def delete_matching(
        self, visible: Visibility, deletable: Visibility, query: Query
    ) -> list[int] | None:
        """Delete the `visible` rows matching `query`: their ids, or None (nothing deleted)
        when one of them is outside `deletable`. The filter runs in a bounded read, the
        deletes by id a chunk a transaction (see `set_status_matching`)."""
        stmt = _matching_ids(visible, query, visibility_condition(deletable).label("deletable"))
        found = await read_once(self.engine, lambda conn: conn.execute(stmt).all())
        if not all(bool(ok) for _id, ok in found):
            return None
        deleted: list[int] = []
        for chunk in _chunks([int(row_id) for row_id, _ok in found]):
            delete_chunk = (
                delete(notifications)
                .where(t.id.in_(chunk), visibility_condition(deletable))
                .returning(t.id, t.recipient, t.sender)
            )
            async with self.engine.begin() as connection:
                gone = [
                    (int(k), str(r), str(s)) for k, r, s in await connection.execute(delete_chunk)
                ]
            self._deleted(visible.account_id, gone)
            deleted.extend(row_id for row_id, _r, _s in gone)
        return deleted
