"""The ledger row as a typed value, and the one table of delivery-status transitions.

Every module that reads or moves `delivery_status` goes through `DeliveryStatus` and
`transition`/`sources` here, so a new status (contract §12) or a new edge is one edit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypedDict

from server.sender import SHORT_LIVED, SendAs, SenderDecision, Transport

LedgerStatus = Literal["inbox", "archived"]
LEDGER_STATUSES: tuple[LedgerStatus, ...] = ("inbox", "archived")


class DeliveryStatus(StrEnum):
    """Where a row is on its way to monday (contract §6 and §12)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY_SCHEDULED = "retry_scheduled"
    AWAITING_CLIENT = "awaiting_client"
    FAILED = "failed"
    UNKNOWN = "unknown"
    # Contract §12 (send later, quiet hours, mutes): named now so the table below is complete.
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    SUPPRESSED = "suppressed"


S = DeliveryStatus

# What a new row may start as: the server sends it, a view relays it, or it waits for send_at.
INITIAL: frozenset[DeliveryStatus] = frozenset({S.QUEUED, S.AWAITING_CLIENT, S.SCHEDULED})

# Every allowed move. A status missing as a key (sent, failed, cancelled, suppressed) is
# final. `unknown` goes back to `sending` only for a retry of the very same request with the
# same Idempotency-Key, within the window of contract §11 (monday replays, never runs twice).
TRANSITIONS: Mapping[DeliveryStatus, frozenset[DeliveryStatus]] = {
    # claimed rows go out (`sending`), are held back by the governor (`retry_scheduled`),
    # fail before any call (no credential), or are muted / cancelled before they are due.
    S.QUEUED: frozenset({S.SENDING, S.RETRY_SCHEDULED, S.FAILED, S.SCHEDULED, S.SUPPRESSED}),
    S.RETRY_SCHEDULED: frozenset({S.SENDING, S.RETRY_SCHEDULED, S.FAILED, S.SUPPRESSED}),
    # Past this point a request may have reached monday: only monday's answer (or its
    # absence, `unknown`) moves the row on.
    S.SENDING: frozenset({S.SENT, S.RETRY_SCHEDULED, S.FAILED, S.UNKNOWN}),
    # The view reports the outcome of the seamless call (POST .../relay).
    S.AWAITING_CLIENT: frozenset({S.SENT, S.FAILED}),
    S.UNKNOWN: frozenset({S.SENDING}),
    S.SCHEDULED: frozenset({S.QUEUED, S.SCHEDULED, S.CANCELLED, S.SUPPRESSED}),
}

# Rows the outbox may claim and send.
CLAIMABLE: frozenset[DeliveryStatus] = frozenset({S.QUEUED, S.RETRY_SCHEDULED})
# Rows waiting for delivery, as /metrics reports them.
WAITING: tuple[DeliveryStatus, ...] = (S.QUEUED, S.RETRY_SCHEDULED, S.SENDING)
# Rows that will not reach monday, or of which nobody knows whether they did.
NOT_SENT: frozenset[DeliveryStatus] = frozenset({S.FAILED, S.UNKNOWN})


class IllegalTransition(ValueError):
    """A status change the table above does not allow (a bug, never a user error)."""

    def __init__(self, current: DeliveryStatus, target: DeliveryStatus) -> None:
        super().__init__(f"delivery_status cannot move from {current} to {target}")
        self.current = current
        self.target = target


def can_move(current: DeliveryStatus, target: DeliveryStatus) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def transition(current: DeliveryStatus | str, target: DeliveryStatus | str) -> DeliveryStatus:
    """`target`, if a row in `current` may move there; IllegalTransition otherwise."""
    here, there = DeliveryStatus(current), DeliveryStatus(target)
    if not can_move(here, there):
        raise IllegalTransition(here, there)
    return there


def sources(target: DeliveryStatus) -> frozenset[DeliveryStatus]:
    """Every status a row may move to `target` from: the guard of a store's UPDATE."""
    return frozenset(here for here, there in TRANSITIONS.items() if target in there)


