"""What the notification services need from the outside, as small protocols.

Each has one real adapter: the stores in `server/storage/notifications/`, the dispatcher
in `server/delivery/deliver.py`, the installation facts in `server/services.py`. The
services depend on these protocols only, so `notifications` never imports `delivery`
or `storage` (the composition root, `server/services.py`, plugs the adapters in).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from server.notifications.model import (
    AuditEntry,
    BudgetTaken,
    DeliveryStatus,
    DueFacts,
    DueFilter,
    Finish,
    IdempotencyRecord,
    KeyReservation,
    LedgerStatus,
    NewNotification,
    Notification,
    Pacing,
    PlannedRequest,
    RequestPlanner,
    RequestSharer,
    Visibility,
)
from server.notifications.query import Query
from server.sender import InstallationFacts


class SendRateTake(Protocol):
    """The user's take from the shared send-rate bucket that the send's insert makes in its
    transaction (notifications/send_limit.py `SharedBucketTake`): the store locks the row of
    `scope`, takes `rows` tokens (the bucket holds `capacity`, refilled at `per_second`, as
    of `now`) and gives `settle` the tokens there were before, and a count of the user's
    rows still waiting; `settle` returns the pacing or raises the request's 429."""

    @property
    def scope(self) -> str: ...

    @property
    def account_id(self) -> str: ...

    @property
    def user_id(self) -> str: ...

    @property
    def rows(self) -> int: ...

    @property
    def capacity(self) -> float: ...

    @property
    def per_second(self) -> float: ...

    @property
    def now(self) -> datetime: ...

    def settle(self, tokens: float, waiting: Callable[[], int]) -> Pacing: ...


class NotificationStore(Protocol):
    """The ledger rows and the sender audit log."""

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
    ) -> list[Notification]: ...

    async def write_audit(self, entry: AuditEntry) -> None: ...

    async def get(self, row_id: int) -> Notification | None: ...

    async def get_many(self, ids: Sequence[int]) -> list[Notification]: ...

    async def record_relay(
        self,
        row_id: int,
        *,
        status: DeliveryStatus,
        monday_id: str | None,
        error: Mapping[str, Any] | None,
    ) -> Notification | None: ...

    async def set_status(
        self, visibility: Visibility, changes: Sequence[tuple[int, LedgerStatus | None]]
    ) -> list[Notification] | None: ...

    async def set_status_all(
        self, visibility: Visibility, keys: Sequence[int], status: LedgerStatus | None
    ) -> list[Notification] | None: ...

    async def set_status_matching(
        self, visibility: Visibility, query: Query, status: LedgerStatus | None
    ) -> list[Notification]: ...

    async def delete(self, deletable: Visibility, keys: Sequence[int]) -> list[int] | None: ...

    async def delete_matching(
        self, visible: Visibility, deletable: Visibility, query: Query
    ) -> list[int] | None: ...


class OutboxStore(Protocol):
    """Leases and delivery outcomes on ledger rows (used by delivery, not by the services)."""

    async def claim(
        self,
        owner: str,
        *,
        lease_seconds: int,
        limit: int,
        ids: Sequence[int] | None = None,
        resend_since: datetime | None = None,
    ) -> list[Notification]: ...

    async def mark_sending(
        self, owner: str, ids: Sequence[int], *, lease_seconds: float | None = None
    ) -> list[int]: ...

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
    ) -> None: ...

    async def finish_many(
        self, owner: str, outcomes: Sequence[Finish], *, known: Sequence[Notification] = ()
    ) -> list[Notification]:
        """The rows that moved, as stored; `known`: the caller's copies of the rows as
        stored, which spare reading back a row still exactly that copy."""
        ...

    async def defer(
        self, owner: str, ids: Sequence[int], *, until: datetime, error: Mapping[str, Any]
    ) -> list[Notification]: ...

    async def release(self, owner: str, ids: Sequence[int]) -> None: ...

    async def expire_stale_sending(self) -> int: ...

    # Contract §11 (storage/notifications/resend.py): requests stamped with their key, and
    # `unknown` rows (claimed by `claim` with `resend_since`) retried with exactly that request.
    async def mark_sending_request(
        self, owner: str, ids: Sequence[int], *, request_key: str, lease_seconds: float
    ) -> list[int]: ...

    async def mark_resending(
        self, owner: str, ids: Sequence[int], *, request_key: str, lease_seconds: float
    ) -> list[int]: ...

    async def request_rows(self, ids: Sequence[int]) -> list[Notification]: ...

    async def reschedule_unknown(
        self,
        owner: str,
        ids: Sequence[int],
        *,
        at: datetime | None,
        error: Mapping[str, Any] | None = None,
    ) -> None: ...

    async def queue_depth(self) -> tuple[dict[str, int], float]: ...


