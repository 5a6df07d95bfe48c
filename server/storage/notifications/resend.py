"""Outbox statements for contract §11: every request stamped with its Idempotency-Key on its
rows, and `unknown` rows claimed again (with the worker's claim, outbox.py) for a retry of
exactly that request.

A mixin of `SqlOutbox` (same engine, same lease tokens), kept apart so the statements of
the exactly-once retry read together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.clock import utcnow
from server.notifications.model import CLAIMABLE, DeliveryStatus, Notification
from server.storage.tables import notifications

t = notifications.c
_CLAIMABLE = sorted(s.value for s in CLAIMABLE)
_UNKNOWN = DeliveryStatus.UNKNOWN.value
_SENDING = DeliveryStatus.SENDING.value


def _lease_free(now: datetime) -> Any:
    return or_(t.lease_expires_at.is_(None), t.lease_expires_at < now)


def resend_due(now: datetime, since: datetime) -> Any:
    """`unknown` rows due for a retry of their request: stamped with a key first sent at or
    after `since` (the window), due, not leased. The worker's claim takes them together with
    rows due for a send (outbox.py `claim`, in the fair order of fairness.py)."""
    return and_(
        t.delivery_status == _UNKNOWN,
        t.delivery_request_key.is_not(None),
        t.delivery_request_at >= since,
        # An `unknown` row without a next attempt is final (past the window, or it could
        # not be retried): only one with `next_attempt_at` is claimed.
        t.next_attempt_at <= now,
        _lease_free(now),
    )


def sibling_free(now: datetime) -> Any:
    """An `unknown` row that may come along with a claimed row of its request."""
    return and_(t.delivery_status == _UNKNOWN, _lease_free(now))


async def with_siblings(connection: AsyncConnection, chosen: list[int], now: datetime) -> list[int]:
    """`chosen` plus the other `unknown` rows of the requests of its `unknown` rows (whatever
    their own due time), so one call answers the whole request. Rows of one request may
    still be split between two claimers; both then send the same request with the same
    key, and monday runs it at most once."""
    keys = select(t.delivery_request_key).where(
        t.id.in_(chosen), t.delivery_status == _UNKNOWN, t.delivery_request_key.is_not(None)
    )
    found = {row[0] for row in (await connection.execute(keys)).all()}
    if not found:
        return chosen
    siblings = select(t.id).where(t.delivery_request_key.in_(found), sibling_free(now))
    if connection.dialect.name == "postgresql":
        siblings = siblings.with_for_update(skip_locked=True)
    more = {row[0] for row in (await connection.execute(siblings)).all()} - set(chosen)
    return chosen + sorted(more)


class ResendStatements:
    engine: AsyncEngine

    def _updated(self, ids: Sequence[int]) -> None:  # SqlOutbox's: tells live subscribers
        raise NotImplementedError

    async def mark_sending_request(
        self,
        owner: str,
        ids: Sequence[int],
        *,
        request_key: str,
        lease_seconds: float,
    ) -> list[int]:
        """Just before a first send of the batch `ids` (in alias order) under `request_key`.

        All or nothing: the rows move to `sending` (attempts + 1, lease renewed, the request
        stamped on each) only if every one of them is still claimable under our lease. Else
        nothing moves and the ids that could move are returned, so the caller rebuilds the
        request (and its key) for those: a key must only ever name the rows it was sent with.
        Returns `ids` when they moved.
        """
        now = utcnow()
        mine = and_(
            t.id.in_(list(ids)),
            t.lease_owner == owner,
            t.delivery_status.in_(_CLAIMABLE),
            t.lease_expires_at >= now,
        )
        async with self.engine.begin() as connection:
            chosen = select(t.id).where(mine)
            if connection.dialect.name == "postgresql":
                chosen = chosen.with_for_update()
            eligible = {row[0] for row in (await connection.execute(chosen)).all()}
            if eligible != set(ids):
                return [i for i in ids if i in eligible]
            await connection.execute(
                update(notifications)
                .where(mine)
                .values(
                    delivery_status=_SENDING,
                    attempts=t.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                    delivery_request_key=request_key,
                    delivery_request_rows=list(ids),
                    delivery_request_at=now,
                )
            )
        self._updated(ids)
        return list(ids)

    async def mark_resending(
        self, owner: str, ids: Sequence[int], *, request_key: str, lease_seconds: float
    ) -> list[int]:
        """`unknown` rows we claimed go back to `sending` for a retry of their request (same
        key, window start kept). Returns the ids that moved."""
        now = utcnow()
        mine = and_(
            t.id.in_(list(ids)),
            t.lease_owner == owner,
            t.delivery_status == _UNKNOWN,
            t.delivery_request_key == request_key,
            t.lease_expires_at >= now,
        )
        async with self.engine.begin() as connection:
            await connection.execute(
                update(notifications)
                .where(mine)
                .values(
                    delivery_status=_SENDING,
                    attempts=t.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_seconds),
                )
            )
            result = await connection.execute(
                select(t.id).where(
                    t.id.in_(list(ids)), t.lease_owner == owner, t.delivery_status == _SENDING
                )
            )
            moved = [row[0] for row in result.all()]
        self._updated(moved)
        return moved

    async def request_rows(self, ids: Sequence[int]) -> list[Notification]:
        """The rows of one request, in `ids` order (whatever their status now)."""
        async with self.engine.connect() as connection:
            result = await connection.execute(select(notifications).where(t.id.in_(list(ids))))
            by_id = {int(row["id"]): Notification.from_row(row) for row in result.mappings()}
        return [by_id[i] for i in ids if i in by_id]

    async def reschedule_unknown(
        self,
        owner: str,
        ids: Sequence[int],
        *,
        at: datetime | None,
        error: Mapping[str, Any] | None = None,
    ) -> None:
        """`unknown` rows claimed but not resent now: due again at `at` (None: not retried
        any more), lease released, `last_error` replaced when given."""
        if not ids:
            return
        values: dict[str, Any] = {
            "next_attempt_at": at,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if error is not None:
            values["last_error"] = error
        async with self.engine.begin() as connection:
            await connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status == _UNKNOWN,
                )
                .values(**values)
            )
