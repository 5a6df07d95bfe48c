"""The send path's one write: the rows (already `sending` when the inline attempt takes
them), their audit entries and the Idempotency-Key reservation, in one transaction.

The request key of contract §11 names the row ids, so the ids are reserved first (SQLite: the
next ids above every id there is and every id ever deleted, which only this writer can hand
out inside its write transaction; PostgreSQL: `nextval` of the id sequence) and every row is
inserted with its final values in one `INSERT`: no stamp `UPDATE` after it and no `RETURNING`
(the values are all known here).
Inside a writer group the rows are planned and written by the group's finalizer, with the
other inserts' rows (coalesce.py); the ids then go on from the group's previous insert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from server.clock import utcnow
from server.notifications.model import (
    AuditEntry,
    BudgetTaken,
    DeliveryStatus,
    DueFilter,
    KeyReservation,
    KeyTaken,
    NewNotification,
    Notification,
    Pacing,
    RequestPlanner,
    RequestSharer,
    RevisionMoved,
)
from server.notifications.ports import SendRateTake
from server.storage.limits import call_in, tokens_call
from server.storage.notifications.budget import Stamped, take_budgets
from server.storage.notifications.coalesce import PendingInsert, defer_insert, stamp
from server.storage.notifications.pacing import waiting_rows
from server.storage.notifications.stamp import AccountFacts, account_facts, due_facts
from server.storage.prepared import Prepared
from server.storage.tables import (
    idempotency_keys,
    notification_id_floor,
    notifications,
    sender_audit,
)
from server.storage.txn_group import TxnGroup, current

# Built once: values are bound parameters (building statements per send cost more than
# running them, on the writer thread, holding the GIL).
# The rows' INSERT, one per set of columns given (prepared on first use).
_INSERT_ROWS: dict[tuple[str, ...], Prepared] = {}
_AUDIT_KEYS = (
    "at",
    "account_id",
    "user_id",
    "surface",
    "send_as_hint",
    "policy",
    "outcome",
    "sent_as",
    "transport",
    "credential_owner",
    "reason",
    "notification_id",
)
_INSERT_AUDIT = Prepared(insert(sender_audit), _AUDIT_KEYS)
_INSERT_KEY = insert(idempotency_keys)
# SQLite: above every id in the table and every id ever deleted (`notification_id_floor`,
# raised by a trigger on delete), so no id is given twice. (SQLite's own choice, max(rowid) + 1,
# gave a deleted newest row's id to the next insert.) `max(a, b)` is SQLite's scalar max.
_MAX_ID = Prepared(
    select(
        func.max(
            func.coalesce(select(func.max(notifications.c.id)).scalar_subquery(), 0),
            func.coalesce(
                select(notification_id_floor.c.last_deleted_id)
                .where(notification_id_floor.c.id == 1)
                .scalar_subquery(),
                0,
            ),
        ).label("last")
    )
)
_NEXT_IDS = text(
    "SELECT nextval(pg_get_serial_sequence('notifications', 'id')) FROM generate_series(1, :n)"
)
# Columns a row is inserted without unless it has them (their default is NULL), and what
# `Notification.from_row` reads for them.
_UNSET: dict[str, Any] = {
    "sent_at": None,
    "last_error": None,
    "attempt_errors": None,
    "monday_id": None,
    "delivery_request_key": None,
    "delivery_request_rows": None,
    "delivery_request_at": None,
    "digest_id": None,
    "deferred_reason": None,
}
_NEXT_ID = "notifications.next_id"  # a writer group's next free id (SQLite)
_ID_POOL = "notifications.id_pool"  # ids a writer group took from the sequence (PostgreSQL)
_ACCOUNT_FACTS = "notifications.account_facts"  # + account id: a group's read of it


def audit_values(entry: AuditEntry, notification_id: int | None) -> dict[str, Any]:
    decision = entry.decision
    return {
        "at": utcnow(),
        "account_id": entry.account_id,
        "user_id": entry.user_id,
        "surface": entry.surface,
        "send_as_hint": entry.send_as_hint,
        "policy": entry.policy,
        "outcome": entry.outcome,
        "sent_as": decision.sent_as if decision else None,
        "transport": decision.transport if decision else None,
        "credential_owner": decision.credential_owner if decision else None,
        "reason": entry.reason,
        "notification_id": notification_id,
    }


def first_due(status: DeliveryStatus, row: NewNotification, now: datetime) -> datetime | None:
    """When the outbox may first take the row: now, at `send_at` when scheduled, or never
    (a seamless row is the view's to send)."""
    if status == DeliveryStatus.SCHEDULED:
        return row.send_at
    return now if status == DeliveryStatus.QUEUED else None


def reserve_ids(connection: Connection, count: int, group: TxnGroup | None = None) -> list[int]:
    """`count` ids for new rows, ascending, inside the caller's write transaction. In a
    writer group the ids go on from the group's previous insert (whose rows may not be
    written yet: coalesce.py writes them before the COMMIT)."""
    if connection.dialect.name == "postgresql":
        return _sequence_ids(connection, count, group)
    first = group.shared.get(_NEXT_ID) if group is not None else None
    if first is None:
        first = int(next(iter(_MAX_ID.rows(connection)))["last"]) + 1
    if group is not None:
        group.shared[_NEXT_ID] = first + count
    return list(range(first, first + count))


def _sequence_ids(connection: Connection, count: int, group: TxnGroup | None) -> list[int]:
    """PostgreSQL: `count` ids from the table's sequence. The first reservation of a writer
    group takes the ids every job of the group said it would need (`TxnGroup.ids_wanted`)
    in one `nextval` statement, and the jobs after it take theirs from what is left: one
    round trip a group, not one an insert. An id taken and not used (a job that needed fewer,
    a group rolled back) is a gap in the ids, as a rolled-back `nextval` always leaves."""
    pool: list[int] = group.shared.setdefault(_ID_POOL, []) if group is not None else []
    if len(pool) < count:
        wanted = count - len(pool)
        if group is not None:
            wanted, group.ids_wanted = max(wanted, group.ids_wanted - len(pool)), 0
        fresh = connection.execute(_NEXT_IDS, {"n": wanted})
        pool.extend(sorted(int(v) for (v,) in fresh))  # each above those already in the pool
    taken, pool[:] = pool[:count], pool[count:]
    return taken


def insert_rows(
    connection: Connection,
    *,
    account_id: str,
    sender: str,
    rows: Sequence[NewNotification],
    audits: Sequence[AuditEntry],
    idempotency_key: str | None,
    now: datetime,
    lease_owner: str | None,
    lease_expires_at: datetime,
    plan: RequestPlanner | None,
    share: RequestSharer | None,
    reserve: KeyReservation | None,
    clear: DueFilter | None,
    expect_revision: int | None,
    take: SendRateTake | None = None,
    budget: BudgetTaken | None = None,
) -> list[Notification]:
    """The body of `SqlNotificationRows.insert` (see there), run in its transaction."""
    # One read of the account's row: the revision to confirm and the §12 settings.
    gated = plan is not None and clear is not None and lease_owner is not None
    group = current(connection)
    account = None
    if expect_revision is not None or gated:
        account = _account_facts(connection, account_id, group)
        if expect_revision is not None and account.revision != expect_revision:
            raise RevisionMoved(account_id)
    if take is not None and take_send_rate(connection, take).paced:
        plan = None  # rows paced past the rate wait for the worker: none is stamped
    # Within a writer group the inserts are planned and written together before its COMMIT
    # (coalesce.py); an insert run alone plans and writes its own rows here.
    ids = reserve_ids(connection, len(rows), group)
    if reserve is not None:
        # Before any row is written, so a taken key fails first; the caller's transaction
        # (or the writer's group, which then runs each job alone) is rolled back. The key
        # names its rows: an abandoned reservation's answer is rebuilt from them
        # (notifications/idempotency.py).
        try:
            connection.execute(
                _INSERT_KEY,
                {
                    "account_id": reserve.account_id,
                    "user_id": reserve.user_id,
                    "key": reserve.key,
                    "body_digest": reserve.body_digest,
                    "created_at": now,
                    "row_ids": ids,
                },
            )
        except IntegrityError as error:
            raise KeyTaken(reserve.key) from error
    values: list[dict[str, Any]] = []
    for row_id, row in zip(ids, rows, strict=True):
        status = row.initial_status
        leased = status == DeliveryStatus.QUEUED and lease_owner is not None
        value = {
            "id": row_id,
            "timestamp": now,
            "status": "inbox",
            "recipient": row.recipient,
            "sender": sender,
            "subject": row.subject,
            "message": row.message,
            "collection": row.collection,
            "item": row.item,
            "account_id": account_id,
            "sent_as": row.sent_as,
            "transport": row.transport,
            "credential_owner": row.credential_owner,
            "delivery_status": status.value,
            "attempts": 0,
            "next_attempt_at": first_due(status, row, now),
            "send_at": row.send_at,
            "urgent": row.urgent,
            "idempotency_key": idempotency_key,
            "lease_owner": lease_owner if leased else None,
            "lease_expires_at": lease_expires_at if leased else None,
        }
        values.append(value)
    audit_rows = [audit_values(audit, row_id) for row_id, audit in zip(ids, audits, strict=True)]
    stamped: list[Stamped] = []  # the requests stamped, for the shared budget (budget.py)
    if plan is not None and lease_owner is not None:
        stored = [stored_row(value) for value in values]
        cleared = _cleared(connection, stored, lease_owner, clear, account)
        if group is not None and share is not None:
            return defer_insert(
                group,
                PendingInsert(values, audit_rows, cleared, plan, share, budget),
                write=write_values,
                stored_row=stored_row,
            )
        by_id = {value["id"]: value for value in values}
        for request in plan(cleared):
            stamp(by_id, request, now)
            if budget is not None:
                stamped.append((account_id, request, budget))
    write_values(connection, values, audit_rows)
    take_budgets(connection, stamped, now)
    return [stored_row(value) for value in values]


def take_send_rate(connection: Connection, take: SendRateTake) -> Pacing:
    """The user's take from the shared bucket (storage/limits.py), settled: the pacing, or
    the 429 that rolls this transaction back."""
    call = tokens_call(take.rows, capacity=take.capacity, per_second=take.per_second, now=take.now)
    tokens: float = call_in(connection, take.scope, call)
    return take.settle(tokens, lambda: waiting_rows(connection, take.account_id, take.user_id))


def stored_row(value: dict[str, Any]) -> Notification:
    """The row as stored from the values it is inserted with."""
    return Notification.from_row({**_UNSET, **value})


def _account_facts(connection: Connection, account_id: str, group: TxnGroup | None) -> AccountFacts:
    """`account_facts`, read once per writer group. No `write()` job changes an
    installation or a mute (those are `engine.begin()` transactions of their own), so no
    job of the group changes them between two reads.

    - SQLite: the group holds the database's write lock, so every insert of the group would
      read the same.
    - PostgreSQL reads committed state statement by statement, so a later insert of the group
      could see a change another transaction committed meanwhile. Every job of a group was
      queued before the group's transaction began, so the group's first read is already
      later than each of its requests; a change committed during the group is concurrent
      with all of them, and the group reading before it is one valid order. (Nothing is
      locked either way: a change may also commit just after the last read.)"""
    if group is None:
        return account_facts(connection, account_id)
    key = f"{_ACCOUNT_FACTS}:{account_id}"
    facts: AccountFacts | None = group.shared.get(key)
    if facts is None:
        facts = group.shared[key] = account_facts(connection, account_id)
    return facts


def write_values(
    connection: Connection, values: Sequence[dict[str, Any]], audit_rows: Sequence[dict[str, Any]]
) -> None:
    """INSERT the rows (one statement per set of columns: stamped rows carry their request,
    others do not), then their audit entries."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for value in values:
        groups.setdefault(tuple(value), []).append(value)
    for keys, group in groups.items():
        prepared = _INSERT_ROWS.get(keys)
        if prepared is None:
            prepared = _INSERT_ROWS[keys] = Prepared(insert(notifications), keys)
        prepared.run_many(connection, group)
    _INSERT_AUDIT.run_many(connection, audit_rows)


def _cleared(
    connection: Connection,
    stored: list[Notification],
    lease_owner: str,
    clear: DueFilter | None,
    account: AccountFacts | None,
) -> list[Notification]:
    """The rows the inline attempt sends now: those leased to it that `clear` (the §12
    gate, given the facts it would read a moment later) lets through untouched."""
    leased = [row for row in stored if row.lease_owner == lease_owner]
    if leased and clear is not None and account is not None:
        leased = list(clear(leased, due_facts(connection, leased[0].account_id, leased, account)))
    return leased
