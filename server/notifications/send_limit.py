"""The per-user send limit for our own callers: it shapes bursts, it does not drop them
(contract §8, §11).

Each (account, user) has a token bucket of `rate_per_minute` rows that refills continuously;
every row a send asks for takes one token, so one request of 50 rows counts as 50. Rows the
bucket covers go at once. Rows beyond it are still accepted: the bucket goes into debt and
each further row gets the moment the bucket would have earned its token (`Pacing.due`, one
row every 60 / rate seconds), so the rate holds however large the burst. The send service
writes those rows `queued` with that `next_attempt_at`, and the delivery worker sends them
when they fall due.

Only a request that would leave more than `backlog` rows of the user waiting (not yet sent)
is refused, whole, with 429 `REQUESTS_EXCEEDED` and `Retry-After` (the time the excess takes
to drain at the rate); nothing is written. `backlog = 0` restores "refuse what the bucket
cannot cover".

The buckets live in this process's memory, or with `shared` (PostgreSQL, several instances:
storage/limits.py) in the database, so a user's rate holds for the whole deployment (contract
§11). The backlog is always counted in the database. `rate_per_minute = 0` turns both off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from server.clock import utc_timestamp
from server.errors import ApiError

Clock = Callable[[], float]  # seconds; the product clock's by default, so tests can move it
MAX_BUCKETS = 100_000  # idle full buckets are dropped past this many, so memory stays bounded


def _product_seconds() -> float:
    return utc_timestamp()


class SharedBuckets(Protocol):
    """The buckets in the database, shared by every instance (storage/limits.py)."""

    async def take_tokens(
        self, scope: str, rows: int, *, capacity: float, per_second: float, now: datetime
    ) -> float: ...

    async def give_tokens(self, scope: str, rows: int, *, capacity: float) -> None: ...


@dataclass
class _Bucket:
    tokens: float  # negative: rows already promised to later moments (the paced debt)
    updated: float


@dataclass(frozen=True, slots=True)
class Pacing:
    """How one request's rows go: `now` of them at once, then one at each moment of `due`."""

    now: int
    due: tuple[datetime, ...] = ()

    @property
    def paced(self) -> int:
        return len(self.due)


def _scope(account_id: str, user_id: str) -> str:
    return f"sender:{account_id}:{user_id}"


def requests_exceeded(retry_after: int, message: str) -> ApiError:
    return ApiError(
        429,
        "REQUESTS_EXCEEDED",
        message,
        extensions={"retry_after_seconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


@dataclass
class SendRateLimiter:
    """Token buckets of `rate_per_minute` rows per user, allowed into debt (pacing)."""

    rate_per_minute: int
    backlog: int = 10_000
    clock: Clock = _product_seconds
    shared: SharedBuckets | None = None
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.rate_per_minute > 0

    @property
    def per_second(self) -> float:
        return self.rate_per_minute / 60.0

    def _bucket(self, key: tuple[str, str], now: float) -> _Bucket:
        capacity = float(self.rate_per_minute)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = _Bucket(tokens=capacity, updated=now)
            self._buckets[key] = bucket
        refill = max(now - bucket.updated, 0.0) * self.per_second
        bucket.tokens = min(capacity, bucket.tokens + refill)
        bucket.updated = max(now, bucket.updated)
        return bucket

    def _forget_full(self, now: float) -> None:
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.per_second >= self.rate_per_minute:
                del self._buckets[key]

    async def take(self, account_id: str, user_id: str, rows: int) -> Pacing:
        """`reserve`, in the shared buckets when there are (one bucket for all instances)."""
        if self.shared is None or not self.enabled or rows <= 0:
            return self.reserve(account_id, user_id, rows)
        now = self.clock()
        tokens = await self.shared.take_tokens(
            _scope(account_id, user_id),
            rows,
            capacity=float(self.rate_per_minute),
            per_second=self.per_second,
            now=datetime.fromtimestamp(now, UTC),
        )
        return self._pacing(tokens, rows, now)

    async def give_back(self, account_id: str, user_id: str, rows: int) -> None:
        """`refund`, in the shared buckets when there are."""
        if self.shared is None or not self.enabled:
            self.refund(account_id, user_id, rows)
            return
        scope = _scope(account_id, user_id)
        await self.shared.give_tokens(scope, rows, capacity=float(self.rate_per_minute))

    def reserve(self, account_id: str, user_id: str, rows: int) -> Pacing:
        """Count `rows` for the user: those the bucket covers go now, the rest are paced."""
        if not self.enabled or rows <= 0:
            return Pacing(now=max(rows, 0))
        now = self.clock()
        bucket = self._bucket((account_id, user_id), now)
        pacing = self._pacing(bucket.tokens, rows, now)
        bucket.tokens -= rows
        return pacing

    def _pacing(self, tokens: float, rows: int, now: float) -> Pacing:
        """With `tokens` in the bucket at `now`: how `rows` go (the rest one per token)."""
        at_once = min(rows, max(math.floor(tokens), 0))
        left = tokens - at_once  # < 1, negative when earlier rows are still paced
        due = tuple(
            datetime.fromtimestamp(now + (k - left) / self.per_second, UTC)
            for k in range(1, rows - at_once + 1)
        )
        return Pacing(now=at_once, due=due)

    def refund(self, account_id: str, user_id: str, rows: int) -> None:
        """Give back what `reserve` took for a request that was refused after all."""
        bucket = self._buckets.get((account_id, user_id))
        if bucket is not None and self.enabled:
            bucket.tokens = min(float(self.rate_per_minute), bucket.tokens + rows)

    def beyond_backlog(self, waiting: int, pacing: Pacing) -> ApiError | None:
        """The 429 for a request whose paced rows would leave more than `backlog` rows of
        the user waiting (`waiting` = rows of the user not yet sent), else None."""
        excess = waiting + pacing.paced - self.backlog
        if pacing.paced == 0 or excess <= 0:
            return None
        wait = max(math.ceil(excess / self.per_second), 1)
        if pacing.paced > self.backlog:
            return requests_exceeded(
                wait,
                f"Too many notifications: at most {self.rate_per_minute} per minute per user "
                f"are sent, and at most {self.backlog} can wait; this request would add "
                f"{pacing.paced} waiting. Send them in smaller requests.",
            )
        return requests_exceeded(
            wait,
            f"Too many notifications waiting: at most {self.backlog} of a user's notifications "
            f"can wait to be sent ({waiting} are waiting). Try again in {wait} s.",
        )
