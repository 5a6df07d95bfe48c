"""The per-user send rate limit for our own callers (an abuse limit, contract §8).

Each (account, user) has a token bucket of `rate_per_minute` rows that refills continuously;
every row a send asks for takes one token, so one request of 50 rows counts as 50. When the
bucket cannot cover a request, the request is refused whole with 429 `REQUESTS_EXCEEDED` and
`Retry-After`, and nothing is written.

The buckets live in this process's memory: behind a load balancer with N instances a user can
send up to N times the rate (the limit is against abuse, not an exact quota), and a restart
forgets them. `rate_per_minute = 0` turns the limit off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.errors import ApiError

Clock = Callable[[], float]
MAX_BUCKETS = 100_000  # idle full buckets are dropped past this many, so memory stays bounded


@dataclass
class _Bucket:
    tokens: float
    updated: float


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
    """Token buckets of `rate_per_minute` rows per user; `take` refuses with a 429."""

    rate_per_minute: int
    clock: Clock = time.monotonic
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.rate_per_minute > 0

    def _bucket(self, key: tuple[str, str], now: float) -> _Bucket:
        capacity = float(self.rate_per_minute)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._forget_full(now)
            bucket = _Bucket(tokens=capacity, updated=now)
            self._buckets[key] = bucket
        refill = (now - bucket.updated) * capacity / 60.0
        bucket.tokens = min(capacity, bucket.tokens + refill)
        bucket.updated = now
        return bucket

    def _forget_full(self, now: float) -> None:
        per_second = self.rate_per_minute / 60.0
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * per_second >= self.rate_per_minute:
                del self._buckets[key]

    def take(self, account_id: str, user_id: str, rows: int) -> None:
        """Count `rows` for the user, or raise 429 `REQUESTS_EXCEEDED` with `Retry-After`."""
        if not self.enabled or rows <= 0:
            return
        now = self.clock()
        bucket = self._bucket((account_id, user_id), now)
        if rows <= bucket.tokens:
            bucket.tokens -= rows
            return
        per_second = self.rate_per_minute / 60.0
        if rows > self.rate_per_minute:
            wait = max(math.ceil((self.rate_per_minute - bucket.tokens) / per_second), 1)
            raise requests_exceeded(
                wait,
                f"Too many notifications: at most {self.rate_per_minute} per minute per user, "
                f"and this request has {rows}. Send them in smaller requests.",
            )
        wait = max(math.ceil((rows - bucket.tokens) / per_second), 1)
        raise requests_exceeded(
            wait,
            f"Too many notifications: at most {self.rate_per_minute} per minute per user. "
            f"Try again in {wait} s.",
        )
