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
- `tokens_call`, run by `call_in` inside the send's insert transaction: the per-user
  send-rate bucket (notifications/send_limit.py) in scope `sender:<account>:<user>`, so a
  user's rate holds across instances.

Calls on an account's row made inside a write transaction (the budget the send's insert
spends, `learn`) go through `account_calls`: in a writer group, every account row its jobs
call on is locked once, in the group's last finalizer, after every other row the group locks
and in the order of the accounts, so two groups in flight never wait for each other in a
cycle (storage/pooled_writer.py). `learn` is such a write of its own (`db.write`): it joins
the writer group of the outcomes around it instead of taking a transaction of its own.

When the window's reset has passed, the budget starts again at the policy's quota, so the
instances do not need an answer to know the new window's budget.

`take` (a call the inline attempt did not take in the insert) has a transaction of its own.
Takes on one scope that arrive while a transaction on it is in flight are done together in the
next one: one row lock, each call applied in arrival order to the row as the ones before it
left it, one UPDATE. The outcome is the one the same calls would have had one transaction each
(on a busy account every send and every answer took its own transaction on the same locked row,
and they queued behind each other).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from itertools import groupby
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications.model import Block
from server.storage.db import write
from server.storage.tables import delivery_limits
from server.storage.txn_group import current
from server.storage.writer import WriteFn

__all__ = [
    "Block",
    "SqlSharedLimits",
    "account_calls",
    "account_scope",
    "call_in",
    "take_call",
    "tokens_call",
]

c = delivery_limits.c
# How long one probing call keeps others waiting at most (its answer normally ends it sooner).
PROBE_SECONDS = 20.0
# How soon a call waiting for a probe, or for a window whose reset is not known, looks again.
RECHECK_SECONDS = 0.25
# At most this many calls on one scope share a transaction.
MAX_CALLS = 200


def account_scope(account_id: str) -> str:
    """The row of an account's monday budget and pauses."""
    return f"account:{account_id}"


# Statements built once (bound parameters): a statement built per call cost more to build,
# key and look up in SQLAlchemy's cache than PostgreSQL took to run it.
#
# The row lock is written as text: SQLAlchemy 2.0's PostgreSQL `insert()` has no cache key
# (sqlalchemy/sqlalchemy#10445), so `pg_insert(...).on_conflict_do_update(...)` was compiled
# again on every call, ~11% of the event loop's time on PostgreSQL's send path. The text
# with its columns is cached, and its RETURNING columns are read through their types.
_LOCK_ROW = (
    text(
        f"INSERT INTO {delivery_limits.name} (scope) VALUES (:scope) "
        "ON CONFLICT (scope) DO UPDATE SET scope = excluded.scope "
        f"RETURNING {', '.join(column.name for column in delivery_limits.c)}"
    )
    .bindparams(bindparam("scope", type_=c.scope.type))
    .columns(*delivery_limits.c)
)
# Executed with every column but `scope` as parameters (SQLAlchemy sets the columns named by
# the parameters), and the row's scope as `row_scope`.
_WRITE_ROW = update(delivery_limits).where(c.scope == bindparam("row_scope"))

# One call on a scope: given the row as the calls before it left it, the values it changes
# and what its caller gets back.
Row = dict[str, Any]
Call = Callable[[Row], tuple[Row, Any]]


@dataclass
class _Scope:
    calls: list[tuple[Call, asyncio.Future[Any]]] = field(default_factory=list)
    running: bool = False


def take_call(now: datetime) -> Call:
    """`take`: spend one call of the minute budget, or the Block that holds the call back."""

    def apply(row: Row) -> tuple[Row, Block | None]:
        if row["paused_until"] is not None and row["paused_until"] > now:
            return {}, Block(row["paused_until"], row["pause_code"], row["pause_message"])
        left, reset = row["minute_left"], row["minute_reset"]
        values: Row = {}
        if reset is not None and reset <= now:
            left, reset = row["minute_quota"], None  # a new window: its whole quota
            values["minute_since"] = now
        values.update(minute_left=left, minute_reset=reset)
        if left is None:
            # Nobody knows the budget yet: one call finds out, the others wait for it.
            probe = row["probe_until"]
            if probe is not None and probe > now:
                until = min(probe, now + timedelta(seconds=RECHECK_SECONDS))
                return {}, Block(until, "MINUTE_BUDGET", "Waiting for monday's budget.")
            values["probe_until"] = now + timedelta(seconds=PROBE_SECONDS)
        elif left < 1:
            until = reset or now + timedelta(seconds=RECHECK_SECONDS)
            message = "Waiting for monday's per-minute call budget to reset."
            return values, Block(until, "MINUTE_BUDGET", message)
        else:
            values["minute_left"] = left - 1
        return values, None

    return apply


