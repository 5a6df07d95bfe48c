"""PostgreSQL: the `sent` outcomes of rows whose copies the caller holds are written by one
statement per job, and one per writer group (storage/notifications/sent_batch.py).

What comes back must still be the rows as stored, also when a copy turned out stale: in a
job alone that row goes the general way; in a group the group is rolled back and each job
runs again alone. The jobs are lined up in one group by tests/storage/lanes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import frozen
from server.notifications.model import (
    DeliveryStatus,
    Finish,
    Notification,
    PlannedRequest,
    Visibility,
)
from server.storage.notifications import SqlNotificationRows, SqlOutbox
from tests.storage.lanes import lanes_held
from tests.storage.rows import ACCOUNT, SENDER, audit, new

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
S = DeliveryStatus


def _one_request_each(rows: Sequence[Notification]) -> list[PlannedRequest]:
    return [PlannedRequest((row.id,), f"key-{row.id}") for row in rows]


async def sending(pg_engine: AsyncEngine, owner: str, *recipients: str) -> list[Notification]:
    """Rows inserted leased to `owner` and `sending` (as the send path inserts them)."""
    with frozen(T0):
        return await SqlNotificationRows(pg_engine).insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=[new(r) for r in recipients],
            audits=[audit() for _ in recipients],
            idempotency_key=None,
            lease_owner=owner,
            plan=_one_request_each,
        )


class Updates:
    """The UPDATE statements run on the pg_engine while it is listening."""

    def __init__(self, pg_engine: AsyncEngine) -> None:
        self.engine = pg_engine
        self.seen: list[str] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE notifications"):
            self.seen.append(statement)

    def __enter__(self) -> Updates:
        event.listen(self.engine.sync_engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine.sync_engine, "before_cursor_execute", self)


def sent(rows: Sequence[Notification]) -> list[Finish]:
    return [Finish(row.id, S.SENT, monday_id=f"m{row.id}") for row in rows]


async def test_a_job_writes_its_sent_rows_in_one_statement(pg_engine: AsyncEngine) -> None:
    rows = await sending(pg_engine, "me/1", "12", "13", "14")
    with Updates(pg_engine) as updates, frozen(T0 + timedelta(seconds=1)):
        done = await SqlOutbox(pg_engine).finish_many("me/1", sent(rows), known=rows)
    assert len(updates.seen) == 1, updates.seen
    assert done == await SqlNotificationRows(pg_engine).get_many([row.id for row in rows])
    assert [(r.delivery_status, r.monday_id, r.lease_owner) for r in done] == [
        (S.SENT, f"m{row.id}", None) for row in rows
    ]
    assert {r.sent_at for r in done} == {T0 + timedelta(seconds=1)}


async def finish_in_one_group(
    pg_engine: AsyncEngine, jobs: list[tuple[str, list[Notification]]]
) -> list[list[Notification]]:
    """`finish_many` of each (owner, rows) of `jobs`, all in one writer group."""
    outbox = SqlOutbox(pg_engine)
    async with lanes_held(pg_engine) as release:
        queued = [
            asyncio.ensure_future(outbox.finish_many(owner, sent(rows), known=rows))
            for owner, rows in jobs
        ]
        await release(len(jobs))
        return list(await asyncio.gather(*queued))


async def stored_rows(
    pg_engine: AsyncEngine, jobs: list[tuple[str, list[Notification]]]
) -> list[Notification]:
    return await SqlNotificationRows(pg_engine).get_many(
        [row.id for _, rows in jobs for row in rows]
    )


async def test_a_group_writes_the_sent_rows_of_all_its_jobs_in_one_statement(
    pg_engine: AsyncEngine,
) -> None:
    jobs = [(f"me/{i}", await sending(pg_engine, f"me/{i}", str(20 + i))) for i in range(4)]
    with Updates(pg_engine) as updates:
        answers = await finish_in_one_group(pg_engine, jobs)
    assert len(updates.seen) == 1, updates.seen
    stored = await stored_rows(pg_engine, jobs)
    assert [row for answer in answers for row in answer] == stored
    assert {row.delivery_status for row in stored} == {S.SENT}


async def test_a_stale_copy_in_a_group_runs_each_job_alone_and_answers_as_stored(
    pg_engine: AsyncEngine,
) -> None:
    jobs = [(f"me/{i}", await sending(pg_engine, f"me/{i}", str(30 + i))) for i in range(3)]
    stale = jobs[1][1][0]
    # Archived by its recipient meanwhile: the caller's copy still says `inbox`.
    visible = Visibility(ACCOUNT, stale.recipient)
    assert await SqlNotificationRows(pg_engine).set_status(visible, [(stale.id, "archived")])
    with Updates(pg_engine) as updates:
        answers = await finish_in_one_group(pg_engine, jobs)
    # The group's statement (rolled back), then each job alone: its own statement, and the
    # stale row's general one.
    assert len(updates.seen) == 5, updates.seen
    stored = await stored_rows(pg_engine, jobs)
    assert [row for answer in answers for row in answer] == stored
    assert [(row.delivery_status, row.status) for row in stored] == [
        (S.SENT, "inbox"),
        (S.SENT, "archived"),
        (S.SENT, "inbox"),
    ]
