"""PostgreSQL: a writer group locks the accounts' limit rows once, last, in account order.

The governor's `learn` (what a monday answer said about the account's budget) is a `write()`
job of its own: it joins the writer group of the writes around it (the outcomes) instead of
taking a transaction of its own. Its call on the account's row, and the budget takes of the
group's inserts, run in the group's last finalizer (storage/limits.py `account_calls`): each
account's row locked once, after every other row the group locks, the accounts in order,
whatever order the jobs came in. So two groups in flight never wait for each other in a
cycle. The jobs are lined up in one group by tests/storage/lanes.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import write
from server.storage.limits import (
    SqlSharedLimits,
    account_calls,
    account_scope,
    call_in,
    take_call,
    tokens_call,
)
from server.storage.tables import delivery_limits
from server.storage.txn_group import current
from tests.storage.lanes import lanes_held

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
RESET = NOW + timedelta(seconds=30)


class Recorder:
    """The scopes the engine's transactions lock, in order, and on which connection; the
    transactions begun on each connection."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine.sync_engine
        self.locks: list[tuple[int, str]] = []
        self.begun: Counter[int] = Counter()

    def _statement(self, conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.startswith("INSERT INTO delivery_limits"):
            self.locks.append((id(conn), parameters[0]))

    def _begin(self, conn: Any) -> None:
        self.begun[id(conn)] += 1

    @property
    def locked(self) -> list[str]:
        return [scope for _, scope in self.locks]

    def one_transaction(self) -> int:
        """The connection every lock was taken on, after checking it began once."""
        connections = {conn for conn, _ in self.locks}
        assert len(connections) == 1, f"rows locked in {len(connections)} transactions"
        (conn,) = connections
        assert self.begun[conn] == 1
        return conn

    def __enter__(self) -> Recorder:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "begin", self._begin)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "begin", self._begin)


async def rows(engine: AsyncEngine) -> dict[str, tuple[int | None, int | None]]:
    """Each scope's (minute_left, minute_quota)."""
    c = delivery_limits.c
    async with engine.connect() as connection:
        found = await connection.execute(select(c.scope, c.minute_left, c.minute_quota))
        return {scope: (left, quota) for scope, left, quota in found.tuples()}


async def test_learns_join_the_group_and_lock_each_account_once_in_order(
    pg_engine: AsyncEngine,
) -> None:
    limits = SqlSharedLimits(pg_engine)
    outcome_ran_on: list[int] = []

    def outcome(connection: Connection) -> None:  # stands for the outcomes' write
        outcome_ran_on.append(id(connection))

    async with lanes_held(pg_engine) as release:
        with Recorder(pg_engine) as recorder:
            queued = [asyncio.ensure_future(write(pg_engine, outcome))]
            answers = (("1002", 7, 10), ("1001", 4, 10), ("1003", 9, 10), ("1001", 2, 12))
            for account, left, quota in answers:
                learn = limits.learn(
                    account_scope(account), NOW, left=left, reset=RESET, quota=quota, pause=None
                )
                queued.append(asyncio.ensure_future(learn))
            await release(5)
            await asyncio.gather(*queued)
    # The four learns and the outcome: one transaction.
    assert outcome_ran_on == [recorder.one_transaction()]
    assert recorder.locked == ["account:1001", "account:1002", "account:1003"]
    # 1001's two answers in the order they came (the second one's quota), the lower budget.
    assert await rows(pg_engine) == {
        "account:1001": (2, 12),
        "account:1002": (7, 10),
        "account:1003": (9, 10),
    }


async def test_the_accounts_come_last_whoever_calls_on_them(pg_engine: AsyncEngine) -> None:
    """A job's calls on two accounts (out of order), a finalizer's call on a third, a user's
    bucket taken in a job after them: the user's row first, then the accounts in order, and
    each batch of calls gets its results."""
    results: dict[str, list[Any]] = {}

    def takes(scopes: list[str]) -> list[tuple[str, Any]]:
        return [(scope, take_call(NOW)) for scope in scopes]

    def accounts_in_job(connection: Connection) -> None:
        calls = takes(["account:1003", "account:1001"])
        account_calls(connection, calls, lambda found: results.__setitem__("job", found))

    def account_in_finalizer(connection: Connection) -> None:
        group = current(connection)
        assert group is not None, "the job ran alone, not in the test's group"

        def finalizer(connection: Connection) -> None:
            calls = takes(["account:1002"])
            account_calls(connection, calls, lambda found: results.__setitem__("late", found))

        group.finalizers.append(finalizer)

    def user_bucket(connection: Connection) -> float:
        call = tokens_call(1, capacity=5, per_second=0.0, now=NOW)
        tokens: float = call_in(connection, "sender:1001:7", call)
        return tokens

    async with lanes_held(pg_engine) as release:
        with Recorder(pg_engine) as recorder:
            queued = [
                asyncio.ensure_future(write(pg_engine, accounts_in_job, order="1")),
                asyncio.ensure_future(write(pg_engine, account_in_finalizer, order="2")),
                asyncio.ensure_future(write(pg_engine, user_bucket, order="3")),
            ]
            await release(3)
            await asyncio.gather(*queued)
    recorder.one_transaction()
    assert recorder.locked == ["sender:1001:7", "account:1001", "account:1002", "account:1003"]
    # A first take on an unknown budget probes (no Block); each batch got its own results.
    assert results == {"job": [None, None], "late": [None]}
