"""monday's limits per account, shared by every instance on one PostgreSQL database (§11).

The governor (delivery/governor.py) keeps its view of an account in memory; with several
instances each would learn the budget only from its own answers and run into a 429 per
instance. Here each call's spend, each answer's budget and each pause go through one row per
account (`delivery_limits`), read and written under a row lock, so the instances share one
view:

- `take` spends one call of the account's minute budget, or says until when it may not go
  (paused, budget spent, or a first call already probing an unknown budget);
- `learn` records what an answer said (the budget left and when the window resets), keeping
  the lower of what is stored and what is told: the stored value already counts calls other
  instances started that monday had not counted yet. An answer to a call taken before the
  current window began (`sent` < `minute_since`) speaks of the old window and is not learnt:
  its reset would end the new window early and hand out a third window's quota while monday
  still counts the second;
- a pause after a 429 / `DAILY_LIMIT_EXCEEDED` comes with `learn`, for everyone;
- `take_tokens` / `give_tokens`: the per-user send-rate bucket (notifications/send_limit.py)
  in scope `sender:<account>:<user>`, so a user's rate holds across instances.

When the window's reset has passed, the budget starts again at the policy's quota, so the
instances do not need an answer to know the new window's budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.storage.tables import delivery_limits

c = delivery_limits.c
# How long one probing call keeps others waiting at most (its answer normally ends it sooner).
PROBE_SECONDS = 20.0
# How soon a call waiting for a probe, or for a window whose reset is not known, looks again.
RECHECK_SECONDS = 0.25


@dataclass(frozen=True)
class Block:
    """The account may not be called before `until`; why, in the governor's words."""

    until: datetime
    code: str
    message: str


class SqlSharedLimits:
    """The shared limits over a PostgreSQL engine (one row per account, locked per call)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def _row(self, connection: AsyncConnection, scope: str) -> Any:
        await connection.execute(
            pg_insert(delivery_limits).values(scope=scope).on_conflict_do_nothing()
        )
        result = await connection.execute(
            select(delivery_limits).where(c.scope == scope).with_for_update()
        )
        return result.mappings().one()

    async def take(self, scope: str, now: datetime) -> Block | None:
        """Spend one call of the minute budget, or the Block that holds the call back."""
        async with self.engine.begin() as connection:
            row = await self._row(connection, scope)
            if row["paused_until"] is not None and row["paused_until"] > now:
                return Block(row["paused_until"], row["pause_code"], row["pause_message"])
            left, reset = row["minute_left"], row["minute_reset"]
            values: dict[str, Any] = {}
            if reset is not None and reset <= now:
                left, reset = row["minute_quota"], None  # a new window: its whole quota
                values["minute_since"] = now
            values.update(minute_left=left, minute_reset=reset)
            if left is None:
                # Nobody knows the budget yet: one call finds out, the others wait for it.
                probe = row["probe_until"]
                if probe is not None and probe > now:
                    until = min(probe, now + timedelta(seconds=RECHECK_SECONDS))
                    return Block(until, "MINUTE_BUDGET", "Waiting for monday's budget.")
                values["probe_until"] = now + timedelta(seconds=PROBE_SECONDS)
            elif left < 1:
                until = reset or now + timedelta(seconds=RECHECK_SECONDS)
                await self._set(connection, scope, values)
                return Block(
                    until, "MINUTE_BUDGET", "Waiting for monday's per-minute call budget to reset."
                )
            else:
                values["minute_left"] = left - 1
            await self._set(connection, scope, values)
            return None

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
    ) -> None:
        """What one answer said: the budget `left` until `reset`, the quota, a pause; `sent`
        is when its call was taken (the `now` of its `take`)."""
        async with self.engine.begin() as connection:
            row = await self._row(connection, scope)
            values: dict[str, Any] = {"probe_until": None}
            if quota is not None:
                values["minute_quota"] = quota
            since = row["minute_since"]
            stale = sent is not None and since is not None and sent < since
            if left is not None and reset is not None and not stale:
                stored_left, stored_reset = row["minute_left"], row["minute_reset"]
                same_window = stored_left is not None and (
                    stored_reset is None or stored_reset > now
                )
                values["minute_left"] = min(stored_left, left) if same_window else left
                # `t` is rounded up: of two answers' resets the closer one is the truer.
                closer = stored_reset is not None and stored_reset > now and stored_reset < reset
                values["minute_reset"] = stored_reset if closer else reset
            if pause is not None and (
                row["paused_until"] is None or pause.until > row["paused_until"]
            ):
                values.update(
                    paused_until=pause.until, pause_code=pause.code, pause_message=pause.message
                )
            await self._set(connection, scope, values)

    async def take_tokens(
        self, scope: str, rows: int, *, capacity: float, per_second: float, now: datetime
    ) -> float:
        """Refill the bucket to `now`, take `rows` (into debt if need be); the tokens there
        were before the take."""
        async with self.engine.begin() as connection:
            row = await self._row(connection, scope)
            tokens, since = row["tokens"], row["tokens_at"]
            if tokens is None or since is None:
                tokens = capacity
            else:
                earned = max((now - since).total_seconds(), 0.0) * per_second
                tokens = min(capacity, tokens + earned)
            values = {"tokens": tokens - rows, "tokens_at": max(now, since or now)}
            await self._set(connection, scope, values)
            return float(tokens)

    async def give_tokens(self, scope: str, rows: int, *, capacity: float) -> None:
        """Give back what `take_tokens` took for a request refused after all."""
        async with self.engine.begin() as connection:
            await connection.execute(
                update(delivery_limits)
                .where(c.scope == scope, c.tokens.is_not(None))
                .values(tokens=func.least(c.tokens + rows, capacity))
            )

    @staticmethod
    async def _set(connection: AsyncConnection, scope: str, values: dict[str, Any]) -> None:
        await connection.execute(update(delivery_limits).where(c.scope == scope).values(**values))
