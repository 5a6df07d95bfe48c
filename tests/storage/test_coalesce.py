"""Inserts committed in one group are planned together (storage/notifications/coalesce.py).

Both engines. The inserts are lined up so the writer commits them as one group: on
PostgreSQL every `write()` queued before the first group starts goes into it; on SQLite the
writer is held until they are all queued (tests/writer_hold.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import frozen
from server.notifications.model import (
    DeliveryStatus,
    KeyReservation,
    KeyTaken,
    NewNotification,
    Notification,
    PlannedRequest,
)
from server.storage.db import SQLiteEngine, create_engine
from server.storage.notifications import SqlNotificationRows
from tests.conditions import until
from tests.storage.rows import ACCOUNT, SENDER, audit, new
from tests.writer_hold import writer_held

T = TypeVar("T")
T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def one_request(rows: Sequence[Notification]) -> list[PlannedRequest]:
    """A planner that sends every row it is given in one request."""
    ids = tuple(row.id for row in rows)
    return [PlannedRequest(ids, "key-" + "-".join(map(str, ids)))]


class Shared:
    def __init__(self) -> None:
        self.requests: list[tuple[list[Notification], int]] = []

    def __call__(self, rows: Sequence[Notification], participants: int) -> None:
        self.requests.append((list(rows), participants))


async def insert(
    engine: AsyncEngine,
    row: NewNotification,
    lease: str,
    shared: Shared,
    reserve: KeyReservation | None = None,
) -> list[Notification]:
    return await SqlNotificationRows(engine).insert(
        account_id=ACCOUNT,
        sender=SENDER,
        rows=[row],
        audits=[audit()],
        idempotency_key=None if reserve is None else reserve.key,
        lease_owner=lease,
        plan=one_request,
        share=shared,
        reserve=reserve,
    )


async def together(engine: AsyncEngine, inserts: list[Awaitable[T]]) -> list[T | BaseException]:
    """Run `inserts` so the writer commits them in one group."""
    if isinstance(engine, SQLiteEngine) and engine.writer is not None:
        async with writer_held(engine) as writer:
            tasks = [asyncio.ensure_future(work) for work in inserts]
            await until(lambda: writer.queued >= len(tasks), "the inserts never reached the writer")
        return list(await asyncio.gather(*tasks, return_exceptions=True))
    return list(await asyncio.gather(*inserts, return_exceptions=True))


async def test_inserts_committed_together_share_one_request(engine: AsyncEngine) -> None:
    shared = Shared()
    with frozen(T0):
        results = await together(
            engine, [insert(engine, new(str(20 + i)), f"lease/{i}", shared) for i in range(4)]
        )
    rows = [row for result in results for row in _rows(result)]
    assert {row.delivery_status for row in rows} == {DeliveryStatus.SENDING}
    by_key: dict[str, list[Notification]] = {}
    for row in rows:
        assert row.delivery_request_key is not None
        by_key.setdefault(row.delivery_request_key, []).append(row)
    [largest] = by_key.values()
    assert len(largest) == 4
    ids = tuple(sorted(row.id for row in largest))
    # One request: its key names exactly its rows, all under the lease of its first row.
    assert {row.delivery_request_rows for row in largest} == {ids}
    assert largest[0].delivery_request_key == one_request(largest)[0].key
    assert {row.lease_owner for row in largest} == {min(largest, key=lambda r: r.id).lease_owner}
    # What the inserts returned is what was stored.
    stored = await SqlNotificationRows(engine).get_many([row.id for row in rows])
    assert sorted(stored, key=lambda r: r.id) == sorted(rows, key=lambda r: r.id)
    # The deliverer was handed exactly that request, with one participant per insert.
    assert [(sorted(r.id for r in request), n) for request, n in shared.requests] == [
        (list(ids), len(ids))
    ]


async def test_a_failing_insert_leaves_the_others_alone_and_unjoined(engine: AsyncEngine) -> None:
    """A taken Idempotency-Key fails its insert; the group is rolled back and each insert
    runs again alone: the others are stamped each with its own request, nothing shared."""
    shared = Shared()
    reserve = KeyReservation(ACCOUNT, SENDER, "taken", "d1")
    with frozen(T0):
        await insert(engine, new("30"), "first", Shared(), reserve)
        results = await together(
            engine,
            [
                insert(engine, new("31"), "a", shared),
                insert(engine, new("32"), "b", shared, reserve),
                insert(engine, new("33"), "c", shared),
            ],
        )
    assert isinstance(results[1], KeyTaken)
    for result in (results[0], results[2]):
        [row] = _rows(result)
        assert row.delivery_request_rows == (row.id,)
        assert row.delivery_request_key == f"key-{row.id}"
    assert shared.requests == []


async def test_short_lived_rows_are_never_joined(engine: AsyncEngine) -> None:
    """An automation's short-lived token sends only its own action's rows."""
    shared = Shared()
    with frozen(T0):
        results = await together(
            engine,
            [
                insert(engine, new(str(40 + i), credential_owner="short_lived"), f"s/{i}", shared)
                for i in range(3)
            ],
        )
    for i, result in enumerate(results):
        [row] = _rows(result)
        assert (row.delivery_request_rows, row.lease_owner) == ((row.id,), f"s/{i}")
        assert row.delivery_request_key == f"key-{row.id}"
    assert shared.requests == []


def _rows(result: Any) -> list[Notification]:
    assert isinstance(result, list), result
    return result


async def test_inserts_of_another_deliverer_are_not_joined(engine: AsyncEngine) -> None:
    """Two apps on one engine: a request is sent by one deliverer, so an insert handed a
    different one is planned alone, and neither is handed the other's rows."""
    mine, theirs = Shared(), Shared()
    with frozen(T0):
        results = await together(
            engine,
            [
                insert(engine, new("50"), "m/0", mine),
                insert(engine, new("51"), "m/1", mine),
                insert(engine, new("52"), "t/0", theirs),
            ],
        )
    [other] = _rows(results[2])
    assert (other.delivery_request_rows, other.lease_owner) == ((other.id,), "t/0")
    assert theirs.requests == []
    assert all(other.id not in [row.id for row in rows] for rows, _ in mine.requests)