def learn_call(
    now: datetime,
    *,
    left: int | None,
    reset: datetime | None,
    quota: int | None,
    pause: Block | None,
    sent: datetime | None,
) -> Call:
    """`learn`: what one answer said (see the module docstring)."""

    def apply(row: Row) -> tuple[Row, None]:
        values: Row = {"probe_until": None}
        if quota is not None:
            values["minute_quota"] = quota
        since = row["minute_since"]
        stale = sent is not None and since is not None and sent < since
        if left is not None and reset is not None and not stale:
            stored_left, stored_reset = row["minute_left"], row["minute_reset"]
            same_window = stored_left is not None and (stored_reset is None or stored_reset > now)
            values["minute_left"] = min(stored_left, left) if same_window else left
            # `t` is rounded up: of two answers' resets the closer one is the truer.
            closer = stored_reset is not None and stored_reset > now and stored_reset < reset
            values["minute_reset"] = stored_reset if closer else reset
        if pause is not None and (row["paused_until"] is None or pause.until > row["paused_until"]):
            values.update(
                paused_until=pause.until, pause_code=pause.code, pause_message=pause.message
            )
        return values, None

    return apply


def tokens_call(rows: int, *, capacity: float, per_second: float, now: datetime) -> Call:
    """`take_tokens`: refill the bucket to `now`, take `rows` (into debt if need be); the
    tokens there were before the take."""

    def apply(row: Row) -> tuple[Row, float]:
        tokens, since = row["tokens"], row["tokens_at"]
        if tokens is None or since is None:
            tokens = capacity
        else:
            earned = max((now - since).total_seconds(), 0.0) * per_second
            tokens = min(capacity, tokens + earned)
        return {"tokens": tokens - rows, "tokens_at": max(now, since or now)}, float(tokens)

    return apply


@dataclass
class _Held:
    """A scope's row locked by a writer group: the calls of its jobs change it here, its
    finalizer writes it once before the COMMIT."""

    row: Row
    changed: bool = False


def _apply_calls(connection: Connection, scope: str, calls: list[Call]) -> list[Any]:
    """`calls` on the scope's row, locked once, in order; one UPDATE of the whole row as
    they left it (we hold its lock: one statement, built once, whatever they changed)."""
    row = _lock_row(connection, scope)
    changed = False
    results = []
    for call in calls:
        values, result = call(row)
        row.update(values)
        changed = changed or bool(values)
        results.append(result)
    if changed:
        _write_row(connection, scope, row)
    return results


def call_in(connection: Connection, scope: str, call: Call) -> Any:
    """`call` on the scope's row inside the caller's write transaction (the send's insert:
    its take needs no transaction of its own). The row stays locked until that transaction
    ends; in a writer group it is locked and written once for all the group's calls."""
    group = current(connection)
    if group is None:
        return _apply_calls(connection, scope, [call])[0]
    key = f"limits:{scope}"
    held: _Held | None = group.shared.get(key)
    if held is None:
        held = group.shared[key] = _Held(_lock_row(connection, scope))
        group.finalizers.append(partial(_write_held, scope=scope, held=held))
    values, result = call(held.row)
    held.row.update(values)
    held.changed = held.changed or bool(values)
    return result


# What gets the results of a batch of `account_calls`, in the order of its calls.
Then = Callable[[list[Any]], None]
_ACCOUNT_CALLS = "limits:account_calls"  # where a group keeps its `_AccountPass`


def account_calls(
    connection: Connection, calls: Sequence[tuple[str, Call]], then: Then | None = None
) -> None:
    """`calls` (scope, call) on accounts' rows (`account_scope`) in the caller's write
    transaction; `then` gets their results, in the order of `calls`.

    Alone (no writer group): now, each row locked once, in the order of the scopes. In a
    writer group: in the group's last finalizer, together with the account calls of every
    other job and finalizer of the group (see the module docstring)."""
    group = current(connection)
    if group is None:
        results = _run_in_scope_order(connection, calls)
        if then is not None:
            then(results)
        return
    pending: _AccountPass | None = group.shared.get(_ACCOUNT_CALLS)
    if pending is None:
        pending = group.shared[_ACCOUNT_CALLS] = _AccountPass()
        group.last.append(pending.run)
    pending.batches.append((list(calls), then))


