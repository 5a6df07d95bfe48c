"""What a write to the `notifications` rows tells the realtime side (contract §13).

The stores call an `OnChange` after their transaction committed; the composition root
(`server/services.py`) hands them the change bus's `publish`, and `ignore` otherwise. The
callback must not block or raise: the bus only queues the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

ChangeEvent = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class RowChange:
    """Rows `ids` were created, updated or deleted.

    `account_id` is None when the writer only knew ids (the outbox's statements): the bus
    looks the accounts up. A delete carries each row's `(id, recipient, sender)` in `owners`,
    since the rows are gone and a non-admin may only hear of their own.
    """

    event: ChangeEvent
    ids: tuple[int, ...]
    account_id: str | None = None
    owners: tuple[tuple[int, str, str], ...] = ()


OnChange = Callable[[RowChange], None]


def ignore(change: RowChange) -> None:
    """The default `OnChange`: nobody listens."""
