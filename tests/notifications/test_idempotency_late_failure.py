"""A request that fails after its rows were committed keeps its Idempotency-Key reserved.

The key is reserved in the insert's transaction, with the rows; the worker delivers those
rows whatever becomes of the request. Giving the key back on a late failure (a 5xx, the
request task cancelled) let a retry with the same key insert and send the notifications a
second time (contract §6: "replays the first response and sends nothing").
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.errors import ApiError
from server.notifications.idempotency import Idempotency, pending_reservation
from server.notifications.model import Notification
from server.storage.db import create_engine
from server.storage.notifications import SqlIdempotencyKeys, SqlNotificationRows

ACCOUNT, USER, KEY, DIGEST = "1001", "12", "late-failure", "d" * 64


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_a_late_failure_does_not_give_the_key_back(engine: AsyncEngine) -> None:
    keys = SqlIdempotencyKeys(engine)
    idempotency = Idempotency(keys, SqlNotificationRows(engine), wait_for_first=0.2)
    runs: list[str] = []

    async def work_that_fails_after_its_rows() -> tuple[int, Any]:
        runs.append("run")
        reservation = pending_reservation()  # what the send's insert takes with its rows
        assert reservation is not None
        assert await keys.reserve(ACCOUNT, USER, reservation.key, reservation.body_digest)
        raise RuntimeError("failed after the rows were committed")

    async def recover(_rows: Any) -> tuple[int, Any]:
        raise AssertionError("nothing to recover from in this test")

    with pytest.raises(RuntimeError):
        await idempotency.once(ACCOUNT, USER, KEY, DIGEST, work_that_fails_after_its_rows, recover)
    record = await keys.read(ACCOUNT, USER, KEY)
    assert record is not None and record.response_status is None  # still reserved

    # A retry does not run the work again: the first request may still be answering...
    with pytest.raises(ApiError) as waiting:
        await idempotency.once(ACCOUNT, USER, KEY, DIGEST, work_that_fails_after_its_rows, recover)
    assert waiting.value.code == "IDEMPOTENCY_IN_FLIGHT"
    assert "Retry-After" in waiting.value.headers
    # ...and once it counts as abandoned, it is answered from the rows (none were named
    # here), never by sending again.
    idempotency.abandoned_after = timedelta(0)
    with pytest.raises(ApiError) as abandoned:
        await idempotency.once(ACCOUNT, USER, KEY, DIGEST, work_that_fails_after_its_rows, recover)
    assert abandoned.value.code == "IDEMPOTENCY_KEY_ABANDONED"
    assert runs == ["run"]


async def test_a_failure_before_any_row_leaves_the_key_free(engine: AsyncEngine) -> None:
    keys = SqlIdempotencyKeys(engine)
    idempotency = Idempotency(keys, SqlNotificationRows(engine))
    runs: list[str] = []

    async def fails_before_writing() -> tuple[int, Any]:
        runs.append("run")
        raise RuntimeError("failed before the insert")

    async def answers() -> tuple[int, Any]:
        runs.append("run")
        return 200, {"data": []}

    async def recover(_rows: list[Notification]) -> tuple[int, Any]:
        raise AssertionError("not abandoned")

    with pytest.raises(RuntimeError):
        await idempotency.once(ACCOUNT, USER, KEY, DIGEST, fails_before_writing, recover)
    assert await keys.read(ACCOUNT, USER, KEY) is None
    assert await idempotency.once(ACCOUNT, USER, KEY, DIGEST, answers, recover) == (
        200,
        {"data": []},
        False,
    )
    assert runs == ["run", "run"]
