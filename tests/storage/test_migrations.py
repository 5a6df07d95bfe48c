"""Migrations apply on SQLite and PostgreSQL, match the tables, and are idempotent."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.storage.db import create_engine
from server.storage.migrate import head_revision, upgrade
from server.storage.tables import installations, metadata, notification_id_floor, notifications
from tests.ledger.conftest import row


@pytest.fixture
async def engine(empty_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(empty_database_url)
    yield engine
    await engine.dispose()


def _schema(connection: Connection) -> dict[str, Any]:
    """Tables with their columns, indexes and unique constraints, comparable between runs."""
    inspector = inspect(connection)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        schema[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ),
            "indexes": sorted(i["name"] or "" for i in inspector.get_indexes(table)),
            "unique": sorted(u["name"] or "" for u in inspector.get_unique_constraints(table)),
        }
    return schema


async def _revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())


async def test_upgrade_creates_every_table(empty_database_url: str, engine: AsyncEngine) -> None:
    await upgrade(empty_database_url)

    async with engine.connect() as conn:
        schema = await conn.run_sync(_schema)
    for name, table in metadata.tables.items():
        assert name in schema, f"migration does not create {name}"
        assert {c[0] for c in schema[name]["columns"]} == set(table.columns.keys()), name
        for index in table.indexes:
            assert index.name in schema[name]["indexes"], f"{name}: index {index.name} missing"
    assert await _revision(engine) == head_revision()


async def test_migrations_match_the_tables(empty_database_url: str, engine: AsyncEngine) -> None:
    """Autogenerate finds nothing to do: tables.py and the migrations describe one schema."""
    await upgrade(empty_database_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], "change tables.py and add a migration together"


async def test_second_upgrade_is_a_no_op(empty_database_url: str, engine: AsyncEngine) -> None:
    await upgrade(empty_database_url)
    async with engine.begin() as conn:
        before = await conn.run_sync(_schema)
        await conn.execute(
            text(
                "INSERT INTO oauth_states (state_digest, account_id, user_id, created_at,"
                " expires_at) VALUES ('d', '1', '2', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )

    await upgrade(empty_database_url)

    async with engine.connect() as conn:
        assert await conn.run_sync(_schema) == before
        kept = await conn.execute(text("SELECT count(*) FROM oauth_states"))
        assert kept.scalar_one() == 1
    assert await _revision(engine) == head_revision()


async def test_boolean_server_defaults(database_url: str) -> None:
    """`installed` defaults to true and `needs_reconnect` to false on both engines."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO installations (account_id, updated_at)"
                    " VALUES ('1', CURRENT_TIMESTAMP)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO credentials (account_id, user_id, kind, secret_encrypted, last4,"
                    " created_at, updated_at) VALUES ('1', '2', 'api_key', 'x', 'abcd',"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        async with engine.connect() as conn:
            installed = (await conn.execute(text("SELECT installed FROM installations"))).one()
            reconnect = (await conn.execute(text("SELECT needs_reconnect FROM credentials"))).one()
        assert bool(installed[0]) is True
        assert bool(reconnect[0]) is False
    finally:
        await engine.dispose()


async def test_the_id_floor_starts_at_the_highest_id_and_rises_on_deletes(
    empty_database_url: str, engine: AsyncEngine
) -> None:
    """Migration 0012 on a ledger with rows: the floor starts at today's highest id, and on
    SQLite a delete raises it only when it deletes above it (PostgreSQL: no trigger, its
    sequence never gives an id twice)."""
    await upgrade(empty_database_url, "0011")
    async with engine.begin() as conn:
        for row_id in (1, 2, 3):
            await conn.execute(insert(notifications).values(id=row_id, **row()))
    await upgrade(empty_database_url)

    async def floor() -> int:
        async with engine.connect() as conn:
            found = await conn.execute(select(notification_id_floor.c.last_deleted_id))
            return int(found.scalar_one())

    assert await floor() == 3
    async with engine.begin() as conn:
        await conn.execute(delete(notifications).where(notifications.c.id == 2))
    assert await floor() == 3
    async with engine.begin() as conn:
        await conn.execute(insert(notifications).values(id=7, **row()))
        await conn.execute(delete(notifications).where(notifications.c.id.in_([3, 7])))
    sqlite = engine.dialect.name == "sqlite"
    assert await floor() == (7 if sqlite else 3)


async def test_stored_json_null_becomes_sql_null(
    empty_database_url: str, engine: AsyncEngine
) -> None:
    """Migration 0013: a sent row's `last_error` stored as the JSON text `null` (as the send
    path wrote it before) becomes SQL NULL; a real error stays as it was."""
    await upgrade(empty_database_url, "0012")
    async with engine.begin() as conn:
        await conn.execute(insert(notifications).values(id=1, **row()))
        await conn.execute(
            insert(notifications).values(id=2, **row(last_error={"code": "E", "message": "m"}))
        )
        await conn.execute(text("UPDATE notifications SET last_error = 'null' WHERE id = 1"))
        stored = await conn.execute(text("SELECT count(last_error) FROM notifications"))
        assert stored.scalar_one() == 2
    await upgrade(empty_database_url)
    async with engine.connect() as conn:
        raw = await conn.execute(
            text("SELECT CAST(last_error AS TEXT) FROM notifications ORDER BY id")
        )
        [(none,), (error,)] = raw.all()
    assert none is None
    assert error is not None and '"code"' in error


async def test_the_install_watermark_starts_at_the_last_event(
    empty_database_url: str, engine: AsyncEngine
) -> None:
    """Migration 0014: an account's `install_event_at` starts at its `last_event_at`, so an
    install or uninstall older than what was applied before stays stale after the upgrade."""
    await upgrade(empty_database_url, "0013")
    stamp = datetime(2026, 7, 3, 10, tzinfo=UTC)
    async with engine.begin() as conn:
        for account, last in (("1001", stamp), ("1002", None)):
            await conn.execute(
                insert(installations).values(
                    account_id=account, last_event_at=last, updated_at=stamp
                )
            )
    await upgrade(empty_database_url)
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(installations.c.account_id, installations.c.install_event_at).order_by(
                installations.c.account_id
            )
        )
        assert rows.all() == [("1001", stamp), ("1002", None)]
