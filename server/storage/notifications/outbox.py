"""The outbox over the ledger table: claim due rows under a lease, record outcomes.

A row is claimed (lease taken, status unchanged) before it is sent, and moved to
`sending` just before the HTTP call. So a process that dies after claiming leaves a row
that another worker re-claims when the lease expires (it was never sent), while a row
left in `sending` may have reached monday and becomes `unknown` (never sent twice).
Every status guard comes from the transition table in `notifications/model.py`.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select, update
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
from server.storage.notifications.resend import ResendStatements
from server.storage.tables import notifications

t = notifications.c
_CLAIMABLE = sorted(s.value for s in CLAIMABLE)


def lease_token(owner: str) -> str:
    """A lease token unique to one claim (or one request's rows) of process `owner`."""
    return f"{owner}/{secrets.token_hex(4)}"


def _lease_free(now: datetime) -> Any:
    return or_(t.lease_expires_at.is_(None), t.lease_expires_at < now)


def _from(target: DeliveryStatus) -> list[str]:
    return sorted(s.value for s in sources(target))


def _finish_values(outcome: Finish, now: datetime) -> dict[str, Any]:
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


# A claim ranks this many times `limit` candidates, so that a claim racing another one (on
# another instance) still finds enough rows the other has not locked.
CANDIDATES_PER_ROW = 4


def _fair_candidates(due: Any, limit: int) -> Select[Any]:
    """Up to `limit * CANDIDATES_PER_ROW` due row ids in claim order: round robin over
    accounts, by each row's place in its own account's queue (due longest first: a retry
    since its `next_attempt_at`, a row never tried since it was written), then by that age.
    The same order on both engines.

    Only ids, without locks: PostgreSQL allows no `FOR UPDATE` where a window function is,
    and a join of the ranking back to the table lets a planner with stale statistics pick a
    quadratic plan. The caller locks the chosen ids by primary key. The cost is one pass
    over the due rows per claim; due rows are few unless delivery is behind
    (`queue_oldest_due_seconds`).
    """
    due_since = func.coalesce(t.next_attempt_at, t.timestamp)
    place = func.row_number().over(partition_by=t.account_id, order_by=(due_since, t.id))
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
    ) -> list[Notification]:
        """Take a lease on up to `limit` due rows (or on exactly `ids` if due); return them.

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
        async with self.engine.begin() as connection:
            ranked = [row[0] for row in (await connection.execute(_fair_candidates(due, limit)))]
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
            await connection.execute(
                update(notifications)
                .where(t.id.in_(chosen), due)
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

    async def finish_many(self, owner: str, outcomes: Sequence[Finish]) -> None:
        """Record the outcomes of rows leased to `owner` and release their leases, in one
        transaction (one commit per batch sent, not one per row). A row moves only if the
        transition table allows its new status from the one it is in.

        A `retry_scheduled` row is due at `next_attempt_at` when given, else after
        `retry_after` seconds with a little jitter.
        """
        if not outcomes:
            return
        now = utcnow()
        statements = [
            update(notifications)
            .where(
                t.id == outcome.row_id,
                t.lease_owner == owner,
                t.delivery_status.in_(_from(outcome.delivery_status)),
            )
            .values(**_finish_values(outcome, now))
            for outcome in outcomes
        ]

        def run(connection: Connection) -> None:
            for statement in statements:
                connection.execute(statement)

        # Outcomes of concurrent requests (and batches) arriving while a commit is in
        # flight are committed together (group commit, storage/writer.py).
        await write(self.engine, run)
        self._updated([outcome.row_id for outcome in outcomes])

    async def defer(
        self,
        owner: str,
        ids: Sequence[int],
        *,
        until: datetime,
        error: Mapping[str, Any],
    ) -> int:
        """Rows claimed but held back by the governor: due again at `until`, not attempted."""
        if not ids:
            return 0
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status.in_(_CLAIMABLE),
                )
                .values(
                    delivery_status=DeliveryStatus.RETRY_SCHEDULED.value,
                    next_attempt_at=until,
                    last_error=error,
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        count = int(result.rowcount or 0)
        if count:
            self._updated(ids)
        return count

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
                    last_error=delivery_error(
                        "DELIVERY_INTERRUPTED",
                        "The server stopped while sending; monday may or may not have it.",
                    ),
                )
                .returning(t.id)
            )
            expired = [int(row_id) for row_id in result.scalars().all()]
        self._updated(expired)
        return len(expired)

    async def queue_depth(self) -> tuple[dict[str, int], float]:
        """Rows waiting per status (`queued`, `retry_scheduled`, `sending`) and the age in
        seconds of the oldest row that is due now (0 when none is): read by /metrics."""
        now = utcnow()
        waiting = [s.value for s in WAITING]
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
                        t.delivery_status.in_(_CLAIMABLE),
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
