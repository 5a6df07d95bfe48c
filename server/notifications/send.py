"""Create = send (contract §5-§6): decide the sender, write the rows, forward, record.

Every surface (Directus REST and GraphQL, the monday-compatible `/v2`, automations)
calls `SendService.send`, so there is one send path. The service sees the database and
monday only through the ports in `notifications/ports.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from server.clock import utcnow
from server.errors import ApiError, forbidden
from server.monday.client import CREATE_NOTIFICATION
from server.notifications.idempotency import pending_reservation
from server.notifications.inputs import NotificationInput
from server.notifications.model import (
    AuditEntry,
    BudgetTaken,
    DeliveryStatus,
    KeyReservation,
    NewNotification,
    Notification,
    Pacing,
    RevisionMoved,
)
from server.notifications.ports import (
    Dispatcher,
    NotificationStore,
    SendBacklog,
    SenderFactsSource,
)
from server.notifications.relay_input import RelayError, RelayOutcome
from server.notifications.schedule_events import SEND_AT, scheduled_counts
from server.notifications.schedule_rules import is_future
from server.notifications.send_limit import SendRateLimiter, SharedBucketTake
from server.sender import (
    Caller,
    ConnectedCredentials,
    InstallationFacts,
    SenderDecision,
    SenderRefused,
    SenderRequest,
    decide_sender,
)

AUTOMATION = "automation"  # the surface of `POST /monday/actions/*`
# A due row the send attempts at once: `queued`, or `sending` when the insert stamped it.
_INLINE = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)

# Rows accepted into the ledger, by (sent_as, transport); read by /metrics.
accepted_counts: Counter[tuple[str, str]] = Counter()


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Who asks, from where, and what they may use."""

    account_id: str
    user_id: str
    is_view_only: bool = False
    is_guest: bool = False
    surface: str = "rest"
    relay_capable: bool = False
    short_lived_token: str | None = None
    idempotency_key: str | None = None

    def audit(
        self,
        hint: str | None,
        policy: str,
        outcome: str,
        reason: str,
        decision: SenderDecision | None = None,
    ) -> AuditEntry:
        """The audit row of one decision (or refusal) for this request."""
        return AuditEntry(
            self.account_id, self.user_id, self.surface, hint, policy, outcome, reason, decision
        )


def relay_payload(row: Notification) -> dict[str, Any]:
    """The exact mutation and variables a view runs through monday's seamless `api()`."""
    return {
        "query": CREATE_NOTIFICATION,
        "variables": {
            "user_id": row.recipient,
            "target_id": row.item,
            "text": row.message,
            "target_type": row.collection,
        },
    }


def _new_row(
    item: NotificationInput, decision: SenderDecision, now: datetime | None = None
) -> NewNotification:
    return NewNotification(
        recipient=item.recipient,
        message=item.message,
        collection=item.collection,
        item=item.item,
        subject=item.subject,
        sent_as=decision.sent_as,
        transport=decision.transport,
        credential_owner=decision.credential_owner,
        send_at=item.send_at,
        urgent=item.urgent,
        scheduled=is_future(item.send_at, now or utcnow()),
    )


@dataclass(frozen=True, slots=True)
class _Write:
    """What a send's insert needs besides the rows: the lease the rows are written under,
    the request's time, whether the inline request is stamped, the key reservation and the
    send-rate take."""

    lease: str
    now: datetime
    stamp: bool
    reserve: KeyReservation | None
    take: SharedBucketTake | None  # the user's shared send-rate take, made by the insert


