"""Statements of contract §12 on the ledger rows: release due scheduled rows, hold rows back
(quiet hours, digest windows), suppress muted rows, reschedule or cancel, and the `mutes` table.

A scheduled row waits as `scheduled` with `next_attempt_at` = when it is due, so releasing
due rows reads `ix_notifications_due` (delivery_status, next_attempt_at) from its start.
Every status guard comes from the transition table in `notifications/model.py`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.notifications.changes import OnChange, RowChange, ignore
from server.notifications.model import (
    CLAIMABLE,
    DeliveryStatus,
    Notification,
    Visibility,
    sources,
)
from server.notifications.schedule_rules import AUTOMATION_HORIZON
from server.sender import SHORT_LIVED
from server.storage.notifications.rows import visibility_condition
from server.storage.notifications.stamp import mute_key
from server.storage.tables import installations, mutes, notifications

t = notifications.c
m = mutes.c
S = DeliveryStatus
_CLAIMABLE = sorted(s.value for s in CLAIMABLE)


def _from(target: DeliveryStatus) -> list[str]:
    return sorted(s.value for s in sources(target))


class _NotAll(Exception):
    """Rolls a batch back when it reached fewer rows than asked."""


@dataclass(frozen=True, slots=True)
class Mute:
    id: int
    collection: str | None
    item: str | None
    created_at: datetime

    @property
    def target_key(self) -> str:
        return mute_key(self.collection, self.item)


@dataclass(frozen=True, slots=True)
class AccountSchedule:
    """An account's §12 settings: quiet hours ("HH:MM" each, None = off), digest window."""

    quiet_start: str | None
    quiet_end: str | None
    digest_window_seconds: int


