"""Exactly once (contract §11): one Idempotency-Key per exact request, and `unknown` rows
retried with that very request while monday still remembers the key.

monday replays the first answer to a key for 30 minutes and answers 409 while the first is
in flight, so sending the same document with the same key again can never notify twice.
A key names one request: the account, the sender, the credential owner, the row ids in
alias order and the exact document and variables. A retry rebuilds the document from the
same rows (their text, recipient and target never change) and checks it yields the key.
We retry for 25 minutes after the key was first sent, inside monday's 30, so a retry never
reaches monday after it has forgotten the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from server.clock import utcnow
from server.delivery.call_log import call_outcome, monday_latency
from server.delivery.digest import unit_text, units
from server.delivery.governor import Deferral, backoff_seconds
from server.logs import account_id_var
from server.monday.client import NotificationRequest, notification_payload
from server.monday.outcome import SendOutcome
from server.notifications.model import DeliveryStatus, Notification, delivery_error
from server.sender import SHORT_LIVED, CredentialRefusal

if TYPE_CHECKING:
    from server.delivery.deliver import Deliverer

log = logging.getLogger(__name__)

RESEND_WINDOW = timedelta(minutes=25)


def requests_for(rows: Sequence[Notification]) -> list[NotificationRequest]:
    """One monday notification per row, or per digest (contract §12: delivery/digest.py)."""
    return [
        NotificationRequest(
            user_id=unit[0].recipient,
            target_id=unit[0].item,
            text=unit_text(unit),
            target_type=unit[0].collection,
        )
        for unit in units(rows)
    ]


def outcomes_by_row(
    rows: Sequence[Notification], outcomes: Sequence[SendOutcome]
) -> dict[int, SendOutcome]:
    """Each row's outcome: a digest's rows all share the answer to their one notification."""
    return {
        row.id: outcome for unit, outcome in zip(units(rows), outcomes, strict=True) for row in unit
    }


def request_key(rows: Sequence[Notification]) -> str:
    """The Idempotency-Key of sending exactly `rows` (in this order) as one request.

    Each row counts with its creation time as well as its id: SQLite used to give a deleted
    newest row's id to the next insert (no longer: storage/tables.py `notification_id_floor`),
    and the same words sent again then must not be a replay of the deleted row's request. The
    key is computed once and stored on the rows (a retry reads it back), so the time's round
    trip through the database does not matter."""
    first = rows[0]
    query, variables = notification_payload(requests_for(rows))
    material = [
        first.account_id,
        first.sent_as or "",
        first.credential_owner or "",
        [[row.id, row.timestamp.isoformat()] for row in rows],
        query,
        variables,
    ]
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def redeliver(deliverer: Deliverer, rows: Sequence[Notification]) -> None:
    """Retry claimed `unknown` rows: one call per request they were sent in."""
    requests: dict[str, list[Notification]] = defaultdict(list)
    for row in rows:
        if row.delivery_request_key is not None:
            requests[row.delivery_request_key].append(row)
    # Concurrently, as `deliver` sends its batches (the governor paces both): one slow
    # request must not hold back the rest of the claim.
    results = await asyncio.gather(
        *(_resend(deliverer, key, claimed) for key, claimed in requests.items()),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            # The rows keep their lease and are claimed again when it expires.
            log.error("retrying an unknown request failed", exc_info=result)


async def _resend(deliverer: Deliverer, key: str, claimed: list[Notification]) -> None:
    first = claimed[0]
    account_id_var.set(first.account_id)
    lease = first.lease_owner
    assert lease is not None and first.delivery_request_at is not None
    ids = [row.id for row in claimed]
    window_end = first.delivery_request_at + RESEND_WINDOW
    outbox = deliverer.outbox
    batch = await outbox.request_rows(first.delivery_request_rows)
    if [r.id for r in batch] != list(first.delivery_request_rows) or request_key(batch) != key:
        # A row of the request is gone: the exact request cannot be rebuilt, and any other
        # request could run twice. It stays `unknown`, not retried.
        error = delivery_error(
            "REQUEST_CHANGED",
            "The request this notification was sent in can no longer be rebuilt exactly; "
            "monday may or may not have it.",
        )
        await outbox.reschedule_unknown(lease, ids, at=None, error=error)
        return
    owner = first.credential_owner or ""
    sent_as = first.sent_as or ""
    token = await deliverer._token_for(
        first.account_id, sent_as, owner, first.sender != owner, first.id
    )
    if isinstance(token, CredentialRefusal):
        error = delivery_error(
            token.code,
            f"Not retried: {token.message} monday may or may not have the first attempt.",
        )
        await outbox.reschedule_unknown(lease, ids, at=None, error=error)
        return
    permit = await deliverer.governor.acquire(
        first.account_id, f"{first.account_id}:{sent_as}:{owner}", cost=len(batch)
    )
    if isinstance(permit, Deferral):
        at = permit.until if permit.until < window_end else None
        if at is not None:
            deliverer._due_at(at)
        await outbox.reschedule_unknown(lease, ids, at=at)
        return
    outcomes: list[SendOutcome] = []
    try:
        sending = set(
            await outbox.mark_resending(
                lease, ids, request_key=key, lease_seconds=deliverer.call_lease_seconds()
            )
        )
        if not sending:
            return
        started = time.perf_counter()
        outcomes = await deliverer.monday.send_notifications(
            token, requests_for(batch), idempotency_key=key
        )
        # Counted like the first attempts' calls (deliver.py), or the histogram hides resends.
        monday_latency.labels(call_outcome(outcomes)).observe(time.perf_counter() - started)
    finally:
        rate_limit = next((o.rate_limit for o in outcomes if o.rate_limit is not None), None)
        deliverer.governor.report(permit, outcomes, rate_limit)
    if any(outcome.unauthorized for outcome in outcomes) and owner != SHORT_LIVED:
        # monday rejected the credential now: whatever became of the first attempt, it is
        # not used again until it is reconnected (README "How credentials are protected").
        await deliverer.mark_reconnect(first.account_id, sent_as, owner)
    by_id = outcomes_by_row(batch, outcomes)
    mine = [row for row in claimed if row.id in sending]
    finishes = [deliverer._finish(row, by_id[row.id], window_end, resend=True) for row in mine]
    await deliverer._record(mine, finishes)


def unknown_due(attempts: int, told: float | None, window_end: datetime) -> datetime | None:
    """When to ask monday again about an `unknown` row, or None once past the window."""
    due = utcnow() + timedelta(seconds=backoff_seconds(attempts, told))
    return due if due < window_end else None


def stamped_key(
    rows: Sequence[Notification], *, planned: dict[tuple[int, ...], str] | None = None
) -> str | None:
    """The key the insert stamped `rows` with, if they are exactly one stamped request (all
    `sending` under one lease, stamped with these ids, and the key is this document's):
    then they are sent as they are. None: they need `mark_sending_request` first.
    `planned`: keys this process computed for these very ids from these rows' values
    (`Deliverer.plan_requests`); a key found there (taken out) is not computed again."""
    first = rows[0]
    key = first.delivery_request_key
    ids = tuple(row.id for row in rows)
    if key is None or any(
        row.delivery_status != DeliveryStatus.SENDING
        or row.delivery_request_key != key
        or row.delivery_request_rows != ids
        or row.lease_owner != first.lease_owner
        for row in rows
    ):
        return None
    # The key names exactly the document sent with it (contract §11): checked, not assumed.
    if planned is not None and planned.pop(ids, None) == key:
        return key
    return key if request_key(rows) == key else None
