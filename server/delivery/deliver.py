"""Send claimed ledger rows to monday and record each outcome (contract §6).

Rows that share a credential go out as one document of aliased `create_notification`
fields (batch size from settings; 1 turns batching off). A per-alias error fails only
its own row. Every request carries an Idempotency-Key stamped on its rows (resend.py). What
monday may have executed (no answer, any 5xx, `INTERNAL_SERVER_ERROR`: see monday/outcome.py)
becomes `unknown`, never `failed`, and is retried only as the very same request with the same
key, within the window of contract §11; what monday proved it did not execute is retried later
as a new request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from server.clock import utcnow
from server.delivery.batches import Batch, chunks, stamped_batches
from server.delivery.call_log import call_outcome, log_batch, monday_latency
from server.delivery.digest import units
from server.delivery.governor import Deferral, Governor, backoff_seconds, next_midnight_utc
from server.delivery.pretaken import PretakenBudgets
from server.delivery.resend import (
    RESEND_WINDOW,
    outcomes_by_row,
    redeliver,
    request_key,
    requests_for,
    stamped_key,
    unknown_due,
)
from server.delivery.shared import SharedRequests
from server.delivery.short_lived import ShortLivedTokens
from server.logs import account_id_var
from server.monday.client import MondayClient
from server.monday.outcome import SendOutcome
from server.notifications.model import (
    DeliveryStatus,
    DueFacts,
    Finish,
    Notification,
    PlannedRequest,
    delivery_error,
)
from server.notifications.ports import OutboxStore
from server.sender import SHORT_LIVED, CredentialRefusal
from server.storage.notifications import lease_token

log = logging.getLogger(__name__)

# (account_id, sent_as, credential_owner, for_others) -> an API token, or why none is usable
# now. `for_others` is True when the rows were asked for by someone else than the
# credential's owner: the resolver must check the owner may still lend it (contract §10),
# and the sender policy in force must still allow `sent_as`.
CredentialResolver = Callable[[str, str, str, bool], Awaitable[str | CredentialRefusal]]
EXPIRED_SHORT_LIVED = CredentialRefusal(
    "NO_CREDENTIAL",
    "The automation's short-lived token expired before the notification could be sent.",
)
# Called when monday rejects a stored credential (401): it must be reconnected.
ReconnectMarker = Callable[[str, str, str], Awaitable[None]]

delivery_counts: Counter[tuple[str, str, str]] = Counter()  # (sent_as, transport, status)
monday_errors: Counter[str] = Counter()
retries_scheduled: Counter[str] = Counter()
# A lease on rows being sent must outlast the HTTP call, or another worker would call the
# row stale (`unknown`) while its answer is still on the way.
LEASE_MARGIN_SECONDS = 5.0
# `Deliverer._planned` is emptied past this many keys (those of inserts rolled back).
MAX_PLANNED = 4096


@dataclass
class Deliverer:
    """Everything delivery needs; one per server process. The send service's dispatcher."""

    outbox: OutboxStore
    monday: MondayClient
    resolve: CredentialResolver
    mark_reconnect: ReconnectMarker
    owner: str
    batch_size: int = 25
    max_attempts: int = 8
    short_lived: ShortLivedTokens = field(default_factory=ShortLivedTokens)
    governor: Governor = field(default_factory=Governor)
    lease_seconds: int = 60
    # The earliest time (UTC) this process scheduled a row for: the worker wakes for it
    # rather than at its next poll. Rows other instances scheduled are found by polling.
    next_due: datetime | None = None
    # Contract §12: decides, as rows become due, which are muted (suppressed) or held back
    # (quiet hours); returns the rows to send now. None: every row goes out (delivery/gate.py).
    gate: Callable[[Sequence[Notification]], Awaitable[list[Notification]]] | None = None
    # The gate's decision at the insert, for rows due now (`DueFilter`): those it lets through
    # are stamped `sending` in the insert's transaction. None with a gate: none are.
    gate_clear: Callable[[Sequence[Notification], DueFacts], list[Notification]] | None = None
    # Keys `plan_requests` computed (in the writer thread) by request ids, until the inline
    # attempt sends them: it need not compute each key a second time to check it.
    _planned: dict[tuple[int, ...], str] = field(default_factory=dict)
    # Requests stamped for the attempts of several sends committed together (shared.py).
    shared: SharedRequests = field(default_factory=SharedRequests)
    # The insert's takes of the shared budget for the requests it stamped (pretaken.py).
    pretaken: PretakenBudgets = field(default_factory=PretakenBudgets)

    def _due_at(self, when: datetime) -> None:
        if self.next_due is None or when < self.next_due or self.next_due < utcnow():
            self.next_due = when

    def lease_token(self) -> str:
        return lease_token(self.owner)

    def hold_short_lived(self, row_id: int, token: str) -> None:
        self.short_lived.put(row_id, token)

    def call_lease_seconds(self) -> float:
        return max(float(self.lease_seconds), self.monday.timeout_seconds + LEASE_MARGIN_SECONDS)

    async def redeliver(self, rows: Sequence[Notification]) -> None:
        """Retry claimed `unknown` rows with their first request and key (contract §11)."""
        await redeliver(self, rows)

    async def dispatch(
        self, rows: Sequence[Notification], *, max_wait: float | None
    ) -> list[Notification]:
        return await self.deliver(rows, max_wait=max_wait)

    def _batches(self, rows: Sequence[Notification]) -> list[Batch]:
        """The monday requests `rows` go out in: per account, sender, credential owner and
        "for others", in id order, at most `batch_size` each."""
        groups: dict[tuple[str, str, str, bool], list[Notification]] = defaultdict(list)
        for row in sorted(rows, key=lambda row: row.id):
            owner = row.credential_owner or ""
            key = (row.account_id, row.sent_as or "", owner, row.sender != owner)
            groups[key].append(row)
        # `batch_size` counts monday notifications: a digest's rows stay in one request.
        return [
            (account_id, sent_as, owner, for_others, [row for unit in chunk for row in unit])
            for (account_id, sent_as, owner, for_others), group in groups.items()
            for chunk in chunks(units(group), self.batch_size)
        ]

    def plan_requests(self, rows: Sequence[Notification]) -> list[PlannedRequest]:
        """What `deliver` sends `rows` in, each request with its key (the send path's
        insert stamps these, so the inline attempt skips `mark_sending_request`). With a
        §12 gate wired, `rows` must be what `clear_due` let through."""
        planned = [
            PlannedRequest(tuple(row.id for row in batch), request_key(batch))
            for *_, batch in self._batches(rows)
        ]
        if len(self._planned) > MAX_PLANNED:
            self._planned.clear()  # keys of inserts rolled back; they are only a shortcut
        for request in planned:
            self._planned[request.ids] = request.key
        return planned

    def share_request(self, rows: Sequence[Notification], participants: int) -> None:
        """`rows`: one request stamped for the attempts of `participants` sends (in the
        writer's thread, inside their insert's transaction)."""
        self.shared.add(rows, participants)

    def clear_due(self, rows: Sequence[Notification], facts: DueFacts) -> list[Notification]:
        """Of rows due now, those the gate lets through untouched (all without a gate)."""
        if self.gate_clear is not None:
            return self.gate_clear(rows, facts)
        return [] if self.gate is not None else list(rows)

    async def deliver(
        self, rows: Sequence[Notification], *, max_wait: float | None = None
    ) -> list[Notification]:
        """Send rows this process has claimed; every row ends with a recorded status.

        Batches go out concurrently, as far as the governor lets them; a batch whose account
        is held back longer than `max_wait` seconds is rescheduled, not sent. Returns the
        rows as recorded (a batch that failed outright is left out: its rows keep their
        lease and are taken over when it expires).
        """
        # Rows the insert stamped `sending` already passed the gate (in its transaction,
        # `clear_due`): each stamped request goes out as it is, the others are gated first.
        stamped = stamped_batches(rows)
        rest = [row for row in rows if row.delivery_status != DeliveryStatus.SENDING]
        if self.gate is not None and rest:
            rest = await self.gate(rest)
        batches = [*stamped, *self._batches(rest)]
        results: list[list[Notification] | BaseException]
        if len(batches) == 1:
            # One request to monday (a send of one notification): in this task. A task of
            # its own would start only at the event loop's next turn, a wait as long as the
            # rest of the send path's own work.
            try:
                results = [await self._deliver_batch(batches[0], max_wait=max_wait)]
            except Exception as error:
                results = [error]
        else:
            results = await asyncio.gather(
                *(self._deliver_batch(batch, max_wait=max_wait) for batch in batches),
                return_exceptions=True,
            )
        recorded: list[Notification] = []
        for result in results:
            if isinstance(result, BaseException):
                # The rows keep their lease and are taken over when it expires.
                log.error("delivering a batch failed", exc_info=result)
            else:
                recorded.extend(result)
        return recorded

    async def _token_for(
        self, account_id: str, sent_as: str, owner: str, for_others: bool, row_id: int
    ) -> str | CredentialRefusal:
        if owner == SHORT_LIVED:
            token = self.short_lived.get(row_id)
            return EXPIRED_SHORT_LIVED if token is None else token
        return await self.resolve(account_id, sent_as, owner, for_others)

    async def _deliver_batch(self, batch: Batch, *, max_wait: float | None) -> list[Notification]:
        rows = batch[4]
        if rows[0].delivery_status == DeliveryStatus.SENDING and SharedRequests.is_part(rows):
            # Stamped together with other sends' rows: one call for all (shared.py).
            account_id, sent_as, owner, for_others, _ = batch

            async def send(every: list[Notification]) -> list[Notification]:
                whole = (account_id, sent_as, owner, for_others, every)
                return await self._deliver_group(whole, max_wait=max_wait)

            return await self.shared.join(rows, send)
        return await self._deliver_group(batch, max_wait=max_wait)

    async def _deliver_group(
        self, batch: Batch, *, max_wait: float | None = None
    ) -> list[Notification]:
        # The log lines of this batch carry its account (reset after: this may run in the
        # caller's own task, see `deliver`).
        context = account_id_var.set(batch[0])
        try:
            return await self._send_group(*batch, max_wait=max_wait)
        finally:
            account_id_var.reset(context)

    async def _send_group(
        self,
        account_id: str,
        sent_as: str,
        owner: str,
        for_others: bool,
        rows: list[Notification],
        *,
        max_wait: float | None,
    ) -> list[Notification]:
        rows = sorted(rows, key=lambda row: row.id)
        pretaken = self.pretaken.pop(tuple(row.id for row in rows))
        token = await self._token_for(account_id, sent_as, owner, for_others, rows[0].id)
        if isinstance(token, CredentialRefusal):
            # The credential went away (uninstall, disconnect, expired short-lived token), or
            # the policy no longer allows this sender: nothing was sent.
            error = delivery_error(token.code, token.message)
            failed = [Finish(row.id, DeliveryStatus.FAILED, error) for row in rows]
            return await self._record(rows, failed)
        credential = f"{account_id}:{sent_as}:{owner}"
        permit = await self.governor.acquire(
            account_id, credential, cost=len(rows), max_wait=max_wait, pretaken=pretaken
        )
        if isinstance(permit, Deferral):
            return await self._defer(rows, permit)
        outcomes: list[SendOutcome] = []
        window_end = utcnow() + RESEND_WINDOW  # the key is first sent now
        try:
            key = stamped_key(rows, planned=self._planned)
            if key is None:
                rows, key = await self._stamp_request(rows)
            if not rows:
                return []
            started = time.perf_counter()
            outcomes = await self.monday.send_notifications(
                token, requests_for(rows), idempotency_key=key
            )
            monday_latency.labels(call_outcome(outcomes)).observe(time.perf_counter() - started)
        finally:
            rate_limit = next((o.rate_limit for o in outcomes if o.rate_limit is not None), None)
            self.governor.report(permit, outcomes, rate_limit)
        if any(outcome.unauthorized for outcome in outcomes) and owner != SHORT_LIVED:
            await self.mark_reconnect(account_id, sent_as, owner)
        by_row = outcomes_by_row(rows, outcomes)
        finishes = [self._finish(row, by_row[row.id], window_end) for row in rows]
        recorded = await self._record(rows, finishes)
        log_batch(sent_as, owner, outcomes)
        return recorded

    async def _stamp_request(self, rows: list[Notification]) -> tuple[list[Notification], str]:
        """Move `rows` to `sending` with the key of exactly them; if some lost their lease,
        the request (and its key) is rebuilt for those still ours. ([], "") if none is."""
        while rows:
            key = request_key(rows)
            ids = [row.id for row in rows]
            moved = await self.outbox.mark_sending_request(
                _lease(rows[0]), ids, request_key=key, lease_seconds=self.call_lease_seconds()
            )
            if moved == ids:
                return rows, key
            still = set(moved)
            rows = [row for row in rows if row.id in still]
        return [], ""

    async def _defer(self, rows: list[Notification], deferral: Deferral) -> list[Notification]:
        error = delivery_error(deferral.code, deferral.message)
        self._due_at(deferral.until)
        deferred = await self.outbox.defer(
            _lease(rows[0]),
            [row.id for row in rows],
            until=deferral.until,
            error=error,
        )
        log.info(
            "monday's limits hold back %d notification(s) until %s (%s)",
            len(rows),
            deferral.until.isoformat(),
            deferral.code,
            extra={"fields": {"rows": len(rows), "until": deferral.until.isoformat()}},
        )
        return deferred

    def _finish(
        self,
        row: Notification,
        outcome: SendOutcome,
        window_end: datetime | None = None,
        *,
        resend: bool = False,
    ) -> Finish:
        """What to record for `row` after monday answered `outcome`.

        On a retry of an `unknown` row (`resend`) only a notification or monday's no to the
        same request moves it on; anything else leaves it `unknown`, since its first request
        may have run: it must never become a new request (a new key).
        """
        if outcome.status == "sent":
            return Finish(row.id, DeliveryStatus.SENT, monday_id=outcome.monday_id)
        monday_errors[outcome.code or "unknown"] += 1
        error = delivery_error(
            outcome.code or "MONDAY_ERROR",
            outcome.message or "monday did not accept the notification.",
            outcome.request_id,
        )
        refused = outcome.status == "failed" and not outcome.unauthorized
        if outcome.status == "unknown" or (resend and not refused):
            due = None
            if window_end is not None:
                due = unknown_due(row.attempts + 1, outcome.retry_after_seconds, window_end)
            if due is not None:
                self._due_at(due)
            return Finish(row.id, DeliveryStatus.UNKNOWN, error, next_attempt_at=due)
        if outcome.status != "retry":
            return Finish(row.id, DeliveryStatus(outcome.status), error)
        attempts = row.attempts + 1
        if attempts >= self.max_attempts:
            error["code"] = "RETRIES_EXHAUSTED"
            error["message"] = f"monday refused {attempts} times: {outcome.message or outcome.code}"
            return Finish(row.id, DeliveryStatus.FAILED, error)
        retries_scheduled[outcome.code or "unknown"] += 1
        if outcome.daily_limit:
            # Not before monday's reset; spread over the first minute after it.
            due = next_midnight_utc() + timedelta(seconds=random.uniform(0, 60))  # noqa: S311
        else:
            due = utcnow() + timedelta(
                seconds=backoff_seconds(attempts, outcome.retry_after_seconds)
            )
        self._due_at(due)
        return Finish(row.id, DeliveryStatus.RETRY_SCHEDULED, error, next_attempt_at=due)

    async def _record(
        self, rows: Sequence[Notification], finishes: Sequence[Finish]
    ) -> list[Notification]:
        """Write the outcomes of one batch (one transaction), then count them; the rows as
        recorded."""
        recorded = await self.outbox.finish_many(_lease(rows[0]), finishes, known=rows)
        for row, finish in zip(rows, finishes, strict=True):
            if finish.next_attempt_at is None:  # no further attempt needs the token
                self.short_lived.drop(row.id)
            key = (row.sent_as or "", row.transport or "", finish.delivery_status.value)
            delivery_counts[key] += 1
        return recorded


def _lease(row: Notification) -> str:
    # Rows reach delivery claimed (or inserted leased): a row without a lease is a bug.
    assert row.lease_owner is not None, f"notification {row.id} is not leased"
    return row.lease_owner
