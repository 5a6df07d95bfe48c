"""One battery, both engines: what every store relies on from the database itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import create_engine
from server.storage.tables import credentials, notifications

T0 = datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


def notification(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "timestamp": T0,
        "recipient": "12",
        "sender": "11",
        "subject": "Hello",
        "message": "Your item changed",
        "collection": "items",
        "item": "5001",
        "account_id": "1001",
    }
    row.update(overrides)
    return row


def credential(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "account_id": "1001",
        "user_id": "11",
        "kind": "api_key",
        "secret_encrypted": "gAAAAA-not-a-secret",
        "last4": "abcd",
        "created_at": T0,
        "updated_at": T0,
    }
    row.update(overrides)
    return row


async def insert_notification(engine: AsyncEngine, **overrides: Any) -> int:
    async with engine.begin() as conn:
        result = await conn.execute(
            insert(notifications).values(notification(**overrides)).returning(notifications.c.id)
        )
        return int(result.scalar_one())


async def read_notification(engine: AsyncEngine, row_id: int) -> Any:
    async with engine.connect() as conn:
        result = await conn.execute(select(notifications).where(notifications.c.id == row_id))
        return result.one()


async def test_ids_autoincrement(engine: AsyncEngine) -> None:
    ids = [await insert_notification(engine, item=str(i)) for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5
    assert all(isinstance(i, int) and i > 0 for i in ids)


async def test_server_defaults_fill_a_new_row(engine: AsyncEngine) -> None:
    row = await read_notification(engine, await insert_notification(engine))
    assert row.status == "inbox"
    assert row.delivery_status == "queued"
    assert row.attempts == 0
    assert row.last_error is None
    assert row.sent_at is None


@pytest.mark.parametrize(
    "moment",
    [
        T0,
        datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 3, 28, 19, 30, 15, 123456, tzinfo=timezone(timedelta(hours=-5))),
    ],
    ids=["utc", "plus2", "minus5"],
)
async def test_aware_timestamps_round_trip(engine: AsyncEngine, moment: datetime) -> None:
    row_id = await insert_notification(engine, timestamp=moment, next_attempt_at=moment)
    row = await read_notification(engine, row_id)
    for value in (row.timestamp, row.next_attempt_at):
        assert value.tzinfo is not None, "timestamps come back timezone-aware"
        assert value == T0, "the same instant, to the microsecond"
        assert value.utcoffset() == timedelta(0)


async def test_timestamps_compare_as_instants(engine: AsyncEngine) -> None:
    """A due-row query gives the same answer whatever offset the bound value carries."""
    early = await insert_notification(engine, next_attempt_at=T0 - timedelta(minutes=1))
    late = await insert_notification(engine, next_attempt_at=T0 + timedelta(minutes=1))
    for now in (T0, T0.astimezone(timezone(timedelta(hours=9)))):
        async with engine.connect() as conn:
            due = await conn.execute(
                select(notifications.c.id).where(notifications.c.next_attempt_at <= now)
            )
            assert [r.id for r in due] == [early]
    assert late != early


async def test_json_last_error_round_trips(engine: AsyncEngine) -> None:
    error = {
        "code": "ComplexityException",
        "message": "Complexity budget exhausted, reset in 17 seconds",
        "retry_in_seconds": 17,
        "extensions": {"status_code": 429, "nested": [1, 2.5, None, True, "ü"]},
    }
    row = await read_notification(engine, await insert_notification(engine, last_error=error))
    assert row.last_error == error


async def test_credentials_are_unique_per_owner_and_kind(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(credentials).values(credential()))
        # Same owner, other kind; same kind, other user: both allowed.
        await conn.execute(insert(credentials).values(credential(kind="oauth")))
        await conn.execute(insert(credentials).values(credential(user_id="12")))

    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await conn.execute(insert(credentials).values(credential(last4="wxyz")))

    async with engine.connect() as conn:
        rows = (await conn.execute(select(credentials.c.user_id, credentials.c.kind))).all()
    assert sorted(rows) == [("11", "api_key"), ("11", "oauth"), ("12", "api_key")]
