"""`Idempotency-Key` (contract §6): one send per key and body, replayed for 24 hours.

The key row is reserved in the same transaction as the send's rows (the store's primary key
makes that atomic): `once` leaves the reservation pending in a context variable, and the send
service hands it to the rows' insert (`pending_reservation`). A concurrent duplicate either
finds the key row and waits for the first answer, or loses the insert (`KeyTaken`, nothing
written) and then waits; it never sends again. A request that ends before writing rows (a
refusal, invalid input) stores its answer under the key afterwards. The statements are in
`storage/notifications/idempotency.py`; the rules (window, waiting, which answers are kept)
are here.

A reservation still without an answer once its request can no longer be running (older
than `request_bound`: the process that made it was killed) is abandoned. Its rows were
committed with it, and the delivery worker finishes them; the next request with the key and
body sends nothing: it answers from those rows as they are now, built as the first answer
would have been (the surface's `Recover`), and keeps that as the key's answer
(docs/scaling-out.md, "Idempotency-Key on our send routes").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from server.clock import utcnow
from server.errors import ApiError
from server.notifications.model import IdempotencyRecord, KeyReservation, KeyTaken, Notification
from server.notifications.ports import IdempotencyStore, RowsById

REPLAY_WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
WAIT_FOR_FIRST_SECONDS = 30.0
# Beyond the calls a request makes (its monday call, the wait for monday's limits) and the
# in-flight wait allowed for its database work: writer queues, clock skew between instances.
REQUEST_BOUND_MARGIN_SECONDS = 15.0
# Sent with a replayed answer (also one rebuilt from an abandoned reservation's rows).
REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}

# Builds the answer a surface gives for the rows its send returned (the same code as the
# first request's): `(status, json body)`.
Recover = Callable[[Sequence[Notification]], Awaitable[tuple[int, Any]]]


def request_bound(monday_timeout_seconds: float, inline_max_wait: float) -> timedelta:
    """The longest a send can run after reserving its key: waiting for monday's limits, one
    monday call (batches go out concurrently), and the in-flight wait as the allowance for
    its database work, plus a margin. A reservation older than this without an answer was
    left by a request that is no longer running."""
    return timedelta(
        seconds=WAIT_FOR_FIRST_SECONDS
        + inline_max_wait
        + monday_timeout_seconds
        + REQUEST_BOUND_MARGIN_SECONDS
    )


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: Any


@dataclass(frozen=True, slots=True)
class Abandoned:
    """A reservation whose request can no longer be running and never answered."""

    row_ids: tuple[int, ...] | None


def body_digest(body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ApiError(
            400,
            "INVALID_PAYLOAD",
            "Invalid payload. The Idempotency-Key header must be 1 to "
            f"{MAX_KEY_LENGTH} printable characters.",
        )
    return key


@dataclass
class _Pending:
    reservation: KeyReservation
    handed_out: bool = False


_pending: ContextVar[_Pending | None] = ContextVar("idempotency_pending", default=None)


def pending_reservation() -> KeyReservation | None:
    """The key the current request must reserve with its rows (once: the first insert of
    the request takes it); None outside `Idempotency.once` or once handed out."""
    pending = _pending.get()
    if pending is None or pending.handed_out:
        return None
    pending.handed_out = True
    return pending.reservation


@dataclass
class Idempotency:
    """The idempotency rules over an `IdempotencyStore`."""

    store: IdempotencyStore
    # The ledger rows an abandoned reservation's request inserted are read here.
    rows: RowsById
    # A reservation older than this with no answer is abandoned (`request_bound`).
    abandoned_after: timedelta = field(default_factory=lambda: request_bound(15.0, 2.0))
    # How long a duplicate waits for the first request's answer before its 409.
    wait_for_first: float = WAIT_FOR_FIRST_SECONDS
    # Keys whose first request runs in this process: a duplicate here waits for it rather
    # than running its work too (which would spend the user's send budget and the sender
    # decision for nothing before losing the key at the insert). Across processes the
    # reservation in the rows' transaction decides.
    _running: dict[tuple[str, str, str], asyncio.Future[None]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def begin(
        self, account_id: str, user_id: str, key: str, digest: str, deadline: float | None = None
    ) -> Replay | Abandoned | None:
        """None when `key` is free (the send reserves it with its rows); else the first answer
        to replay if the key was already used with this body, or `Abandoned` when its
        first request can no longer answer.

        A duplicate that arrives while the first request may still be running waits
        (reading only) for its answer, up to `wait_for_first` seconds, then gets 409
        IDEMPOTENCY_IN_FLIGHT with `Retry-After`.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + self.wait_for_first
        while True:
            record = await self.store.read(account_id, user_id, key)
            if record is None:
                return None
            if record.created_at < utcnow() - REPLAY_WINDOW:
                await self.store.forget(account_id, user_id, key)
                continue
            if record.body_digest != digest:
                raise ApiError(
                    422,
                    "IDEMPOTENCY_KEY_REUSED",
                    "This Idempotency-Key was already used with a different request body: "
                    "use a new key.",
                )
            if record.response_status is not None:
                return Replay(status=int(record.response_status), body=record.response_body)
            if record.created_at <= utcnow() - self.abandoned_after:
                return Abandoned(record.row_ids)
            if loop.time() > deadline:
                raise self._in_flight(record)
            await asyncio.sleep(0.05)

    def _in_flight(self, record: IdempotencyRecord | None) -> ApiError:
        """409 IDEMPOTENCY_IN_FLIGHT; `Retry-After` is when the first request will have
        answered or be known abandoned (then a retry gets its answer either way)."""
        wait = self.abandoned_after.total_seconds()
        if record is not None:
            wait = (record.created_at + self.abandoned_after - utcnow()).total_seconds()
        return ApiError(
            409,
            "IDEMPOTENCY_IN_FLIGHT",
            "A request with this Idempotency-Key is still being processed: try again shortly.",
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )

    async def _recover(
        self, account_id: str, user_id: str, key: str, abandoned: Abandoned, recover: Recover
    ) -> tuple[int, Any] | None:
        """The abandoned request's answer, rebuilt from its rows as they are now and kept as
        the key's answer; None if another request kept one first (replay that instead).
        Nothing is sent: the rows are the delivery worker's to finish."""
        ids = abandoned.row_ids or ()
        rows = await self.rows.get_many(ids) if ids else []
        if not ids or len(rows) != len(ids):
            raise ApiError(
                422,
                "IDEMPOTENCY_KEY_ABANDONED",
                "The request that first used this Idempotency-Key stopped before answering, "
                "and the notifications it wrote are no longer in the ledger to answer from. "
                "Nothing was sent again: check the ledger, and use a new key to send again.",
            )
        status, body = await recover(rows)
        if await self.store.keep_answer(account_id, user_id, key, status, body):
            return status, body
        return None

    async def complete(
        self,
        account_id: str,
        user_id: str,
        key: str,
        status: int,
        body: Any,
        *,
        digest: str,
        reserved: bool,
    ) -> None:
        """Keep the answer for replays. A server error or a 429 keeps none, so a retry can
        send (a request refused for its rate was not processed; the same key must work once
        the caller has waited). `reserved`: the request's rows may have reserved the key
        (else it ended before writing any and the key row is new).

        A reservation is never given back: it exists only if the request's rows were
        committed with it (the insert's transaction), and those rows are delivered by the
        worker. Giving it back let a retry after a late 5xx insert and send them a second
        time; now the retry waits for the answer (409 with `Retry-After`) and, once the
        reservation counts as abandoned, gets the answer rebuilt from those rows.
        """
        if status >= 500 or status == 429:
            return
        if reserved and await self.store.keep_answer(account_id, user_id, key, status, body):
            return
        await self.store.keep_new_answer(account_id, user_id, key, digest, status, body)

    async def once(
        self,
        account_id: str,
        user_id: str,
        key: str,
        digest: str,
        work: Callable[[], Awaitable[tuple[int, Any]]],
        recover: Recover,
    ) -> tuple[int, Any, bool]:
        """Run `work` (which answers `(status, body)`) at most once per key and body.

        Returns `(status, body, replayed)`. `begin`'s refusals propagate; an `ApiError`
        from `work` is kept as the answer and re-raised; after any other failure the key is
        free only if the request wrote nothing (`complete`). An abandoned reservation is
        answered by `recover` over its rows.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_for_first
        slot = (account_id, user_id, key)
        while True:
            found = await self.begin(account_id, user_id, key, digest, deadline)
            if isinstance(found, Replay):
                return found.status, found.body, True
            if isinstance(found, Abandoned):
                answer = await self._recover(account_id, user_id, key, found, recover)
                if answer is None:
                    continue  # another request kept the answer first: replay it
                return answer[0], answer[1], True
            running = self._running.get(slot)
            if running is not None:
                # Wait for it, then look again (its answer, or the key given back).
                try:
                    await asyncio.wait_for(asyncio.shield(running), deadline - loop.time())
                except TimeoutError:
                    record = await self.store.read(account_id, user_id, key)
                    raise self._in_flight(record) from None
                continue
            done: asyncio.Future[None] = loop.create_future()
            self._running[slot] = done
            try:
                return await self._first(account_id, user_id, key, digest, work)
            except KeyTaken:
                continue  # another process's duplicate reserved it first: wait for its answer
            finally:
                del self._running[slot]
                done.set_result(None)

    async def _first(
        self,
        account_id: str,
        user_id: str,
        key: str,
        digest: str,
        work: Callable[[], Awaitable[tuple[int, Any]]],
    ) -> tuple[int, Any, bool]:
        """Run `work` as the key's first request; `KeyTaken` if its insert lost the key."""
        pending = _Pending(KeyReservation(account_id, user_id, key, digest))

        async def complete(status: int, answer: Any, pending: _Pending = pending) -> None:
            await self.complete(
                account_id,
                user_id,
                key,
                status,
                answer,
                digest=digest,
                reserved=pending.handed_out,
            )

        token = _pending.set(pending)
        try:
            try:
                status, answer = await work()
            finally:
                _pending.reset(token)
        except KeyTaken:
            raise  # nothing was written: the key is the other request's
        except ApiError as error:
            await complete(error.status, error.body())
            raise
        except BaseException:
            await complete(500, None)  # gives the key back
            raise
        await complete(status, answer)
        return status, answer, False
