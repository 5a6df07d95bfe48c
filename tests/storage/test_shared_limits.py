"""The deployment's view of an account's monday limits (storage/limits.py, PostgreSQL only:
SQLite is one instance)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Connection
from sqlalchemy.engine.default import CacheStats, DefaultExecutionContext
from sqlalchemy.ext.asyncio import AsyncEngine

from server.delivery.governor import Deferral, Governor, Permit
from server.monday.outcome import SendOutcome
from server.storage.db import create_engine, write
from server.storage.limits import Block, SqlSharedLimits, call_in, tokens_call
from server.storage.migrate import upgrade
from server.storage.tables import delivery_limits
from tests.pg import fresh_pg_database

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
SCOPE = "account:1001"
pytestmark = pytest.mark.postgres


@pytest.fixture
async def limits(pg_url: str) -> AsyncIterator[SqlSharedLimits]:
    async with fresh_pg_database(pg_url) as url:
        await upgrade(url)
        engine: AsyncEngine = create_engine(url)
        yield SqlSharedLimits(engine)
        await engine.dispose()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_one_probe_then_the_learnt_budget_then_a_new_window(limits: SqlSharedLimits) -> None:
    assert await limits.take(SCOPE, at(0)) is None  # the probe
    waiting = await limits.take(SCOPE, at(0.1))  # another instance waits for its answer
    assert waiting is not None and waiting.code == "MINUTE_BUDGET"
    await limits.learn(SCOPE, at(0.2), left=2, reset=at(10), quota=3, pause=None)
    assert await limits.take(SCOPE, at(0.3)) is None
    assert await limits.take(SCOPE, at(0.4)) is None
    spent = await limits.take(SCOPE, at(0.5))
    assert spent is not None and spent.until == at(10)
    # A late answer of the same window cannot raise what the instances already spent.
    await limits.learn(SCOPE, at(0.6), left=2, reset=at(11), quota=3, pause=None)
    assert await limits.take(SCOPE, at(0.7)) is not None
    # After the reset the window's whole quota is there, without waiting for an answer.
    for moment in (10.1, 10.2, 10.3):
        assert await limits.take(SCOPE, at(moment)) is None
    assert await limits.take(SCOPE, at(10.4)) is not None


async def test_a_late_answer_of_the_window_before_does_not_end_the_new_one(
    limits: SqlSharedLimits,
) -> None:
    """A call taken near the end of one window can be answered after the window rolled over;
    the reset it tells is the old window's, and adopting it would start a third window (and
    its whole quota) while monday still counts the second: a 429."""
    assert await limits.take(SCOPE, at(0)) is None
    await limits.learn(SCOPE, at(0.2), left=2, reset=at(10), quota=3, pause=None, sent=at(0))
    assert await limits.take(SCOPE, at(0.3)) is None
    assert await limits.take(SCOPE, at(9.4)) is None  # answered late, below
    for moment in (10.1, 10.2, 10.3):  # the new window, spent whole
        assert await limits.take(SCOPE, at(moment)) is None
    # monday answered the 9.4 call at 9.5 ("0 left, reset in 1 s"): learnt at 10.35.
    await limits.learn(SCOPE, at(10.35), left=0, reset=at(11.35), quota=3, pause=None, sent=at(9.4))
    assert await limits.take(SCOPE, at(11.4)) is not None
    # An answer of the new window tells its true end.
    await limits.learn(SCOPE, at(11.5), left=0, reset=at(20.2), quota=3, pause=None, sent=at(10.1))
    held = await limits.take(SCOPE, at(11.6))
    assert held is not None and held.until == at(20.2)
    assert await limits.take(SCOPE, at(20.3)) is None


async def test_a_pause_holds_every_instance(limits: SqlSharedLimits) -> None:
    pause = Block(at(30), "RATE_LIMIT_EXCEEDED", "monday is rate limiting this account.")
    await limits.learn(SCOPE, at(0), left=None, reset=None, quota=None, pause=pause)
    held = await limits.take(SCOPE, at(1))
    assert held == pause
    # A shorter pause learnt later does not shorten it.
    shorter = Block(at(5), "RATE_LIMIT_EXCEEDED", "shorter")
    await limits.learn(SCOPE, at(2), left=None, reset=None, quota=None, pause=shorter)
    assert await limits.take(SCOPE, at(6)) == pause
    assert await limits.take(SCOPE, at(31)) is None


async def test_a_429_one_instance_got_pauses_the_other(limits: SqlSharedLimits) -> None:
    # Two governors, as in two processes, over one database.
    first, second = Governor(shared=limits), Governor(shared=limits)
    permit = await first.acquire("1001", "1001:app:11", max_wait=0)
    assert isinstance(permit, Permit)
    told = SendOutcome("retry", code="RATE_LIMIT_EXCEEDED", retry_after_seconds=30)
    first.report(permit, [told])
    # The pause is written in the background; the other instance sees it once written
    # (until then it may be held back by the first call's budget probe instead).
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        held = await second.acquire("1001", "1001:app:12", max_wait=0)
        if isinstance(held, Deferral) and held.code == "RATE_LIMIT_EXCEEDED":
            break
        if isinstance(held, Permit):
            second.report(held)
        assert asyncio.get_running_loop().time() < deadline, "the pause never reached the other"
        await asyncio.sleep(0.05)
    assert held.code == "RATE_LIMIT_EXCEEDED"
    assert held.until > datetime.now(UTC) + timedelta(seconds=20)


async def minute_left(limits: SqlSharedLimits) -> int | None:
    async with limits.engine.connect() as connection:
        query = select(delivery_limits.c.minute_left).where(delivery_limits.c.scope == SCOPE)
        left: int | None = (await connection.execute(query)).scalar_one()
        return left


async def test_a_call_whose_budget_the_insert_spent_takes_none_of_its_own(
    limits: SqlSharedLimits,
) -> None:
    """The send's insert spends the budget for the request it stamps (`pretaken`): the
    governor does not spend it again. A pretaken Block holds the call back as a take of its
    own would, and the take is made again once the wait is over."""
    spent_at = datetime.now(UTC)  # the governor takes on the wall clock
    assert await limits.take(SCOPE, spent_at) is None  # the probe
    reset = spent_at + timedelta(hours=1)
    await limits.learn(SCOPE, spent_at, left=25, reset=reset, quota=30, pause=None)
    governor = Governor(shared=limits)
    permit = await governor.acquire("1001", "1001:app:11", max_wait=0, pretaken=(spent_at, None))
    assert isinstance(permit, Permit)
    assert permit.taken_at == spent_at
    assert await minute_left(limits) == 25  # not spent a second time
    governor.report(permit)

    soon = Block(datetime.now(UTC) + timedelta(seconds=0.2), "MINUTE_BUDGET", "Waiting.")
    permit = await governor.acquire("1001", "1001:app:11", max_wait=5, pretaken=(spent_at, soon))
    assert isinstance(permit, Permit)
    assert permit.taken_at is not None and permit.taken_at >= soon.until
    assert await minute_left(limits) == 24  # after the wait, the governor's own take
    later = Block(datetime.now(UTC) + timedelta(seconds=60), "MINUTE_BUDGET", "Waiting.")
    deferred = await governor.acquire("1001", "1001:app:11", max_wait=1, pretaken=(spent_at, later))
    assert isinstance(deferred, Deferral) and deferred.until == later.until


async def test_concurrent_calls_on_one_account_grant_exactly_the_budget(
    limits: SqlSharedLimits,
) -> None:
    """Calls that arrive together share one transaction (storage/limits.py); each is still
    applied to the row as the ones before it left it: 40 takes against a budget of 25 grant
    25, whatever way they were grouped, and the row keeps what was spent."""
    assert await limits.take(SCOPE, at(0)) is None  # the probe
    await limits.learn(SCOPE, at(0.1), left=25, reset=at(30), quota=30, pause=None)
    results = await asyncio.gather(*(limits.take(SCOPE, at(1)) for _ in range(40)))
    granted = [result for result in results if result is None]
    assert len(granted) == 25
    assert all(r is not None and r.until == at(30) for r in results if r is not None)
    assert await limits.take(SCOPE, at(2)) is not None  # nothing left until the reset


async def take_tokens(engine: AsyncEngine, rows: int, *, per_second: float, now: datetime) -> float:
    """A send-rate take as the send's insert makes it: `call_in` inside a `write()` job
    (group-committed with the concurrent ones)."""
    call = tokens_call(rows, capacity=5, per_second=per_second, now=now)

    def run(connection: Connection) -> float:
        tokens: float = call_in(connection, SCOPE, call)
        return tokens

    return await write(engine, run, order=SCOPE)


async def tokens_stored(engine: AsyncEngine) -> float:
    async with engine.connect() as connection:
        query = select(delivery_limits.c.tokens).where(delivery_limits.c.scope == SCOPE)
        return float((await connection.execute(query)).scalar_one())


async def test_concurrent_token_takes_each_see_the_ones_before(limits: SqlSharedLimits) -> None:
    """The send-rate bucket: 10 concurrent takes of 1 row from a bucket of 5 (no refill in
    the frozen instant) see 5, 4, ... -4 tokens before their take: each a different count,
    whether a writer group ran several (one lock, one UPDATE) or each ran alone."""
    before = await asyncio.gather(
        *(take_tokens(limits.engine, 1, per_second=0.0, now=at(0)) for _ in range(10))
    )
    assert sorted(before, reverse=True) == [5.0, 4.0, 3.0, 2.0, 1.0, 0.0, -1.0, -2.0, -3.0, -4.0]
    assert await tokens_stored(limits.engine) == -5.0


async def test_a_take_rolled_back_with_its_transaction_takes_nothing(
    limits: SqlSharedLimits,
) -> None:
    """The send's insert takes inside its own transaction: a request refused after its take
    (a taken key, the backlog's 429) rolls the take back with everything else, alone or in a
    writer group beside takes that commit."""
    await take_tokens(limits.engine, 1, per_second=0.0, now=at(0))

    def refused(connection: Connection) -> None:
        call_in(connection, SCOPE, tokens_call(3, capacity=5, per_second=0.0, now=at(0)))
        raise LookupError("refused after the take")

    with pytest.raises(LookupError):
        await write(limits.engine, refused, order=SCOPE)
    assert await tokens_stored(limits.engine) == 4.0
    # Beside committing takes: the group is rolled back, each job runs again alone.
    results = await asyncio.gather(
        write(limits.engine, refused, order=SCOPE),
        take_tokens(limits.engine, 1, per_second=0.0, now=at(0)),
        take_tokens(limits.engine, 1, per_second=0.0, now=at(0)),
        return_exceptions=True,
    )
    assert isinstance(results[0], LookupError)
    assert sorted(results[1:], reverse=True) == [4.0, 3.0]  # type: ignore[type-var]
    assert await tokens_stored(limits.engine) == 2.0


async def test_every_statement_of_a_call_comes_from_the_compiled_cache(
    limits: SqlSharedLimits,
) -> None:
    """Each send takes from these rows on PostgreSQL. A statement SQLAlchemy cannot cache (its
    PostgreSQL `insert()` has no cache key) is compiled again on every call: once warm, every
    statement of a take, a token take and a learn must be a cache hit."""
    seen: list[tuple[str, CacheStats]] = []

    def record(
        conn: Connection,
        cursor: object,
        statement: str,
        parameters: object,
        context: DefaultExecutionContext,
        executemany: bool,
    ) -> None:
        seen.append((statement.split()[0], context.cache_hit))

    async def calls(second: float) -> None:
        await limits.take(SCOPE, at(second))
        await take_tokens(limits.engine, 1, per_second=1.0, now=at(second))
        await limits.learn(SCOPE, at(second), left=10, reset=at(60), quota=50, pause=None)

    await calls(0)  # warms the cache
    event.listen(limits.engine.sync_engine, "after_cursor_execute", record)
    try:
        await calls(1)
    finally:
        event.remove(limits.engine.sync_engine, "after_cursor_execute", record)
    statements = [(verb, hit) for verb, hit in seen if verb in ("INSERT", "UPDATE", "SELECT")]
    assert len(statements) >= 3
    assert all(hit == CacheStats.CACHE_HIT for _, hit in statements), statements
