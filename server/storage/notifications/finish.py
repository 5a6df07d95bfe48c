"""How one delivery outcome is written to its row: the values of a `Finish` and the one
prebuilt UPDATE that records it (used by outbox.py's `finish`/`finish_many`)."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, String, bindparam, func, literal_column, update
from sqlalchemy.engine import Connection

from server.notifications.model import DeliveryStatus, Finish, Notification
from server.storage.notifications.attempt_errors import attempt_error_entry, with_attempt_error
from server.storage.notifications.sent_batch import sent_batch
from server.storage.prepared import Prepared
from server.storage.tables import notifications

t = notifications.c


def finish_values(outcome: Finish, now: datetime) -> dict[str, Any]:
    status = outcome.delivery_status
    values: dict[str, Any] = {
        "delivery_status": status.value,
        "last_error": outcome.error,
        "lease_owner": None,
        "lease_expires_at": None,
        "next_attempt_at": None,
    }
    if status == DeliveryStatus.SENT:
        values.update(sent_at=now, monday_id=outcome.monday_id)
    if status == DeliveryStatus.UNKNOWN and outcome.next_attempt_at is not None:
        # Retried with the same request and Idempotency-Key then (contract §11).
        values["next_attempt_at"] = outcome.next_attempt_at
    elif status == DeliveryStatus.RETRY_SCHEDULED and outcome.next_attempt_at is not None:
        values["next_attempt_at"] = outcome.next_attempt_at
    elif status == DeliveryStatus.RETRY_SCHEDULED:
        delay = max(outcome.retry_after or 1.0, 0.05)
        # Jitter spreads retries of many rows that were told the same wait.
        jitter = random.uniform(1.0, 1.2)  # noqa: S311
        values["next_attempt_at"] = now + timedelta(seconds=delay * jitter)
    return values


def attempt_error(outcome: Finish, now: datetime) -> str | None:
    if outcome.delivery_status == DeliveryStatus.SENT:
        return None
    return attempt_error_entry(outcome.error, now)


# One outcome, as one statement prepared once per set of statuses the row may move from
# (`Prepared`: compiled once, run at the driver on SQLite): building an UPDATE ... RETURNING
# per row cost more than running it. The statuses are the transition table's constants,
# written into the SQL (an expanding IN parameter would be rendered again on every call).
# Only a `sent` outcome sets `sent_at` and `monday_id` (else kept as they are).
_FINISH: dict[tuple[str, ...], Prepared] = {}


def finish_statement(sources: Sequence[str]) -> Prepared:
    key = tuple(sources)
    found = _FINISH.get(key)
    if found is None:
        statuses: list[ColumnElement[Any]] = [
            literal_column(f"'{DeliveryStatus(s).value}'") for s in key
        ]
        statement = (
            update(notifications)
            .where(
                t.id == bindparam("f_id"),
                t.lease_owner == bindparam("f_owner"),
                t.delivery_status.in_(statuses),
            )
            .values(
                delivery_status=bindparam("f_delivery_status"),
                last_error=bindparam("f_last_error", type_=t.last_error.type),
                # Only an attempt made (the row was `sending`) adds to the list.
                attempt_errors=with_attempt_error(
                    bindparam("f_attempt_error", type_=String),
                    t.attempts,
                    when=t.delivery_status == DeliveryStatus.SENDING.value,
                ),
                lease_owner=bindparam("f_lease_owner"),
                lease_expires_at=bindparam("f_lease_expires_at", type_=t.lease_expires_at.type),
                next_attempt_at=bindparam("f_next_attempt_at", type_=t.next_attempt_at.type),
                sent_at=func.coalesce(bindparam("f_sent_at", type_=t.sent_at.type), t.sent_at),
                monday_id=func.coalesce(
                    bindparam("f_monday_id", type_=t.monday_id.type), t.monday_id
                ),
            )
            .returning(*notifications.c)
        )
        found = _FINISH[key] = Prepared(statement)
    return found


# A `sent` outcome of a row whose stored values the caller holds (the inline attempt's rows,
# as its insert wrote them): an UPDATE without RETURNING, whose WHERE also holds every value
# the caller's copy could differ in; when it changes the row, the row as stored is the
# caller's copy with the outcome applied (`finish_sent`), and reading it back (~30 columns
# converted, on the writer's thread) is saved. When it does not, the caller's copy was stale
# and the outcome goes the general way (`finish_statement`).
_SENT = Prepared(
    update(notifications)
    .where(
        t.id == bindparam("s_id"),
        t.lease_owner == bindparam("s_owner"),
        t.delivery_status == DeliveryStatus.SENDING.value,
        t.status == bindparam("s_status"),
        t.attempts == bindparam("s_attempts"),
        t.delivery_request_key == bindparam("s_key"),
    )
    .values(
        delivery_status=DeliveryStatus.SENT.value,
        last_error=None,
        lease_owner=None,
        lease_expires_at=None,
        next_attempt_at=None,
        sent_at=bindparam("s_sent_at", type_=t.sent_at.type),
        monday_id=func.coalesce(bindparam("s_monday_id", type_=t.monday_id.type), t.monday_id),
    )
)


def sent_unchanged(row: Notification, owner: str, outcome: Finish) -> bool:
    """Whether a `sent` outcome of `row` (the caller's copy as stored) may take the fast
    way: an UPDATE that also checks the copy is still what is stored, no read-back."""
    return (
        outcome.delivery_status == DeliveryStatus.SENT
        and outcome.error is None
        and row.delivery_status == DeliveryStatus.SENDING
        and row.lease_owner == owner
        and row.delivery_request_key is not None
    )


def sent_copy(row: Notification, outcome: Finish, finished: Mapping[str, Any]) -> Notification:
    """`row` as stored once its `sent` outcome is written the fast way. It gets what the
    general statement would have set (`finished`: `finish_values`), its monday_id kept
    when monday named none, as both statements' coalesce keeps it."""
    values = {**finished, "delivery_status": DeliveryStatus.SENT}
    if outcome.monday_id is None:
        values["monday_id"] = row.monday_id
    return replace(row, **values)


def finish_sent(
    connection: Connection,
    row: Notification,
    owner: str,
    outcome: Finish,
    now: datetime,
    finished: Mapping[str, Any],
) -> Notification | None:
    """Record a `sent` outcome for `row`, the caller's copy of it as stored; the row as now
    stored, or None (nothing written) if the stored row is not that copy under `owner`.
    `finished`: `finish_values(outcome, now)`, which the caller has already built."""
    if not sent_unchanged(row, owner, outcome):
        return None
    changed = _SENT.count(
        connection,
        {
            "s_id": row.id,
            "s_owner": owner,
            "s_status": row.status,
            "s_attempts": row.attempts,
            "s_key": row.delivery_request_key,
            "s_sent_at": now,
            "s_monday_id": outcome.monday_id,
        },
    )
    return sent_copy(row, outcome, finished) if changed == 1 else None


def finish_general(connection: Connection, values: Mapping[str, Any]) -> list[Notification]:
    """An outcome the general way (`finish_statement`, with `RETURNING`): the row as now
    stored, or nothing if its status may not move to the outcome's."""
    statement = finish_statement(values["f_from"])
    return [Notification.from_row(row) for row in statement.rows(connection, values)]


def record_outcomes(
    connection: Connection,
    owner: str,
    outcomes: Sequence[Finish],
    parameters: Sequence[Mapping[str, Any]],
    finished: Sequence[Mapping[str, Any]],
    copies: Mapping[int, Notification],
    now: datetime,
) -> list[Notification]:
    """The body of outbox.py's `finish_many`, in its transaction: the rows that moved, as
    stored. A `sent` row whose copy the caller holds takes the fast way: one UPDATE each on
    SQLite, one for all of them on PostgreSQL (sent_batch.py)."""
    batch = sent_batch(connection)
    stored: list[Notification] = []
    batched: dict[int, Mapping[str, Any]] = {}  # row id -> its general statement's values
    for outcome, values, done in zip(outcomes, parameters, finished, strict=True):
        copy = copies.get(outcome.row_id)
        if copy is not None and sent_unchanged(copy, owner, outcome):
            if batch is not None:
                batch.add(copy, owner, outcome, now)
                batched[copy.id] = values
                stored.append(sent_copy(copy, outcome, done))
                continue
            sent = finish_sent(connection, copy, owner, outcome, now, done)
            if sent is not None:
                stored.append(sent)
                continue
        stored.extend(finish_general(connection, values))
    if batch is None or batch.by_group or not batched:
        return stored  # SQLite, or the group's finalizer writes the batch
    changed = batch.write(connection)
    if len(changed) == len(batched):
        return stored
    # Rows that were not the caller's copies go the general way, in their place.
    recorded: list[Notification] = []
    for row in stored:
        if row.id in batched and row.id not in changed:
            recorded.extend(finish_general(connection, batched[row.id]))
        else:
            recorded.append(row)
    return recorded