class DeliveryError(TypedDict):
    """`last_error`: why a row is not (yet) sent, as the API shows it."""

    code: str
    message: str
    monday_request_id: str | None


def delivery_error(code: str, message: str, monday_request_id: str | None = None) -> DeliveryError:
    return {"code": code, "message": message, "monday_request_id": monday_request_id}


@dataclass(frozen=True, slots=True)
class Notification:
    """One ledger row, every column typed. Stores return these; routes serialise them."""

    id: int
    timestamp: datetime
    status: LedgerStatus
    recipient: str
    sender: str
    subject: str | None
    message: str
    collection: str
    item: str
    account_id: str
    sent_as: SendAs | None
    transport: Transport | None
    credential_owner: str | None
    delivery_status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    sent_at: datetime | None
    last_error: Mapping[str, Any] | None
    idempotency_key: str | None
    # Outbox bookkeeping and monday's own id: internal, never in the API object.
    lease_owner: str | None
    lease_expires_at: datetime | None
    monday_id: str | None
    # The monday request the row was last sent in (contract §11): an `unknown` row is retried
    # with exactly this request (same rows, same document, same Idempotency-Key).
    delivery_request_key: str | None = None
    delivery_request_rows: tuple[int, ...] = ()
    delivery_request_at: datetime | None = None
    # Contract §12: asked send time, quiet-hours/digest bypass, shared digest, why held back.
    send_at: datetime | None = None
    urgent: bool = False
    digest_id: str | None = None
    deferred_reason: str | None = None
    # Contract §11: every failed attempt's error, oldest first (storage/.../attempt_errors.py).
    attempt_errors: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Notification:
        """From a `notifications` row as the database returns it (all columns)."""
        return cls(
            id=int(row["id"]),
            timestamp=row["timestamp"],
            status=row["status"],
            recipient=row["recipient"],
            sender=row["sender"],
            subject=row["subject"],
            message=row["message"],
            collection=row["collection"],
            item=row["item"],
            account_id=row["account_id"],
            sent_as=row["sent_as"],
            transport=row["transport"],
            credential_owner=row["credential_owner"],
            delivery_status=DeliveryStatus(row["delivery_status"]),
            attempts=int(row["attempts"]),
            next_attempt_at=row["next_attempt_at"],
            sent_at=row["sent_at"],
            last_error=row["last_error"],
            idempotency_key=row["idempotency_key"],
            lease_owner=row["lease_owner"],
            lease_expires_at=row["lease_expires_at"],
            monday_id=row["monday_id"],
            delivery_request_key=row.get("delivery_request_key"),
            delivery_request_rows=tuple(int(i) for i in row.get("delivery_request_rows") or ()),
            delivery_request_at=row.get("delivery_request_at"),
            send_at=row["send_at"],
            urgent=bool(row["urgent"]),
            digest_id=row["digest_id"],
            deferred_reason=row["deferred_reason"],
            attempt_errors=tuple(row.get("attempt_errors") or ()),
        )

    @property
    def may_wait(self) -> bool:
        """Whether quiet hours and digest windows may hold it (contract §12). Not when asked
        `urgent`, nor an automation's: it goes out only with its short-lived monday token,
        which lives 5 minutes, so held past that it could only fail (after its action was
        answered a success)."""
        return not self.urgent and self.credential_owner != SHORT_LIVED


@dataclass(frozen=True, slots=True)
class Visibility:
    """Which of an account's rows a caller reaches: all of them (`user_id` None, an admin),
    or those where the user holds one of `roles` (`recipient`, `sender`).

    The ledger service decides the rule; the store only turns it into a WHERE clause.
    """

    account_id: str
    user_id: str | None
    roles: tuple[Literal["recipient", "sender"], ...] = ("recipient", "sender")