@dataclass
class SendService:
    store: NotificationStore
    facts: SenderFactsSource
    dispatcher: Dispatcher
    lease_seconds: int = 60
    # Per-user rows-per-minute limit (settings.send_rate_per_minute); None or 0 = off.
    limiter: SendRateLimiter | None = None
    # The user's rows not yet sent, and pacing of rows beyond the rate (contract §11).
    backlog: SendBacklog | None = None
    # How long a caller's request may wait for monday's limits before its rows are left
    # to the background worker (they answer `retry_scheduled` then).
    inline_max_wait: float = 2.0
    # Shared limits (PostgreSQL): the insert spends the account's monday budget for each
    # request it stamps, in its transaction, and hands the take here (the dispatcher's).
    budget: BudgetTaken | None = None

    async def _usable(
        self, account_id: str, user_id: str | None, kind: str, *, unchecked: bool = False
    ) -> bool:
        if user_id is None:
            return False
        return await self.facts.credential_usable(account_id, user_id, kind, unchecked=unchecked)

    async def connected(
        self, request: SendRequest, facts: InstallationFacts, *, unchecked: bool = False
    ) -> ConnectedCredentials:
        if request.surface == AUTOMATION:
            # An automation sends with its own short-lived token only (contract §10): no
            # stored credential of the account is even looked at.
            return ConnectedCredentials(short_lived_token=request.short_lived_token is not None)
        installer = facts.installer_user_id
        account = request.account_id
        oauth = {
            user
            for user in {request.user_id, installer}
            if user is not None and await self._usable(account, user, "oauth", unchecked=unchecked)
        }
        return ConnectedCredentials(
            oauth_user_ids=frozenset(oauth),
            installer_api_key=await self._usable(
                account, installer, "api_key", unchecked=unchecked
            ),
            short_lived_token=request.short_lived_token is not None,
        )

    async def decide(
        self, request: SendRequest, items: Sequence[NotificationInput], *, checked: bool = False
    ) -> tuple[list[SenderDecision], str, int | None]:
        """One decision per distinct `send_as` (and the policy); any refusal refuses all.

        Decided on the cached facts when there are some (no read): the third value is then
        the revision they were read at, which the insert must confirm (`expect_revision`).
        A refusal is never made on unchecked facts: it is decided again on checked ones.
        `checked` (or nothing cached): checked against the database now; the third is None.
        """
        cached = None if checked else self.facts.unchecked_installation(request.account_id)
        if cached is None:
            facts, revision = await self.facts.installation(request.account_id), None
        else:
            facts, revision = cached
        credentials = await self.connected(request, facts, unchecked=revision is not None)
        caller = Caller(request.user_id, request.is_view_only, request.is_guest)
        decided: dict[str | None, SenderDecision] = {}
        for hint in dict.fromkeys(item.send_as for item in items):
            try:
                decided[hint] = decide_sender(
                    caller, facts, credentials, SenderRequest(hint, request.relay_capable)
                )
            except SenderRefused as refused:
                if revision is not None:
                    return await self.decide(request, items, checked=True)
                entry = request.audit(hint, facts.sender_policy, refused.code, refused.message)
                await self.store.write_audit(entry)
                raise
        return [decided[item.send_as] for item in items], facts.sender_policy, revision

    async def send(
        self, request: SendRequest, items: Sequence[NotificationInput]
    ) -> list[Notification]:
        """Decide, write the rows, forward those the server sends; return the rows as stored.

        Rows beyond the user's send rate are accepted and paced (`_shape`); raises 429
        `REQUESTS_EXCEEDED` (nothing written) only beyond the user's backlog.
        """
        # Shared buckets (PostgreSQL): the take is made by the insert, in its transaction.
        limiter, count = self.limiter, len(items)
        take = (
            None
            if limiter is None
            else limiter.shared_take(request.account_id, request.user_id, count)
        )
        reserved = None if take is not None else await self._reserve(request, count)
        now = utcnow()
        if request.relay_capable and any(is_future(item.send_at, now) for item in items):
            # Contract §12: a view cannot relay a send that happens later, so a batch with a
            # scheduled row is sent by the server (docs/scheduling.md).
            request = replace(request, relay_capable=False)
        try:
            decisions, policy, revision = await self.decide(request, items)
        except ApiError:
            self._unreserve(request, reserved)  # refused: nothing sent or counted
            raise
        lease = self.dispatcher.lease_token()
        # Rows paced past the user's rate stay `queued` for later (`_shape`), so a paced send
        # stamps none of its rows at the insert (they go the two-write way, as retries do);
        # a shared take decides that in the insert itself.
        stamp = reserved is None or reserved.paced == 0
        # Taken once (it is handed out once): a retry after `RevisionMoved` reserves it too.
        write = _Write(lease, now, stamp, pending_reservation(), take)
        try:
            rows = await self._insert(request, items, decisions, policy, write, revision)
        except RevisionMoved:
            # The facts changed since they were cached (another instance, or a write racing
            # this request): decide again on checked facts; nothing was written.
            try:
                decisions, policy, revision = await self.decide(request, items, checked=True)
            except ApiError:
                self._unreserve(request, reserved)
                raise
            rows = await self._insert(request, items, decisions, policy, write, None)
        pacing = reserved if take is None else take.pacing
        assert pacing is not None, "the insert settles the take it was given"
        if revision is not None:
            self.facts.confirmed(request.account_id, revision)
        for decision in decisions:
            accepted_counts[(decision.sent_as, decision.transport)] += 1
        scheduled_counts[SEND_AT] += sum(
            r.delivery_status == DeliveryStatus.SCHEDULED for r in rows
        )
        # Scheduled rows wait for the delivery worker, which releases them when due; rows
        # due now are `queued`, or `sending` when the insert stamped their inline request.
        server_rows = [
            row for row in rows if row.transport == "server" and row.delivery_status in _INLINE
        ]
        if request.short_lived_token is not None:
            for row in rows:
                if row.transport == "server":
                    self.dispatcher.hold_short_lived(row.id, request.short_lived_token)
        if not server_rows:
            return rows
        sending = await self._shape(server_rows, pacing, lease)
        recorded: dict[int, Notification] = {}
        if sending:
            dispatched = await self.dispatcher.dispatch(sending, max_wait=self.inline_max_wait)
            recorded = {row.id: row for row in dispatched}
        # Rows paced for later, or in a batch that failed outright: read them as they are now.
        missing = [row.id for row in server_rows if row.id not in recorded]
        if missing:
            recorded.update((row.id, row) for row in await self.store.get_many(missing))
        return [recorded.get(row.id, row) for row in rows]

    async def _insert(
        self,
        request: SendRequest,
        items: Sequence[NotificationInput],
        decisions: list[SenderDecision],
        policy: str,
        write: _Write,
        revision: int | None,
    ) -> list[Notification]:
        """The one write before monday is called: the rows, their audit entries and the
        request's Idempotency-Key reservation, in one transaction (and, for facts decided
        from the cache, the check of their revision). Rows the server sends now are written
        already leased to this request and, when the §12 gate lets them through at once,
        stamped `sending` with the monday request the inline attempt sends them in: no
        claim, no race with the background worker, no write of the attempt's own before
        its call."""
        lease, now = write.lease, write.now
        audits = [
            request.audit(item.send_as, policy, "decided", decision.reason, decision)
            for item, decision in zip(items, decisions, strict=True)
        ]
        return await self.store.insert(
            account_id=request.account_id,
            sender=request.user_id,
            rows=[_new_row(item, d, now) for item, d in zip(items, decisions, strict=True)],
            audits=audits,
            idempotency_key=request.idempotency_key,
            lease_owner=lease,
            lease_seconds=max(self.lease_seconds, self.dispatcher.call_lease_seconds()),
            plan=self.dispatcher.plan_requests if write.stamp else None,
            share=self.dispatcher.share_request,
            reserve=write.reserve,
            clear=self.dispatcher.clear_due,
            expect_revision=revision,
            take=write.take,
            budget=self.budget if write.stamp else None,
        )

    # -- the per-user send limit (contract §11: it shapes, it does not drop) ---------------
    async def _reserve(self, request: SendRequest, count: int) -> Pacing:
        """Take the rows from the user's bucket in this process; refuse (429, nothing taken)
        only when the rows it cannot cover now would leave more than the backlog bound
        waiting. (Shared buckets are taken by the insert: `SharedBucketTake`.)"""
        limiter = self.limiter
        if limiter is None:
            return Pacing(now=count)
        pacing = limiter.reserve(request.account_id, request.user_id, count)
        # The backlog is counted only when rows are paced: a send within the rate adds none.
        if pacing.paced and self.backlog is not None:
            waiting = await self.backlog.waiting(request.account_id, request.user_id)
            refusal = limiter.beyond_backlog(waiting, pacing)
            if refusal is not None:
                limiter.refund(request.account_id, request.user_id, count)
                raise refusal
        return pacing

    def _unreserve(self, request: SendRequest, reserved: Pacing | None) -> None:
        """Give back what `_reserve` took for a request refused after it (a shared take
        needs nothing: the insert that made it was rolled back, or never ran)."""
        if self.limiter is not None and reserved is not None:
            self.limiter.refund(request.account_id, request.user_id, reserved.now + reserved.paced)

    async def _shape(
        self, server_rows: list[Notification], pacing: Pacing, lease: str
    ) -> list[Notification]:
        """The rows to send now; the last `pacing.paced` are left `queued` for the worker,
        each due at its moment. (Seamless rows are the view's to send: not paced here.)"""
        paced = min(pacing.paced, len(server_rows))
        if not paced or self.backlog is None:
            return server_rows
        later = server_rows[len(server_rows) - paced :]
        due = pacing.due[pacing.paced - paced :]
        await self.backlog.pace(lease, [(row.id, at) for row, at in zip(later, due, strict=True)])
        return server_rows[: len(server_rows) - paced]

    async def relay(
        self, account_id: str, user_id: str, row_id: int | None, outcome: RelayOutcome
    ) -> Notification:
        """Record what a view reports after its seamless call (`POST .../relay`).

        Only the user whose view was asked to relay may report; anything else looks missing
        (403). A row that is not awaiting a relay is 409 NOT_AWAITING_CLIENT.
        """
        row = await self.store.get(row_id) if row_id is not None else None
        if row is None or row.account_id != account_id or row.sender != user_id:
            raise forbidden()
        if row.delivery_status != DeliveryStatus.AWAITING_CLIENT:
            raise ApiError(
                409,
                "NOT_AWAITING_CLIENT",
                f"This notification is {row.delivery_status}, not awaiting a relay.",
            )
        # Only the documented fields, each bounded (notifications/relay_input.py).
        error = None if outcome.ok else (outcome.error or RelayError()).to_last_error()
        status = DeliveryStatus.SENT if outcome.ok else DeliveryStatus.FAILED
        updated = await self.store.record_relay(
            row_id=row.id, status=status, monday_id=outcome.monday_id, error=error
        )
        if updated is None:
            raise ApiError(
                409, "NOT_AWAITING_CLIENT", "This notification is no longer awaiting a relay."
            )
        return updated
