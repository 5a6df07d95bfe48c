"""Contract §10 / monday's marketplace rule: an account that stays uninstalled for
UNINSTALL_RETENTION_DAYS (default 10) has its ledger rows, audit entries and idempotency
records purged; a reinstall before then keeps them; other accounts are untouched.
On SQLite and PostgreSQL (`database_url`), with an injected `now` (no waiting)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.appkeys import SERVICES
from server.storage.db import create_engine
from server.storage.installations import SqlInstallations, upsert_installation
from server.storage.retention import purge_uninstalled
from server.storage.tables import (
    idempotency_keys,
    lifecycle_events,
    notifications,
    oauth_states,
    sender_audit,
)
from tests.conftest import make_settings

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
GONE_11_DAYS = "3001"
GONE_9_DAYS = "3002"
REINSTALLED = "3003"
INSTALLED = "3004"
ACCOUNTS = (GONE_11_DAYS, GONE_9_DAYS, REINSTALLED, INSTALLED)
ROWS_EACH = 5
# What monday sends with a lifecycle event (its `data`: shared/reference/monday-platform.md).
PAYLOAD = {"user_id": 11, "user_email": "ada@example.com", "user_name": "Ada", "user_country": "GB"}


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def seed(engine: AsyncEngine, account: str, *, uninstalled_days_ago: int | None) -> None:
    async with engine.begin() as conn:
        values: dict[str, Any] = {
            "installer_user_id": "11",
            "installer_name": "Ada",
            "installer_email": "ada@example.com",
            "last_event_type": "install",
            "installed": True,
            "installed_at": NOW - timedelta(days=30),
        }
        if uninstalled_days_ago is not None:
            values.update(
                installed=False,
                last_event_type="uninstall",
                uninstalled_at=NOW - timedelta(days=uninstalled_days_ago),
            )
        await upsert_installation(conn, account, values, now=NOW - timedelta(days=30))
        await conn.execute(
            insert(lifecycle_events).values(
                digest=f"{account:0>64}",
                account_id=account,
                type=values["last_event_type"],
                data=PAYLOAD | {"account_id": int(account)},
                received_at=NOW - timedelta(days=12),
            )
        )
        for i in range(ROWS_EACH):
            row_id = (
                await conn.execute(
                    insert(notifications)
                    .values(
                        timestamp=NOW - timedelta(days=20),
                        recipient="12",
                        sender="11",
                        message=f"message {i} of {account}",
                        collection="Project",
                        item="5550001",
                        account_id=account,
                        delivery_status="sent",
                    )
                    .returning(notifications.c.id)
                )
            ).scalar_one()
            await conn.execute(
                insert(sender_audit).values(
                    at=NOW - timedelta(days=20),
                    account_id=account,
                    user_id="11",
                    surface="rest",
                    outcome="sent",
                    reason="test",
                    notification_id=row_id,
                )
            )
            await conn.execute(
                insert(idempotency_keys).values(
                    account_id=account,
                    user_id="11",
                    key=f"key-{i}",
                    body_digest="0" * 64,
                    response_status=200,
                    response_body={"data": {"id": row_id}},
                    created_at=NOW - timedelta(days=20),
                )
            )
        await conn.execute(
            insert(oauth_states).values(
                state_digest=f"s{account:0>63}",
                account_id=account,
                user_id="11",
                created_at=NOW - timedelta(days=20),
                expires_at=NOW - timedelta(days=20),
            )
        )


async def events(engine: AsyncEngine, account: str) -> list[tuple[str, str, Any]]:
    """The account's lifecycle events: (digest, type, data)."""
    c = lifecycle_events.c
    async with engine.connect() as conn:
        found = await conn.execute(
            select(c.digest, c.type, c.data).where(c.account_id == account).order_by(c.id)
        )
        return [tuple(row) for row in found.all()]


async def counts(engine: AsyncEngine, account: str) -> dict[str, int]:
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        for table in (
            notifications,
            sender_audit,
            idempotency_keys,
            oauth_states,
            lifecycle_events,
        ):
            query = select(func.count()).select_from(table).where(table.c.account_id == account)
            found[table.name] = int((await conn.execute(query)).scalar_one())
    return found


FULL = {
    "notifications": ROWS_EACH,
    "sender_audit": ROWS_EACH,
    "idempotency_keys": ROWS_EACH,
    "oauth_states": 1,
    "lifecycle_events": 1,
}
PURGED = {**FULL, "notifications": 0, "sender_audit": 0, "idempotency_keys": 0, "oauth_states": 0}


