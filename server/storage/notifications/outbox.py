"""The outbox over the ledger table: claim due rows under a lease, record outcomes.

A row is claimed (lease taken, status unchanged) before it is sent, and moved to
`sending` just before the HTTP call. So a process that dies after claiming leaves a row
that another worker re-claims when the lease expires (it was never sent), while a row
left in `sending` may have reached monday and becomes `unknown` (never sent twice). (A
send's own rows skip the claim and the move: the send path inserts them leased and already
`sending` for the inline attempt's request, `rows.py` `insert`.)
Every status guard comes from the transition table in `notifications/model.py`.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, case, func, null, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.notifications.changes import OnChange, RowChange, ignore
from server.notifications.model import (
    CLAIMABLE,
    WAITING,
    DeliveryStatus,
    Finish,
    Notification,
    delivery_error,
    sources,
)
from server.storage.db import write
from server.storage.notifications.attempt_errors import attempt_error_entry, with_attempt_error
from server.storage.notifications.fairness import fair_candidates
from server.storage.notifications.finish import (
    attempt_error,
    finish_values,
    record_outcomes,
)
from server.storage.notifications.resend import (
    ResendStatements,
    resend_due,
    sibling_free,
    with_siblings,
)
from server.storage.tables import notifications

t = notifications.c
_CLAIMABLE = sorted(s.value for s in CLAIMABLE)


# A random start per process, then counted (8 hex digits, as long as before: `lease_owner` is
# 64 characters): unique per claim for 2**32 claims without reading the OS's random source on
# every send, and two processes given the same `owner` still start apart.
_lease_numbers = itertools.count(secrets.randbits(32))


def lease_token(owner: str) -> str:
    """A lease token unique to one claim (or one request's rows) of process `owner`."""
    return f"{owner}/{next(_lease_numbers) & 0xFFFFFFFF:08x}"


def _lease_free(now: datetime) -> Any:
    return or_(t.lease_expires_at.is_(None), t.lease_expires_at < now)


def _from(target: DeliveryStatus) -> list[str]:
    return sorted(s.value for s in sources(target))


class SqlOutbox(ResendStatements):
    """The outbox statements over one SQLAlchemy engine (the exactly-once retry's statements
    are in resend.py)."""

    def __init__(self, engine: AsyncEngine, on_change: OnChange = ignore) -> None:
        self.engine = engine
        # Called after each committed delivery status change (the realtime change bus, §13);
        # the outbox knows only ids, so the bus finds their accounts.
        self.on_change = on_change

    def _updated(self, ids: Sequence[int]) -> None:
        if ids:
            self.on_change(RowChange("update", tuple(ids)))

    async def claim(
        self,
        owner: str,
        *,
        lease_seconds: int,
        limit: int,
        ids: Sequence[int] | None = None,
        resend_since: datetime | None = None,
    ) -> list[Notification]:
        """Take a lease on up to `limit` due rows (or on exactly `ids` if due); return them.

        With `resend_since` (the worker's claim), `unknown` rows due for a retry of a request
        first sent at or after it are taken too, in the same fair order (contract §11,
        fairness.py), each with the rest of its request's `unknown` rows (which may exceed
        `limit`); the caller sends the ones still `unknown` with their first request.

        Each claim gets its own lease token (`owner/<random>`), stored as `lease_owner`: two
        claims in one process (the inline send and the worker) can never both take a row.

        Accounts are served round robin (contract §11): every account's oldest due row comes
        before any account's second, and so on, so one account's backlog cannot fill a claim
        while another account's rows wait (`_fair_candidates`).
        """
        now = utcnow()
        token = lease_token(owner)
        due = and_(
            t.delivery_status.in_(_CLAIMABLE),
            or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
            _lease_free(now),
        )
        if ids is not None:
            due = and_(due, t.id.in_(list(ids)))
        if resend_since is not None:
            due = or_(due, resend_due(now, resend_since))
        async with self.engine.begin() as connection:
            ranked = [row[0] for row in (await connection.execute(fair_candidates(due, limit)))]
            if not ranked:
                return []
            if connection.dialect.name == "postgresql":
                # Several instances share one queue: lock the first `limit` candidates in
                # claim order, skipping rows another transaction is claiming (the next ones
                # in the round-robin order are taken instead).
                free = (
                    select(t.id)
                    .where(t.id.in_(ranked), due)
                    .order_by(func.array_position(postgresql.array(ranked), t.id))
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                unlocked = {row[0] for row in (await connection.execute(free)).all()}
                ranked = [row_id for row_id in ranked if row_id in unlocked]
            chosen = ranked[:limit]
            if not chosen:
                return []
            taken = due
            if resend_since is not None:
                chosen = await with_siblings(connection, chosen, now)
                taken = or_(due, sibling_free(now))
            await connection.execute(
                update(notifications)
                .where(t.id.in_(chosen), taken)
                .values(lease_owner=token, lease_expires_at=now + timedelta(seconds=lease_seconds))
            )
            result = await connection.execute(
                select(notifications).where(t.id.in_(chosen), t.lease_owner == token)
            )
            return [Notification.from_row(row) for row in result.mappings()]

    async def mark_sending(
        self, owner: str, ids: Sequence[int], *, lease_seconds: float | None = None
    ) -> list[int]:
        """Just before the HTTP call: from here on a crash means `unknown`, not a retry.

        Only rows whose lease is still ours move; `lease_seconds` renews the lease so a live
        sender's row is not declared stale while its request is in flight.
        """
        now = utcnow()
        values: dict[str, Any] = {
            "delivery_status": DeliveryStatus.SENDING.value,
            "attempts": t.attempts + 1,
        }
        if lease_seconds is not None:
            values["lease_expires_at"] = now + timedelta(seconds=lease_seconds)

        def run(connection: Connection) -> list[int]:
            connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status.in_(_from(DeliveryStatus.SENDING)),
                    t.lease_expires_at >= now,
                )
                .values(**values)
            )
            result = connection.execute(
                select(t.id).where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status == DeliveryStatus.SENDING.value,
                )
            )
            return [row[0] for row in result.all()]

        moved = await write(self.engine, run)
        self._updated(moved)
        return moved

    async def finish(
        self,
        owner: str,
        row_id: int,
        *,
        delivery_status: DeliveryStatus,
        error: Mapping[str, Any] | None = None,
        monday_id: str | None = None,
        retry_after: float | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record one row's outcome and release its lease (see `finish_many`)."""
        outcome = Finish(row_id, delivery_status, error, monday_id, next_attempt_at, retry_after)
        await self.finish_many(owner, [outcome])

    async def finish_many(
        self, owner: str, outcomes: Sequence[Finish], *, known: Sequence[Notification] = ()
    ) -> list[Notification]:
        """Record the outcomes of rows leased to `owner` and release their leases, in one
        transaction (one commit per batch sent, not one per row). A row moves only if the
        transition table allows its new status from the one it is in. Returns the rows that
        moved, as stored (the send path answers with them: no read-back).

        A `retry_scheduled` row is due at `next_attempt_at` when given, else after
        `retry_after` seconds with a little jitter. `known`: the caller's copies of the rows
        as stored; a `sent` outcome of a row still exactly that copy is written without
        reading the row back (finish.py `record_outcomes`).
        """
        if not outcomes:
            return []
        now = utcnow()
        finished = [finish_values(outcome, now) for outcome in outcomes]
        parameters = [
            {
                "f_id": outcome.row_id,
                "f_owner": owner,
                "f_from": _from(outcome.delivery_status),
                "f_sent_at": None,
                "f_monday_id": None,
                "f_attempt_error": attempt_error(outcome, now),
                **{f"f_{name}": value for name, value in values.items()},
            }
            for outcome, values in zip(outcomes, finished, strict=True)
        ]

        copies = {row.id: row for row in known}

        def run(connection: Connection) -> list[Notification]:
            return record_outcomes(connection, owner, outcomes, parameters, finished, copies, now)

        # Outcomes of concurrent requests (and batches) arriving while a commit is in
        # flight are committed together (group commit, storage/writer.py).
        stored = await write(self.engine, run)
        self._changed(stored)
        return stored

    def _changed(self, rows: Sequence[Notification]) -> None:
        """Tell live subscribers about `rows`, with their account (the bus need not look it
        up); rows of one batch share one account, but nothing here relies on it."""
        by_account: dict[str, list[int]] = {}
        for row in rows:
            by_account.setdefault(row.account_id, []).append(row.id)
        for account_id, ids in by_account.items():
            self.on_change(RowChange("update", tuple(ids), account_id))

    async def defer(
        self,
        owner: str,
        ids: Sequence[int],
        *,
        until: datetime,
        error: Mapping[str, Any],
    ) -> list[Notification]:
        """Rows claimed but held back by the governor: due again at `until`, not attempted;
        the rows as stored.

        A row the send path inserted already `sending` for its inline attempt (stamped with
        a request that was never sent) goes back too: `sending` -> `retry_scheduled`, its
        attempt not counted and its request stamp cleared, so the key is never used.
        """
        if not ids:
            return []
        sending = DeliveryStatus.SENDING.value
        was_sending = t.delivery_status == sending
        statement = (
            update(notifications)
            .where(
                t.id.in_(list(ids)),
                t.lease_owner == owner,
                t.delivery_status.in_(_from(DeliveryStatus.RETRY_SCHEDULED)),
            )
            .values(
                delivery_status=DeliveryStatus.RETRY_SCHEDULED.value,
                next_attempt_at=until,
                last_error=error,
                lease_owner=None,
                lease_expires_at=None,
                attempts=case((was_sending, t.attempts - 1), else_=t.attempts),
                delivery_request_key=case((was_sending, null()), else_=t.delivery_request_key),
                delivery_request_rows=case((was_sending, null()), else_=t.delivery_request_rows),
                delivery_request_at=case((was_sending, null()), else_=t.delivery_request_at),
            )
            .returning(*notifications.c)
        )

        def run(connection: Connection) -> list[Notification]:
            return [Notification.from_row(row) for row in connection.execute(statement).mappings()]

        deferred = await write(self.engine, run)
        self._changed(deferred)
        return deferred

    async def release(self, owner: str, ids: Sequence[int]) -> None:
        """Give back rows claimed but not sent (e.g. on shutdown)."""
        if not ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status.in_(_CLAIMABLE),
                )
                .values(lease_owner=None, lease_expires_at=None)
            )

    async def expire_stale_sending(self) -> int:
        """Rows left `sending` by a dead process: they may have reached monday, so `unknown`
        (due at once for a retry of the same request, see resend.py)."""
        now = utcnow()
        error = delivery_error(
            "DELIVERY_INTERRUPTED",
            "The server stopped while sending; monday may or may not have it.",
        )
        entry = bindparam("interrupted", attempt_error_entry(error, now), type_=String)
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(notifications)
                .where(
                    t.delivery_status == DeliveryStatus.SENDING.value,
                    t.lease_expires_at < now,
                )
                .values(
                    delivery_status=DeliveryStatus.UNKNOWN.value,
                    # A row stamped with its request is retried with it at once (§11).
                    next_attempt_at=case((t.delivery_request_key.is_not(None), now), else_=None),
                    lease_owner=None,
                    lease_expires_at=None,
                    last_error=error,
                    attempt_errors=with_attempt_error(entry, t.attempts),
                )
                .returning(t.id)
            )
            expired = [int(row_id) for row_id in result.scalars().all()]
        self._updated(expired)
        return len(expired)

    async def queue_depth(self) -> tuple[dict[str, int], float]:
        """Rows waiting per status (`queued`, `retry_scheduled`, `sending`, and `scheduled`
        rows not yet released) and the age in seconds of the oldest row that is due now (0
        when none is; a due `scheduled` row counts, so a stalled release shows): /metrics."""
        now = utcnow()
        waiting = [s.value for s in (*WAITING, DeliveryStatus.SCHEDULED)]
        async with self.engine.connect() as connection:
            counts = {status: 0 for status in waiting}
            result = await connection.execute(
                select(t.delivery_status, func.count())
                .where(t.delivery_status.in_(waiting))
                .group_by(t.delivery_status)
            )
            for status, count in result.all():
                counts[str(status)] = int(count)
            oldest = (
                await connection.execute(
                    select(func.min(func.coalesce(t.next_attempt_at, t.timestamp))).where(
                        t.delivery_status.in_([*_CLAIMABLE, DeliveryStatus.SCHEDULED.value]),
                        or_(t.next_attempt_at.is_(None), t.next_attempt_at <= now),
                    )
                )
            ).scalar()
        age = 0.0
        if isinstance(oldest, datetime):
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            age = max((now - oldest).total_seconds(), 0.0)
        return counts, age