class SqlSchedule:
    """The §12 statements over one SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine, on_change: OnChange = ignore) -> None:
        self.engine = engine
        # Called after each committed status change, so live subscribers see it (§13).
        self.on_change = on_change

    def _updated(self, ids: Sequence[int]) -> None:
        if ids:
            self.on_change(RowChange("update", tuple(ids)))

    # ------------------------------------------------------------ the scheduler

    async def release_due(self, *, limit: int = 1000) -> int:
        """Move `scheduled` rows whose time has come to `queued` (the outbox then claims them
        under its lease, so each is sent once however many instances release it)."""
        now = utcnow()
        due = and_(t.delivery_status == S.SCHEDULED.value, t.next_attempt_at <= now)
        # Every poll asks; a plain read first keeps an idle poll off SQLite's writer.
        async with self.engine.connect() as connection:
            if (await connection.execute(select(t.id).where(due).limit(1))).first() is None:
                return 0
        async with self.engine.begin() as connection:
            candidates = select(t.id).where(due).order_by(t.next_attempt_at, t.id).limit(limit)
            if connection.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            ids = [row[0] for row in (await connection.execute(candidates)).all()]
            if not ids:
                return 0
            result = await connection.execute(
                update(notifications)
                .where(t.id.in_(ids), due)
                .values(delivery_status=S.QUEUED.value, lease_owner=None, lease_expires_at=None)
                .returning(t.id)
            )
            released = [int(row_id) for row_id in result.scalars().all()]
        self._updated(released)
        return len(released)

    async def suppress(self, owner: str, ids: Sequence[int]) -> int:
        """Rows leased to `owner` whose recipient muted them: `suppressed`, never sent."""
        return await self._release_to(owner, ids, S.SUPPRESSED, next_attempt_at=None)

    async def hold(self, owner: str, ids: Sequence[int], *, until: datetime, reason: str) -> int:
        """Rows leased to `owner`, due but held back (quiet hours): `scheduled` until `until`."""
        return await self._release_to(
            owner, ids, S.SCHEDULED, next_attempt_at=until, deferred_reason=reason
        )

    async def _release_to(
        self, owner: str, ids: Sequence[int], target: DeliveryStatus, **values: Any
    ) -> int:
        """Move rows leased to `owner` to `target` (where the transition table allows it),
        giving up the lease; live subscribers are told. Returns how many moved."""
        if not ids:
            return 0
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status.in_(_from(target)),
                )
                .values(
                    delivery_status=target.value,
                    lease_owner=None,
                    lease_expires_at=None,
                    **values,
                )
                .returning(t.id)
            )
            moved = [int(row_id) for row_id in result.scalars().all()]
        self._updated(moved)
        return len(moved)

    # ------------------------------------------------------------ digests

    async def open_digest(
        self, owner: str, ids: Sequence[int], *, key: Notification, window_seconds: int
    ) -> datetime | None:
        """Rows leased to `owner`, all of `key`'s (recipient, collection + item, sender,
        sent_as), join that key's open digest window, or open one now that closes in
        `window_seconds` (it does not slide): `scheduled` until the close, sharing a
        `digest_id`. The close, or None when no row moved."""
        if not ids:
            return None
        now = utcnow()
        async with self.engine.begin() as connection:
            window = (
                await connection.execute(
                    select(t.digest_id, t.next_attempt_at)
                    .where(
                        t.account_id == key.account_id,
                        t.recipient == key.recipient,
                        t.collection == key.collection,
                        t.item == key.item,
                        t.sender == key.sender,
                        t.sent_as == key.sent_as,
                        t.delivery_status == S.SCHEDULED.value,
                        t.digest_id.is_not(None),
                        t.deferred_reason.is_(None),
                        t.next_attempt_at > now,
                    )
                    .limit(1)
                )
            ).first()
            digest_id, close = (
                (str(window[0]), window[1])
                if window is not None
                else (uuid.uuid4().hex, now + timedelta(seconds=window_seconds))
            )
            result = await connection.execute(
                update(notifications)
                .where(
                    t.id.in_(list(ids)),
                    t.lease_owner == owner,
                    t.delivery_status.in_(_from(S.SCHEDULED)),
                )
                .values(
                    delivery_status=S.SCHEDULED.value,
                    next_attempt_at=close,
                    digest_id=digest_id,
                    lease_owner=None,
                    lease_expires_at=None,
                )
                .returning(t.id)
            )
            moved = [int(row_id) for row_id in result.scalars().all()]
        self._updated(moved)
        return close if moved else None

    async def take_digests(
        self, owner: str, digest_ids: Sequence[str], *, lease_until: datetime
    ) -> list[Notification]:
        """At a window's close: lease to `owner` every due row of `digest_ids` not leased by
        anyone (the release or a claim may have split them), so they go out together."""
        if not digest_ids:
            return []
        now = utcnow()
        async with self.engine.begin() as connection:
            result = await connection.execute(
                update(notifications)
                .where(
                    t.digest_id.in_(list(digest_ids)),
                    t.delivery_status.in_([S.SCHEDULED.value, *_CLAIMABLE]),
                    t.next_attempt_at <= now,
                    or_(t.lease_expires_at.is_(None), t.lease_expires_at < now),
                )
                .values(
                    delivery_status=case(
                        (t.delivery_status == S.SCHEDULED.value, S.QUEUED.value),
                        else_=t.delivery_status,
                    ),
                    lease_owner=owner,
                    lease_expires_at=lease_until,
                )
                .returning(*notifications.c)
            )
            rows = [Notification.from_row(r) for r in result.mappings()]
        self._updated([row.id for row in rows])
        return rows

    async def end_digest(self, owner: str, ids: Sequence[int]) -> None:
        """A window that closed with one row: it goes out word for word, with no digest_id."""
        if not ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                update(notifications)
                .where(t.id.in_(list(ids)), t.lease_owner == owner)
                .values(digest_id=None)
            )
        self._updated(ids)

    async def account_schedule(self, account_id: str) -> AccountSchedule:
        c = installations.c
        async with self.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(c.quiet_hours_start, c.quiet_hours_end, c.digest_window_seconds).where(
                        c.account_id == account_id
                    )
                )
            ).first()
        if row is None:
            return AccountSchedule(None, None, 0)
        return AccountSchedule(row[0], row[1], int(row[2] or 0))

    # ------------------------------------------------------------ reschedule / cancel

    async def change_schedule(
        self, scope: Visibility, changes: Sequence[tuple[Sequence[int], dict[str, Any]]]
    ) -> list[Notification] | None:
        """Apply each `(keys, values)` if every key is in `scope` and still `scheduled` (and
        not leased: a row being let out is no longer the sender's to change); the rows, or
        None with nothing changed otherwise. One transaction: all or nothing."""
        now = utcnow()
        changed: list[Notification] = []
        try:
            async with self.engine.begin() as connection:
                for keys, values in changes:
                    unique = list(dict.fromkeys(keys))
                    target = DeliveryStatus(values.get("delivery_status", S.SCHEDULED.value))
                    stmt = (
                        update(notifications)
                        .where(
                            t.id.in_(unique),
                            visibility_condition(scope),
                            t.delivery_status == S.SCHEDULED.value,
                            t.delivery_status.in_(_from(target)),
                            or_(t.lease_expires_at.is_(None), t.lease_expires_at < now),
                            *_within_token_life(values.get("send_at")),
                        )
                        .values(**values)
                        .returning(*notifications.c)
                    )
                    result = await connection.execute(stmt)
                    rows = [Notification.from_row(r) for r in result.mappings()]
                    if len(rows) != len(unique):
                        raise _NotAll
                    changed.extend(rows)
        except _NotAll:
            return None
        self._updated([row.id for row in changed])
        return changed

    # ------------------------------------------------------------ mutes

    async def mutes(self, account_id: str, user_id: str) -> list[Mute]:
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(m.id, m.collection, m.item, m.created_at)
                .where(m.account_id == account_id, m.user_id == user_id)
                .order_by(m.id)
            )
            return [Mute(int(r[0]), r[1], r[2], r[3]) for r in result.all()]

    async def add_mute(
        self, account_id: str, user_id: str, collection: str | None, item: str | None
    ) -> Mute:
        """Add the mute (idempotent: the existing one is returned)."""
        key = mute_key(collection, item)
        try:
            async with self.engine.begin() as connection:
                await connection.execute(
                    mutes.insert().values(
                        account_id=account_id,
                        user_id=user_id,
                        target_key=key,
                        collection=collection,
                        item=item,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            pass  # already muted
        found = [mute for mute in await self.mutes(account_id, user_id) if mute.target_key == key]
        return found[0]

    async def remove_mute(
        self, account_id: str, user_id: str, collection: str | None, item: str | None
    ) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                delete(mutes).where(
                    m.account_id == account_id,
                    m.user_id == user_id,
                    m.target_key == mute_key(collection, item),
                )
            )

    async def muted(self, rows: Sequence[Notification]) -> set[int]:
        """The ids of `rows` their recipient muted (everything, or the row's target)."""
        if not rows:
            return set()
        recipients = {(row.account_id, row.recipient) for row in rows}
        async with self.engine.connect() as connection:
            result = await connection.execute(
                select(m.account_id, m.user_id, m.target_key).where(
                    or_(
                        *(
                            and_(m.account_id == account, m.user_id == user)
                            for account, user in recipients
                        )
                    )
                )
            )
            keys = {(r[0], r[1], r[2]) for r in result.all()}
        return {
            row.id
            for row in rows
            if (row.account_id, row.recipient, "") in keys
            or (row.account_id, row.recipient, mute_key(row.collection, row.item)) in keys
        }


def _within_token_life(send_at: datetime | None) -> list[Any]:
    """A new `send_at` for an automation's row no later than its short-lived token lives
    (made at `timestamp`, sent by `timestamp` + AUTOMATION_HORIZON): moved later it could only
    fail. Other rows: no condition."""
    if send_at is None:
        return []
    return [
        or_(
            t.credential_owner.is_(None),
            t.credential_owner != SHORT_LIVED,
            t.timestamp >= send_at - AUTOMATION_HORIZON,
        )
    ]
