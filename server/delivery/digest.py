"""Digests (contract §12): rows of one (recipient, collection + item, sender, sent_as) that
fall due within an account's digest window go to monday as one notification.

The gate calls `digest_rows` with each batch about to be sent, after mutes and quiet hours:

- A row becoming due for the first time (`queued`, no `digest_id`, `may_wait`) in an
  account whose window is on joins its key's open window, or opens one that closes
  `digest_window_seconds` from now and does not slide: `scheduled`, `next_attempt_at` = the
  close, one shared `digest_id`. It is not sent now.
- At the close the scheduler releases the window's rows together (same `next_attempt_at`);
  the first batch to hold one of them leases the rest too (`take_digests`), so the rows go
  out in one request. A window of one row loses its `digest_id` and goes out word for word.
- `units` turns rows into monday notifications: one per row, one per digest (its text from
  `schedule_rules.digest_text`); each row keeps its own ledger entry and outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from server.clock import utcnow
from server.notifications.model import DeliveryStatus, Notification
from server.notifications.ports import ScheduleStore
from server.notifications.schedule_events import DIGEST, scheduled_counts
from server.notifications.schedule_rules import digest_text

DigestKey = tuple[str, str, str, str, str, str | None]


def digest_key(row: Notification) -> DigestKey:
    return (row.account_id, row.recipient, row.collection, row.item, row.sender, row.sent_as)


def units(rows: Sequence[Notification]) -> list[list[Notification]]:
    """`rows` as monday notifications, in order of first appearance: rows sharing a
    `digest_id` are one, every other row is its own."""
    grouped: dict[object, list[Notification]] = {}
    for row in rows:
        grouped.setdefault(row.digest_id or ("row", row.id), []).append(row)
    return list(grouped.values())


def unit_text(unit: Sequence[Notification]) -> str:
    """One row's message word for word; a digest's count and quotes (≤ 5,000 chars)."""
    if len(unit) == 1:
        return unit[0].message
    return digest_text([row.message for row in sorted(unit, key=lambda r: r.id)])


async def digest_rows(store: ScheduleStore, rows: list[Notification]) -> list[Notification]:
    """The rows to send now; the others now wait in a digest window (see above)."""
    closing = await _close(store, [r for r in rows if r.digest_id is not None])
    opening = [
        r
        for r in rows
        if r.digest_id is None and r.delivery_status == DeliveryStatus.QUEUED and r.may_wait
    ]
    windows: dict[str, int] = {}
    for account_id in {r.account_id for r in opening}:
        policy = await store.account_schedule(account_id)
        if policy.digest_window_seconds > 0:
            windows[account_id] = policy.digest_window_seconds
    by_key: dict[tuple[str, DigestKey], list[Notification]] = defaultdict(list)
    for row in opening:
        if row.account_id in windows and row.lease_owner is not None:
            by_key[(row.lease_owner, digest_key(row))].append(row)
    held: set[int] = set()
    for (owner, _key), group in by_key.items():
        ids = [r.id for r in group]
        seconds = windows[group[0].account_id]
        if await store.open_digest(owner, ids, key=group[0], window_seconds=seconds):
            held.update(ids)
            scheduled_counts[DIGEST] += len(ids)
    rest = [r for r in rows if r.digest_id is None and r.id not in held]
    return rest + closing


async def _close(store: ScheduleStore, rows: list[Notification]) -> list[Notification]:
    """Rows of closed windows, with the window's other rows taken too; a window of one row
    sent as itself (no `digest_id`)."""
    if not rows:
        return []
    owner = rows[0].lease_owner
    assert owner is not None
    until = rows[0].lease_expires_at or utcnow() + timedelta(seconds=60)
    digest_ids = sorted({r.digest_id for r in rows if r.digest_id is not None})
    more = await store.take_digests(owner, digest_ids, lease_until=until)
    everything = [*rows, *more]
    by_digest: dict[str, list[Notification]] = defaultdict(list)
    for row in everything:
        assert row.digest_id is not None
        by_digest[row.digest_id].append(row)
    singles = [group[0] for group in by_digest.values() if len(group) == 1]
    if singles:
        await store.end_digest(owner, [r.id for r in singles])
    single_ids = {r.id for r in singles}
    return [replace(r, digest_id=None) if r.id in single_ids else r for r in everything]