async def test_only_accounts_uninstalled_past_the_retention_are_purged(
    engine: AsyncEngine,
) -> None:
    await seed(engine, GONE_11_DAYS, uninstalled_days_ago=11)
    await seed(engine, GONE_9_DAYS, uninstalled_days_ago=9)
    await seed(engine, REINSTALLED, uninstalled_days_ago=11)
    await seed(engine, INSTALLED, uninstalled_days_ago=None)
    # Reinstalled after 8 days: what `install` does (installed again, uninstalled_at cleared).
    async with engine.begin() as conn:
        await upsert_installation(
            conn, REINSTALLED, {"installed": True, "uninstalled_at": None}, now=NOW
        )

    # Batches of 2 rows: every table needs several short transactions.
    report = await purge_uninstalled(engine, retention_days=10, now=NOW, batch_size=2)

    assert report.accounts == [GONE_11_DAYS]
    assert report.rows["notifications"] == ROWS_EACH
    assert await counts(engine, GONE_11_DAYS) == PURGED
    for kept in (GONE_9_DAYS, REINSTALLED, INSTALLED):
        assert await counts(engine, kept) == FULL, kept
    # The installation record stays (lifecycle needs it), without the installer's details.
    gone = await SqlInstallations(engine).get(GONE_11_DAYS)
    assert gone is not None and not gone.installed
    assert (gone.installer_name, gone.installer_email) == (None, None)
    kept_record = await SqlInstallations(engine).get(GONE_9_DAYS)
    assert kept_record is not None and kept_record.installer_email == "ada@example.com"
    # Its lifecycle event keeps its digest (a replay still changes nothing) and type, not
    # what monday said about the installing user; the others' events are untouched.
    assert await events(engine, GONE_11_DAYS) == [(f"{GONE_11_DAYS:0>64}", "uninstall", {})]
    assert report.rows["lifecycle_events.data"] == 1
    for kept in (GONE_9_DAYS, REINSTALLED, INSTALLED):
        [(_, _, data)] = await events(engine, kept)
        assert data == PAYLOAD | {"account_id": int(kept)}, kept

    # Nothing left to do for it: the next pass does not visit it again.
    assert (await purge_uninstalled(engine, retention_days=10, now=NOW)).accounts == []
    # Two days later the 9-day account passes the deadline too.
    later = await purge_uninstalled(engine, retention_days=10, now=NOW + timedelta(days=2))
    assert later.accounts == [GONE_9_DAYS]
    assert await counts(engine, GONE_9_DAYS) == PURGED
    assert [data for *_, data in await events(engine, GONE_9_DAYS)] == [{}]
    assert await counts(engine, INSTALLED) == FULL


async def test_the_setting_defaults_to_ten_days(tmp_path: Path) -> None:
    assert make_settings(tmp_path).uninstall_retention_days == 10
    assert make_settings(tmp_path, uninstall_retention_days=3).uninstall_retention_days == 3


async def test_the_delivery_worker_runs_the_purge(tmp_path: Path) -> None:
    """Wired in: with a retention of 0 days, the worker's first pass purges the account."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from server.app import create_app
    from server.appkeys import ENGINE

    settings = make_settings(tmp_path, uninstall_retention_days=0)
    app = create_app(settings)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        engine = client.app[ENGINE]
        await seed(engine, GONE_11_DAYS, uninstalled_days_ago=11)
        await seed(engine, INSTALLED, uninstalled_days_ago=None)
        worker = client.app[SERVICES].worker
        worker._next_purge = 0.0  # the first pass may have run before the seed
        worker.wake()
        deadline = asyncio.get_running_loop().time() + 10

        async def installer_cleared() -> bool:
            # The purge's last step for an account: every table and event before it is done.
            gone = await SqlInstallations(engine).get(GONE_11_DAYS)
            return gone is not None and gone.installer_email is None

        while not await installer_cleared():
            assert asyncio.get_running_loop().time() < deadline, "the worker never purged"
            await asyncio.sleep(0.05)
        assert await counts(engine, GONE_11_DAYS) == PURGED
        assert [data for *_, data in await events(engine, GONE_11_DAYS)] == [{}]
        assert await counts(engine, INSTALLED) == FULL
