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

The buckets live in this process's memory, or with `shared` (PostgreSQL, several instances)
in the database, so a user's rate holds for the whole deployment (contract §11). A shared take
is made inside the send's insert transaction (`SharedBucketTake`, run by
storage/notifications/insert.py on the bucket's row of storage/limits.py): a send then writes
once before monday is called, and a request refused after its take (the sender decision, the
backlog) takes nothing, because its transaction is rolled back. The backlog is always counted
in the database. `rate_per_minute = 0` turns both off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from server.clock import utc_timestamp
from server.errors import ApiError
from server.notifications.model import Pacing

Clock = Callable[[], float]  # seconds; the product clock's by default, so tests can move it
MAX_BUCKETS = 100_000  # idle full buckets are dropped past this many, so memory stays bounded


def _product_seconds() -> float:
    return utc_timestamp()


@dataclass
class _Bucket:
    tokens: float  # negative: rows already promised to later moments (the paced debt)
    updated: float


@dataclass
class SharedBucketTake:
    """One request's take from the user's shared bucket (a `SendRateTake`, the port the
    store runs it through), made inside the send's insert transaction: the store locks the
    bucket's row, takes `rows` tokens and hands `settle` the tokens there were before.
    `settle` decides the pacing, or raises the 429 (the transaction is then rolled back:
    nothing written, nothing taken)."""

    limiter: SendRateLimiter
    account_id: str
    user_id: str
    rows: int
    moment: float  # the product clock's seconds
    pacing: Pacing | None = None  # set by `settle`, in the transaction that committed

    @property
    def scope(self) -> str:
        return _scope(self.account_id, self.user_id)

    @property
    def capacity(self) -> float:
        return float(self.limiter.rate_per_minute)

    @property
    def per_second(self) -> float:
        return self.limiter.per_second

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.moment, UTC)

    def settle(self, tokens: float, waiting: Callable[[], int]) -> Pacing:
        """The pacing with `tokens` in the bucket before the take; `waiting()` counts the
        user's rows not yet sent (read only when rows are paced)."""
        pacing = self.limiter.pacing(tokens, self.rows, self.moment)
        if pacing.paced:
            refusal = self.limiter.beyond_backlog(waiting(), pacing)
            if refusal is not None:
                raise refusal
        self.pacing = pacing
        return pacing


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
    # The buckets are in the database (PostgreSQL), shared by every instance.
    shared: bool = False
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

    def shared_take(self, account_id: str, user_id: str, rows: int) -> SharedBucketTake | None:
        """The take the send's insert makes in the shared bucket, when the buckets are shared
        (else None: `reserve` takes from this process's bucket)."""
        if not self.shared or not self.enabled or rows <= 0:
            return None
        return SharedBucketTake(self, account_id, user_id, rows, self.clock())

    def reserve(self, account_id: str, user_id: str, rows: int) -> Pacing:
        """Count `rows` for the user: those the bucket covers go now, the rest are paced."""
        if not self.enabled or rows <= 0:
            return Pacing(now=max(rows, 0))
        now = self.clock()
        bucket = self._bucket((account_id, user_id), now)
        pacing = self.pacing(bucket.tokens, rows, now)
        bucket.tokens -= rows
        return pacing

    def pacing(self, tokens: float, rows: int, now: float) -> Pacing:
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
