"""PostgreSQL: the inserts of one writer group take their row ids in one `nextval` statement.

Each `write()` job says how many ids it will reserve (`ids=`); the group's first reservation
takes them all (`TxnGroup.ids_wanted`) and the jobs after it take theirs from what is left
(storage/notifications/insert.py `reserve_ids`). A job that needs more than it said gets the
rest in a statement of its own. The jobs are lined up in one group by tests/storage/lanes.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import write
from server.storage.notifications.insert import reserve_ids
from server.storage.txn_group import current
from tests.storage.lanes import lanes_held

pytestmark = pytest.mark.postgres


def reserving(count: int) -> Any:
    """A job that reserves `count` notification ids in its group, as an insert does."""

    def run(connection: Connection) -> list[int]:
        group = current(connection)
        assert group is not None, "the job ran alone, not in the test's group"
        return reserve_ids(connection, count, group)

    return run


async def one_group(pg_engine: AsyncEngine, jobs: list[tuple[int, int]]) -> tuple[list[Any], int]:
    """Run `jobs` ((ids said, ids reserved) each) as one writer group; their ids and the
    number of `nextval` statements the group ran."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "nextval" in statement:
            statements.append(statement)

    async with lanes_held(pg_engine) as release:
        event.listen(pg_engine.sync_engine, "before_cursor_execute", record)
        try:
            queued = [
                asyncio.ensure_future(write(pg_engine, reserving(needs), order=f"{i}", ids=said))
                for i, (said, needs) in enumerate(jobs)
            ]
            await release(len(jobs))
            results = list(await asyncio.gather(*queued))
        finally:
            event.remove(pg_engine.sync_engine, "before_cursor_execute", record)
    return results, len(statements)


def assert_distinct_and_ascending(results: list[list[int]], sizes: list[int]) -> None:
    assert [len(ids) for ids in results] == sizes
    for ids in results:
        assert ids == sorted(ids)
    every = [i for ids in results for i in ids]
    assert len(set(every)) == len(every), results


async def test_a_group_of_inserts_takes_its_ids_in_one_statement(pg_engine: AsyncEngine) -> None:
    jobs = [(1, 1), (3, 3), (1, 1), (2, 2)]
    results, statements = await one_group(pg_engine, jobs)
    assert statements == 1
    assert_distinct_and_ascending(results, [1, 3, 1, 2])
    # The group's ids are the sequence's next seven, handed out in the jobs' order.
    assert [i for ids in results for i in ids] == list(range(results[0][0], results[0][0] + 7))


async def test_a_job_that_needs_more_than_it_said_still_gets_ids_of_its_own(
    pg_engine: AsyncEngine,
) -> None:
    """Not what an insert does (it says how many rows it has), but reservations stay
    correct: the second job takes what is left and a statement for the rest, and the third
    job, whose id the second took, gets one from a statement of its own."""
    jobs = [(1, 1), (1, 4), (1, 1)]  # the second job said 1 and reserves 4
    results, statements = await one_group(pg_engine, jobs)
    assert statements == 3
    assert_distinct_and_ascending(results, [1, 4, 1])