@dataclass(frozen=True, slots=True)
class NewNotification:
    """A row to write: what was asked, and who the sender decision says sends it."""

    recipient: str
    message: str
    collection: str
    item: str
    subject: str | None
    sent_as: SendAs
    transport: Transport
    credential_owner: str
    # Contract §12: a future `send_at` makes the row `scheduled` until then.
    send_at: datetime | None = None
    urgent: bool = False
    scheduled: bool = False

    @property
    def initial_status(self) -> DeliveryStatus:
        # A seamless row waits for the caller's view to relay it; the server sends the rest.
        if self.scheduled:
            return S.SCHEDULED
        return S.AWAITING_CLIENT if self.transport == "seamless" else S.QUEUED


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One sender decision (or refusal): who asked, from where, which credential, why."""

    account_id: str
    user_id: str
    surface: str
    send_as_hint: str | None
    policy: str | None
    outcome: str
    reason: str
    decision: SenderDecision | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """A reserved `Idempotency-Key`: its body digest, and the first answer once there is one."""

    body_digest: str
    created_at: datetime
    response_status: int | None
    response_body: Any
    # The ledger rows the reserving request inserted, in item order (None: no rows, or a
    # reservation from before migration 0015).
    row_ids: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class Finish:
    """One row's recorded outcome: its new status and what goes with it."""

    row_id: int
    delivery_status: DeliveryStatus
    error: Mapping[str, Any] | None = None
    monday_id: str | None = None
    # For `retry_scheduled`: when it is due again (else after `retry_after` s, with jitter).
    next_attempt_at: datetime | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class KeyReservation:
    """An `Idempotency-Key` to reserve in the same transaction as a send's rows (contract §6):
    the insert fails with `KeyTaken` and writes nothing if another request holds the key."""

    account_id: str
    user_id: str
    key: str
    body_digest: str


class KeyTaken(Exception):
    """The `Idempotency-Key` of a `KeyReservation` was reserved first by another request."""


class RevisionMoved(Exception):
    """The account's installation `revision` was not the one a send was decided on: the
    insert wrote nothing, and the decision must be made again on checked facts."""


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    """One monday request the inline attempt will send: its rows (ids, in alias order) and
    the Idempotency-Key of exactly that document (contract §11)."""

    ids: tuple[int, ...]
    key: str


@dataclass(frozen=True, slots=True)
class Pacing:
    """The per-user send limit's answer for one request (notifications/send_limit.py): `now`
    of its rows go at once, then one at each moment of `due`."""

    now: int
    due: tuple[datetime, ...] = ()

    @property
    def paced(self) -> int:
        return len(self.due)


@dataclass(frozen=True)
class Block:
    """The account may not be called before `until`; why, in the governor's words."""

    until: datetime
    code: str
    message: str


# Given a request the insert stamped (its ids), when the account's shared monday budget was
# spent for it in the insert's transaction and what held it back (None: it may go): the
# deliverer's attempt then spends none of its own (PostgreSQL, contract §11).
BudgetTaken = Callable[[tuple[int, ...], datetime, "Block | None"], None]


# Given the rows just inserted leased for the inline attempt, the requests that attempt will
# send (delivery's own grouping and key). Called inside the insert's transaction.
RequestPlanner = Callable[[Sequence["Notification"]], Sequence[PlannedRequest]]
# Given the rows of one request stamped for the inline attempts of several inserts committed
# together, and how many inserts they came from: the deliverer sends it once for all of them.
RequestSharer = Callable[[Sequence["Notification"], int], None]


@dataclass(frozen=True, slots=True)
class DueFacts:
    """What the §12 gate needs to decide, at the insert, about rows due now; read in the
    insert's own transaction (so it is what the gate would read a moment later)."""

    # Ids of the rows whose recipient muted them (everything, or the row's target).
    muted: frozenset[int] = frozenset()
    # Accounts with quiet hours on: ("HH:MM" start, "HH:MM" end), local to the recipient.
    quiet_hours: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # Accounts whose digest window is on.
    digest_accounts: frozenset[str] = frozenset()


# Of the rows just inserted leased for the inline attempt, those the §12 gate lets through
# untouched now (not muted, not held by quiet hours, not opening a digest), decided from
# `DueFacts` and what is in memory only. Called inside the insert's transaction; the rows it
# leaves out stay `queued` and go through the gate itself before their attempt.
DueFilter = Callable[[Sequence["Notification"], DueFacts], Sequence["Notification"]]