class RowsById(Protocol):
    async def get_many(self, ids: Sequence[int]) -> list[Notification]:
        """Rows by id, in the order of `ids` (missing ones left out)."""
        ...


class IdempotencyStore(Protocol):
    async def reserve(self, account_id: str, user_id: str, key: str, digest: str) -> bool: ...

    async def read(self, account_id: str, user_id: str, key: str) -> IdempotencyRecord | None: ...

    async def forget(self, account_id: str, user_id: str, key: str) -> None: ...

    async def keep_answer(
        self, account_id: str, user_id: str, key: str, status: int, body: Any
    ) -> bool: ...

    async def keep_new_answer(
        self, account_id: str, user_id: str, key: str, digest: str, status: int, body: Any
    ) -> None: ...


class SendBacklog(Protocol):
    """The per-user send limit's shaping: the user's rows not yet sent, and pacing rows
    (storage/notifications/pacing.py)."""

    async def waiting(self, account_id: str, user_id: str) -> int: ...

    async def pace(self, owner: str, schedule: Sequence[tuple[int, datetime]]) -> None: ...


class Dispatcher(Protocol):
    """Sends rows the send service wrote (already leased to it) and records their outcomes."""

    def lease_token(self) -> str:
        """A fresh lease token for one request's rows."""
        ...

    def hold_short_lived(self, row_id: int, token: str) -> None:
        """Keep an automation's short-lived token (memory only) for the row's delivery."""
        ...

    def plan_requests(self, rows: Sequence[Notification]) -> list[PlannedRequest]:
        """The monday requests `dispatch` will send `rows` in (ids and Idempotency-Key each):
        the insert stamps them, so the inline attempt needs no write before its call."""
        ...

    def share_request(self, rows: Sequence[Notification], participants: int) -> None:
        """`rows` are one request stamped for the inline attempts of `participants` inserts
        committed together: `dispatch` sends it once for all of them. Called inside the
        insert's transaction (storage/notifications/coalesce.py)."""
        ...

    def clear_due(self, rows: Sequence[Notification], facts: DueFacts) -> list[Notification]:
        """Of `rows` (due now), those the §12 gate would let through untouched; decided
        inside the insert's transaction, so the insert may stamp them `sending` at once."""
        ...

    def call_lease_seconds(self) -> float:
        """How long rows being sent must stay leased (longer than monday's timeout)."""
        ...

    async def dispatch(
        self, rows: Sequence[Notification], *, max_wait: float | None
    ) -> list[Notification]:
        """Attempt `rows` now; each ends with a recorded status (sent, retry, failed...).
        Returns the rows whose outcome was recorded, as stored."""
        ...


class SenderFactsSource(Protocol):
    """The installation and credential facts the sender decision needs."""

    async def installation(self, account_id: str) -> InstallationFacts:
        """The facts, checked against the database's revision now (one read)."""
        ...

    def unchecked_installation(self, account_id: str) -> tuple[InstallationFacts, int] | None:
        """Cached facts and their revision, read from memory only (None if not cached): a
        send decided on them must have the insert confirm the revision (`expect_revision`)."""
        ...

    def confirmed(self, account_id: str, revision: int) -> None:
        """The insert saw `revision`: the cached facts count as checked now."""
        ...

    async def credential_usable(
        self, account_id: str, user_id: str, kind: str, *, unchecked: bool = False
    ) -> bool: ...


class ScheduleStore(Protocol):
    """Contract §12 on the ledger rows: what the scheduler and the due-time gate write."""

    async def release_due(self, *, limit: int = 1000) -> int: ...

    async def suppress(self, owner: str, ids: Sequence[int]) -> int: ...

    async def hold(
        self, owner: str, ids: Sequence[int], *, until: datetime, reason: str
    ) -> int: ...

    async def muted(self, rows: Sequence[Notification]) -> set[int]: ...

    async def open_digest(
        self, owner: str, ids: Sequence[int], *, key: Notification, window_seconds: int
    ) -> datetime | None: ...

    async def take_digests(
        self, owner: str, digest_ids: Sequence[str], *, lease_until: datetime
    ) -> list[Notification]: ...

    async def end_digest(self, owner: str, ids: Sequence[int]) -> None: ...

    async def account_schedule(self, account_id: str) -> AccountScheduleFacts: ...


class AccountScheduleFacts(Protocol):
    """An account's quiet hours ("HH:MM", None = off) and digest window (seconds)."""

    @property
    def quiet_start(self) -> str | None: ...

    @property
    def quiet_end(self) -> str | None: ...

    @property
    def digest_window_seconds(self) -> int: ...


class ScheduleChanges(Protocol):
    """Reschedule or cancel `scheduled` rows (the ledger's PATCH, contract §12)."""

    async def change_schedule(
        self, scope: Visibility, changes: Sequence[tuple[Sequence[int], dict[str, Any]]]
    ) -> list[Notification] | None: ...
