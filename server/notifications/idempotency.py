"""`Idempotency-Key` (contract §6): one send per key and body, replayed for 24 hours.

The key row is reserved before the send starts (the store's primary key makes that
atomic), so a concurrent duplicate finds it and waits for the first answer instead of
sending again. The statements are in `storage/notifications/idempotency.py`; the rules
(window, waiting, which answers are kept) are here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from server.clock import utcnow
from server.errors import ApiError
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
class Idempotency:
    """The idempotency rules over an `IdempotencyStore`."""

    store: IdempotencyStore

    async def begin(self, account_id: str, user_id: str, key: str, digest: str) -> Replay | None:
        """Reserve `key`; return the first answer to replay if it was already used with
        this body.

        A duplicate that arrives while the first request is still running waits (reading
        only) for its answer, up to WAIT_FOR_FIRST_SECONDS, then gets 409
        IDEMPOTENCY_IN_FLIGHT.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_FOR_FIRST_SECONDS
        while True:
            if await self.store.reserve(account_id, user_id, key, digest):
                return None
            while True:
                record = await self.store.read(account_id, user_id, key)
                if record is None:
                    break  # the first request gave its key back (it failed): try to take it
                if record.created_at < utcnow() - REPLAY_WINDOW:
                    await self.store.forget(account_id, user_id, key)
                    break
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
                    raise ApiError(
                        409,
                        "IDEMPOTENCY_IN_FLIGHT",
                        "A request with this Idempotency-Key is still being processed: "
                        "try again shortly.",
                    )
                await asyncio.sleep(0.05)

    async def complete(
        self, account_id: str, user_id: str, key: str, status: int, body: Any
    ) -> None:
        """Keep the answer for replays; a server error gives the key back so a retry can
        send. So does a 429: a request refused for its rate was not processed, and the
        same key must work once the caller has waited.
        """
        if status >= 500 or status == 429:
            await self.store.forget(account_id, user_id, key)
            return
        await self.store.keep_answer(account_id, user_id, key, status, body)

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
        replay = await self.begin(account_id, user_id, key, digest)
        if replay is not None:
            return replay.status, replay.body, True
        status, answer = 500, None
        try:
            status, answer = await work()
        except ApiError as error:
            status, answer = error.status, error.body()
            raise
        finally:
            await self.complete(account_id, user_id, key, status, answer)
        return status, answer, False
