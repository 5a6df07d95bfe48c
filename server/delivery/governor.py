"""The delivery governor: our calls stay inside monday's limits instead of running into them.

monday limits calls per account and app (monday-platform.md §5.5): requests per minute,
complexity points per minute, requests in flight, and (for non-marketplace apps) calls per
day. It tells us where we stand on every answer (`RateLimit` / `RateLimit-Policy` headers)
and how long to wait when we went too far (`retry_in_seconds`, `Retry-After`). The governor
keeps that per account, in this process:

- **concurrency**: at most `concurrency` requests in flight per account and per credential
  (default 10, below the 40 of monday's smallest plan);
- **budgets**: the minute and complexity budgets left, as last reported, minus what was sent
  since; when one runs out, calls wait for the reset the header announced;
- **pauses**: a rate-limit answer pauses the whole account until monday's retry time; a
  `DAILY_LIMIT_EXCEEDED` pauses it until midnight UTC.

A call that would wait longer than the caller allows is *deferred*: its rows are scheduled
for the time the account opens again without being attempted. The state is per process;
on PostgreSQL, `shared` (storage/limits.py) adds the deployment's view of each account's
minute budget and pauses, so several instances together stay under monday's limits
(contract §11). Concurrency caps and the complexity budget stay per process.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from server.clock import utcnow
from server.monday.outcome import SendOutcome, seconds_until_midnight_utc
from server.monday.ratelimit import RateLimitInfo
from server.notifications.model import Block
from server.storage.limits import account_scope

# (reason, "waited" | "deferred") -> how many calls were held back; read by /metrics.
rate_limit_waits: Counter[tuple[str, str]] = Counter()

# Outcomes that say "monday is not limiting you": a refused connection is retried, not paused.
NOT_A_LIMIT = frozenset({"MONDAY_UNREACHABLE"})
# What one `create_notification` is assumed to cost in complexity points. monday does not
# publish it; a generous guess only matters when the budget is nearly gone.
COMPLEXITY_PER_NOTIFICATION = 1_000
DEFAULT_WINDOW_SECONDS = 60.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 15 * 60.0

log = logging.getLogger(__name__)
_JITTER = random.Random()  # noqa: S311 - jitter, not secrecy
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def backoff_seconds(attempt: int, told: float | None, *, rng: random.Random | None = None) -> float:
    """How long before retrying a row on its `attempt`-th failure (1-based).

    Exponential (1 s, 2 s, 4 s, ... capped at 15 minutes) but never sooner than monday
    told us (`told`), with up to 25% jitter on top so rows told the same wait spread out.
    """
    exponential = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2.0 ** max(attempt - 1, 0))
    delay = max(told or 0.0, exponential)
    return delay * (rng or _JITTER).uniform(1.0, 1.25)


def next_midnight_utc(now: datetime | None = None) -> datetime:
    """When monday's daily call limit resets."""
    now = now or utcnow()
    return (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


class SharedLimits(Protocol):
    """The deployment's view of each account's limits (storage/limits.py, PostgreSQL)."""

    async def take(self, scope: str, now: datetime) -> Block | None: ...

    async def learn(
        self,
        scope: str,
        now: datetime,
        *,
        left: int | None,
        reset: datetime | None,
        quota: int | None,
        pause: Block | None,
        sent: datetime | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class Deferral:
    """The account may not be called before `until` (UTC); why, in monday's words."""

    until: datetime
    code: str
    message: str


@dataclass
class _Limits:
    """What we know about one account's limits (or one credential's concurrency)."""

    semaphore: asyncio.Semaphore
    in_flight: int = 0
    paused_until: float = 0.0  # monotonic
    pause_code: str = ""
    pause_message: str = ""
    minute_left: int | None = None
    minute_reset: float = 0.0
    complexity_left: int | None = None
    complexity_reset: float = 0.0

    def blocked(self, now: float, cost: int) -> tuple[float, str, str] | None:
        """(until, reason, message) when a call of `cost` notifications must not go now."""
        if self.paused_until > now:
            return self.paused_until, self.pause_code, self.pause_message
        if self.minute_left is not None:
            if self.minute_reset <= now:
                self.minute_left = None
            elif self.minute_left < 1:
                return (
                    self.minute_reset,
                    "MINUTE_BUDGET",
                    "Waiting for monday's per-minute call budget to reset.",
                )
        if self.complexity_left is not None:
            if self.complexity_reset <= now:
                self.complexity_left = None
            elif self.complexity_left < cost * COMPLEXITY_PER_NOTIFICATION:
                return (
                    self.complexity_reset,
                    "COMPLEXITY_BUDGET",
                    "Waiting for monday's complexity budget to reset.",
                )
        return None

    def spend(self, cost: int) -> None:
        if self.minute_left is not None:
            self.minute_left -= 1
        if self.complexity_left is not None:
            self.complexity_left -= cost * COMPLEXITY_PER_NOTIFICATION


@dataclass
class Permit:
    """Leave to make one call; give it back with `Governor.report`."""

    account: _Limits
    credential: _Limits
    started: float
    released: bool = False
    account_id: str = ""
    taken_at: datetime | None = None  # when the shared budget was spent for it (UTC)


@dataclass
class Governor:
    """Per-account and per-credential limits for the calls this process makes to monday."""

    concurrency: int = 10
    max_wait_seconds: float = 5.0
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    # On PostgreSQL: the minute budget and pauses shared with the other instances.
    shared: SharedLimits | None = None
    _accounts: dict[str, _Limits] = field(default_factory=dict)
    _credentials: dict[str, _Limits] = field(default_factory=dict)
    _writes: set[asyncio.Task[None]] = field(default_factory=set)

    def _limits(self, table: dict[str, _Limits], key: str) -> _Limits:
        found = table.get(key)
        if found is None:
            found = _Limits(asyncio.Semaphore(self.concurrency))
            table[key] = found
        return found

    async def acquire(
        self,
        account_id: str,
        credential: str,
        *,
        cost: int = 1,
        max_wait: float | None = None,
        pretaken: tuple[datetime, Block | None] | None = None,
    ) -> Permit | Deferral:
        """Wait until a call of `cost` notifications may go; or say until when it may not.

        Waits up to `max_wait` seconds (default `max_wait_seconds`) for a pause or a budget
        reset, and for a free concurrency slot; a longer wait returns a `Deferral`.
        `pretaken`: the shared budget was already spent for this call (the send's insert,
        PostgreSQL) at that time, or held back by that Block. It stands for the shared take
        only if nothing made the call wait before it: after a wait the take is made again
        (the one spent counts against the deployment's budget, erring on the safe side).
        """
        allowed = self.max_wait_seconds if max_wait is None else max_wait
        account = self._limits(self._accounts, account_id)
        cred = self._limits(self._credentials, credential)
        deadline = self.clock() + allowed
        counted: set[str] = set()
        while True:
            now = self.clock()
            block = account.blocked(now, cost)
            if block is not None:
                until, reason, message = block
                if until > deadline:
                    rate_limit_waits[(reason, "deferred")] += 1
                    return Deferral(utcnow() + timedelta(seconds=until - now), reason, message)
                if reason not in counted:
                    counted.add(reason)
                    rate_limit_waits[(reason, "waited")] += 1
                await self.sleep(max(until - now, 0.0))
                continue
            if account.semaphore.locked() or cred.semaphore.locked():
                if "CONCURRENCY_CAP" not in counted:
                    counted.add("CONCURRENCY_CAP")
                    rate_limit_waits[("CONCURRENCY_CAP", "waited")] += 1
            await account.semaphore.acquire()
            await cred.semaphore.acquire()
            # An answer that came in while we queued for a slot may have paused the account.
            if account.blocked(self.clock(), cost) is not None:
                cred.semaphore.release()
                account.semaphore.release()
                continue
            if pretaken is not None and not counted:
                taken_at, shared = pretaken
            else:
                taken_at = utcnow()
                shared = await self._shared_block(account_id, taken_at)
            pretaken = None
            if shared is not None:
                cred.semaphore.release()
                account.semaphore.release()
                now = self.clock()
                wait = (shared.until - utcnow()).total_seconds()
                if now + wait > deadline:
                    rate_limit_waits[(shared.code, "deferred")] += 1
                    return Deferral(shared.until, shared.code, shared.message)
                if shared.code not in counted:
                    counted.add(shared.code)
                    rate_limit_waits[(shared.code, "waited")] += 1
                await self.sleep(max(wait, 0.0))
                continue
            account.spend(cost)
            account.in_flight += 1
            cred.in_flight += 1
            return Permit(
                account, cred, started=self.clock(), account_id=account_id, taken_at=taken_at
            )

    async def _shared_block(self, account_id: str, now: datetime) -> Block | None:
        """Spend one call of the deployment's budget for the account, or what blocks it."""
        if self.shared is None:
            return None
        return await self.shared.take(account_scope(account_id), now)

    def report(
        self,
        permit: Permit,
        outcomes: Sequence[SendOutcome] = (),
        rate_limit: RateLimitInfo | None = None,
    ) -> None:
        """Give the slot back and learn from monday's answer (headers and outcomes)."""
        if permit.released:
            return
        permit.released = True
        account, cred = permit.account, permit.credential
        account.in_flight -= 1
        cred.in_flight -= 1
        cred.semaphore.release()
        account.semaphore.release()
        now = self.clock()
        paused_before = account.paused_until
        if rate_limit is not None and not rate_limit.empty:
            self._learn_budgets(account, rate_limit, now)
        self._pause_for(account, outcomes, now)
        if self.shared is not None:
            self._share(permit, account, rate_limit, paused_before, now)

    def _pause_for(self, account: _Limits, outcomes: Sequence[SendOutcome], now: float) -> None:
        for outcome in outcomes:
            if outcome.status != "retry" or outcome.code in NOT_A_LIMIT:
                continue
            if outcome.daily_limit:
                wait = seconds_until_midnight_utc()
            else:
                wait = outcome.retry_after_seconds or 0.0
            if now + wait > account.paused_until:
                account.paused_until = now + wait
                account.pause_code = outcome.code or "RATE_LIMIT_EXCEEDED"
                account.pause_message = outcome.message or "monday is rate limiting this account."

    def _share(
        self,
        permit: Permit,
        account: _Limits,
        info: RateLimitInfo | None,
        paused_before: float,
        now: float,
    ) -> None:
        """Tell the other instances what this answer taught (written in the background:
        `report` is called from a `finally` and must not wait for the database)."""
        assert self.shared is not None
        wall = utcnow()

        def at(moment: float) -> datetime:
            return wall + timedelta(seconds=moment - now)

        left = reset = quota = None
        minute = None if info is None or info.empty else info.remaining("minuteRate")
        if info is not None and minute is not None:
            # What this answer told, not the local view: that keeps the closest reset seen,
            # which can still be the previous window's while this answer is of the next one
            # (the shared row would then end the new window early: a third window's quota
            # handed out while monday still counts the second).
            left = minute - account.in_flight
            reset = at(now + self._reset(info, "minuteRate"))
            policy = info.policies.get("minuteRate")
            quota = policy.quota if policy is not None else None
        pause = None
        if account.paused_until > max(paused_before, now):
            pause = Block(at(account.paused_until), account.pause_code, account.pause_message)
        write = self.shared.learn(
            account_scope(permit.account_id),
            wall,
            left=left,
            reset=reset,
            quota=quota,
            pause=pause,
            sent=permit.taken_at,
        )
        task = asyncio.get_running_loop().create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not share monday's limits", exc_info=task.exception())

    def _learn_budgets(self, account: _Limits, info: RateLimitInfo, now: float) -> None:
        # Requests still in flight may not be counted in the answer yet: assume they will be.
        others = account.in_flight
        # `t` is whole seconds rounded up, read after the answer left monday: each answer
        # gives an upper bound of the window's end, and the smallest one is the closest.
        minute = info.remaining("minuteRate")
        if minute is not None:
            account.minute_left = minute - others
            reset = now + self._reset(info, "minuteRate")
            if account.minute_reset <= now or reset < account.minute_reset:
                account.minute_reset = reset
        complexity = info.remaining("complexityMinute")
        if complexity is not None:
            account.complexity_left = complexity - others * COMPLEXITY_PER_NOTIFICATION
            reset = now + self._reset(info, "complexityMinute")
            if account.complexity_reset <= now or reset < account.complexity_reset:
                account.complexity_reset = reset

    @staticmethod
    def _reset(info: RateLimitInfo, name: str) -> float:
        reset = info.reset_seconds(name)
        if reset is not None:
            return float(reset)
        policy = info.policies.get(name)
        if policy is not None and policy.window_seconds:
            return float(policy.window_seconds)
        return DEFAULT_WINDOW_SECONDS

    def paused(self, account_id: str) -> float:
        """Seconds until the account may be called again (0 when it may now)."""
        limits = self._accounts.get(account_id)
        if limits is None:
            return 0.0
        return max(limits.paused_until - self.clock(), 0.0)