@dataclass
class _AccountPass:
    """The account calls of one writer group, run by its last finalizer."""

    batches: list[tuple[list[tuple[str, Call]], Then | None]] = field(default_factory=list)

    def run(self, connection: Connection) -> None:
        calls = [call for batch, _ in self.batches for call in batch]
        results = _run_in_scope_order(connection, calls)
        start = 0
        for batch, then in self.batches:
            if then is not None:
                then(results[start : start + len(batch)])
            start += len(batch)


def _run_in_scope_order(connection: Connection, calls: Sequence[tuple[str, Call]]) -> list[Any]:
    """Each scope's row locked and written once, the scopes in order; a scope's calls in the
    order they came (`sorted` is stable). The results in the order of `calls`."""
    results: list[Any] = [None] * len(calls)
    in_order = sorted(range(len(calls)), key=lambda index: calls[index][0])
    for scope, group in groupby(in_order, key=lambda index: calls[index][0]):
        indexes = list(group)
        done = _apply_calls(connection, scope, [calls[index][1] for index in indexes])
        for index, result in zip(indexes, done, strict=True):
            results[index] = result
    return results


def _learning(scope: str, call: Call) -> WriteFn[None]:
    def run(connection: Connection) -> None:
        account_calls(connection, [(scope, call)])

    return run


def _lock_row(connection: Connection, scope: str) -> Row:
    # Created if missing and locked (ON CONFLICT DO UPDATE locks the row it meets, as
    # FOR UPDATE would) and read, in one statement.
    return dict(connection.execute(_LOCK_ROW, {"scope": scope}).mappings().one())


def _write_row(connection: Connection, scope: str, row: Row) -> None:
    values = {key: value for key, value in row.items() if key != "scope"}
    connection.execute(_WRITE_ROW, {**values, "row_scope": scope})


def _write_held(connection: Connection, *, scope: str, held: _Held) -> None:
    if held.changed:
        _write_row(connection, scope, held.row)


class SqlSharedLimits:
    """The shared limits over a PostgreSQL engine (one row per account, locked per call)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._scopes: dict[str, _Scope] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def take(self, scope: str, now: datetime) -> Block | None:
        """Spend one call of the minute budget, or the Block that holds the call back."""
        block: Block | None = await self._call(scope, take_call(now))
        return block

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
        is when its call was taken (the `now` of its `take`). Written with the writes around
        it, in a writer group's account pass (`account_calls`)."""
        call = learn_call(now, left=left, reset=reset, quota=quota, pause=pause, sent=sent)
        await write(self.engine, _learning(scope, call))

    # -- calls on one scope, coalesced ------------------------------------------------------
    async def _call(self, scope: str, call: Call) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self._scopes.setdefault(scope, _Scope())
        pending.calls.append((call, future))
        if not pending.running:
            pending.running = True
            task = asyncio.get_running_loop().create_task(self._drain(scope, pending))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self, scope: str, pending: _Scope) -> None:
        calls: list[tuple[Call, asyncio.Future[Any]]] = []
        try:
            while pending.calls:
                calls, pending.calls = pending.calls[:MAX_CALLS], pending.calls[MAX_CALLS:]
                try:
                    results = await self._run(scope, [call for call, _ in calls])
                except Exception as error:
                    for _, future in calls:
                        if not future.done():
                            future.set_exception(error)
                    continue
                for (_, future), result in zip(calls, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                calls = []
        except asyncio.CancelledError:
            # Shutting down: nobody will run these, so their callers stop too.
            for _, future in [*calls, *pending.calls]:
                future.cancel()
            pending.calls = []
            raise
        finally:
            pending.running = False
            if not pending.calls and self._scopes.get(scope) is pending:
                del self._scopes[scope]

    async def _run(self, scope: str, calls: list[Call]) -> list[Any]:
        """`calls` in one transaction, on the row locked once, in order; one UPDATE."""
        async with self.engine.begin() as connection:
            results: list[Any] = await connection.run_sync(_apply_calls, scope, calls)
            return results
