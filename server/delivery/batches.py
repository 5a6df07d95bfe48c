"""How claimed rows are grouped into monday requests (one per credential and key)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from server.notifications.model import DeliveryStatus, Notification

# (account_id, sent_as, credential owner, for_others, rows): one monday request.
Batch = tuple[str, str, str, bool, list[Notification]]


def stamped_batches(rows: Sequence[Notification]) -> list[Batch]:
    """The `sending` rows of `rows`, one batch per request the insert stamped them with."""
    by_key: dict[str, list[Notification]] = defaultdict(list)
    for row in rows:
        if row.delivery_status == DeliveryStatus.SENDING and row.delivery_request_key:
            by_key[row.delivery_request_key].append(row)
    batches: list[Batch] = []
    for group in by_key.values():
        first = group[0]
        owner = first.credential_owner or ""
        batch = sorted(group, key=lambda row: row.id)
        batches.append((first.account_id, first.sent_as or "", owner, first.sender != owner, batch))
    return batches


def chunks(items: Sequence[list[Notification]], size: int) -> list[Sequence[list[Notification]]]:
    return [items[start : start + size] for start in range(0, len(items), max(size, 1))]
