"""`Idempotency-Key` (contract §6): one send per key and body, replayed for 24 hours.

The key row is reserved in the same transaction as the send's rows (the store's primary key
makes that atomic): `once` leaves the reservation pending in a context variable, and the send
service hands it to the rows' insert (`pending_reservation`). A concurrent duplicate either
finds the key row and waits for the first answer, or loses the insert (`KeyTaken`, nothing
written) and then waits; it never sends again. A request that ends before writing rows (a
refusal, invalid input) stores its answer under the key afterwards. The statements are in
`storage/notifications/idempotency.py`; the rules (window, waiting, which answers are kept)
are here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from server.clock import utcnow
from server.errors import ApiError
from server.notifications.model import KeyReservation, KeyTaken
from server.notifications.ports import IdempotencyStore

REPLAY_WINDOW = timedelta(hours=24)
MAX_KEY_LENGTH = 255
WAIT_FOR_FIRST_SECONDS = 30.0
# Sent with a replayed answer.
REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True, slots=True)
class Replay:
    status: int
    body: Any


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
    # Keys whose first request runs in this process: a duplicate here waits for it rather
    # than running its work too (which would spend the user's send budget and the sender
    # decision for nothing before losing the key at the insert). Across processes the
    # reservation in the rows' transaction decides.
    _running: dict[tuple[str, str, str], asyncio.Future[None]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def begin(
        self, account_id: str, user_id: str, key: str, digest: str, deadline: float | None = None
    ) -> Replay | None:
        """None when `key` is free (the send reserves it with its rows); else the first answer
        to replay if the key was already used with this body.

        A duplicate that arrives while the first request is still running waits (reading
        only) for its answer, up to WAIT_FOR_FIRST_SECONDS, then gets 409
        IDEMPOTENCY_IN_FLIGHT.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + WAIT_FOR_FIRST_SECONDS
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
            if loop.time() > deadline:
                raise _in_flight()
            await asyncio.sleep(0.05)

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
        """Keep the answer for replays; a server error gives the key back so a retry can
        send. So does a 429: a request refused for its rate was not processed, and the
        same key must work once the caller has waited. `reserved`: the request's rows may
        have reserved the key (else it ended before writing any and the key row is new).
        """
        if status >= 500 or status == 429:
            if reserved:
                await self.store.forget(account_id, user_id, key)
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
    ) -> tuple[int, Any, bool]:
        """Run `work` (which answers `(status, body)`) at most once per key and body.

        Returns `(status, body, replayed)`. `begin`'s refusals propagate; an `ApiError`
        from `work` is kept as the answer and re-raised; any other failure gives the key
        back.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_FIRST_SECONDS
        slot = (account_id, user_id, key)
        while True:
            replay = await self.begin(account_id, user_id, key, digest, deadline)
            if replay is not None:
                return replay.status, replay.body, True
            running = self._running.get(slot)
            if running is not None:
                # Wait for it, then look again (its answer, or the key given back).
                try:
                    await asyncio.wait_for(asyncio.shield(running), deadline - loop.time())
                except TimeoutError:
                    raise _in_flight() from None
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


def _in_flight() -> ApiError:
    return ApiError(
        409,
        "IDEMPOTENCY_IN_FLIGHT",
        "A request with this Idempotency-Key is still being processed: try again shortly.",
    )
