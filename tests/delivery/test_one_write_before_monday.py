"""Issue 10's hot path on PostgreSQL: a send writes once before monday is called.

With several instances on one PostgreSQL, the user's send-rate bucket and the account's monday
budget are rows of `delivery_limits` (contract §11). Their takes are made inside the send's
insert transaction (the rows, their audit entries, the Idempotency-Key, the take of the
bucket and the budget), not in transactions of their own before it. A writer group of
inserts also reads its account's facts and takes its row ids once.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.engine import Connection

from server.appkeys import ENGINE, SERVICES
from server.storage.db import pooled_writer, write
from server.storage.tables import delivery_limits
from tests.conditions import until, until_true
from tests.conftest import ACCOUNT, FakeMondayServer
from tests.delivery.helpers import post, server_on
from tests.notifications.helpers import MEMBER, notification
from tests.pg import fresh_pg_database

pytestmark = pytest.mark.postgres
# What makes a transaction one of the send's writes (the worker's polls and the outcome's
# write are not: they touch neither of these before monday is called).
SEND_WRITES = ("delivery_limits", "INSERT INTO notifications")


class WriteLog:
    """The committed transactions that wrote a row of the send, per connection."""

    def __init__(self) -> None:
        self.open: dict[int, list[str]] = {}
        self.committed: list[list[str]] = []

    def statement(self, conn: Connection, _c: Any, statement: str, *_: Any) -> None:
        self.open.setdefault(id(conn), []).append(statement)

    def commit(self, conn: Connection) -> None:
        statements = self.open.pop(id(conn), [])
        if any(mark in text for text in statements for mark in SEND_WRITES):
            self.committed.append(statements)

    def rollback(self, conn: Connection) -> None:
        self.open.pop(id(conn), None)


def recording(sync_engine: Any, log: WriteLog) -> list[tuple[str, Any]]:
    listeners = [
        ("before_cursor_execute", log.statement),
        ("commit", log.commit),
        ("rollback", log.rollback),
    ]
    for name, listener in listeners:
        event.listen(sync_engine, name, listener)
    return listeners


async def waiting_for_the_lock(holder: Any, lanes: int) -> bool:
    """`lanes` transactions wait for the test's advisory lock (each holds a writer lane)."""
    query = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    count = int((await holder.execute(query)).scalar_one())
    await holder.commit()
    return count >= lanes


async def budget_known(client: Any) -> bool:
    async with client.app[ENGINE].connect() as connection:
        query = select(delivery_limits.c.minute_left).where(
            delivery_limits.c.scope == f"account:{ACCOUNT}"
        )
        return (await connection.execute(query)).scalar_one_or_none() is not None


async def ready(client: Any, mint: Any) -> None:
    """A first send creates the rows of `delivery_limits` and learns the budget (its
    answer's `learn` is written in the background: wait for it)."""
    await post(client, mint, "first")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while not await budget_known(client):
        assert loop.time() < deadline, "the first answer's budget was never stored"
        await asyncio.sleep(0.05)


async def test_a_send_commits_one_write_transaction_before_monday_is_called(
    pg_url: str, tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    async with fresh_pg_database(pg_url) as url:
        settings = {"database_url": url, "send_rate_per_minute": 600}
        async with server_on(tmp_path, fake_monday, **settings) as client:
            await ready(client, mint)

            log = WriteLog()
            before_monday: list[int] = []
            fake = fake_monday.fake
            deliver = fake.deliver

            def observed(**kwargs: Any) -> Any:
                before_monday.append(len(log.committed))
                return deliver(**kwargs)

            sync_engine = client.app[ENGINE].sync_engine
            listeners = recording(sync_engine, log)
            fake.deliver = observed  # type: ignore[method-assign]
            try:
                row = await post(client, mint, "second")
            finally:
                fake.deliver = deliver  # type: ignore[method-assign]
                for name, listener in listeners:
                    event.remove(sync_engine, name, listener)
            assert row["delivery_status"] == "sent"
            assert before_monday == [1], log.committed
            (insert,) = log.committed[:1]
            # The one transaction: the rows, the bucket's take and the budget's take.
            assert any(text.startswith("INSERT INTO notifications") for text in insert)
            locks = [text for text in insert if text.startswith("INSERT INTO delivery_limits")]
            assert len(locks) == 2, insert  # the user's bucket, then the account's budget


async def test_sends_committed_together_spend_the_budget_once_in_their_transaction(
    pg_url: str, tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    """Eight sends whose inserts one writer group commits (both of `PooledWriter`'s lanes are
    held until all eight are queued): one transaction writes their rows, takes the user's
    bucket once for all of them and the account's budget once for the one monday request
    they share, and the attempt takes nothing more before it calls monday."""
    async with fresh_pg_database(pg_url) as url:
        settings = {"database_url": url, "send_rate_per_minute": 600}
        async with server_on(tmp_path, fake_monday, **settings) as client:
            await ready(client, mint)
            engine = client.app[ENGINE]
            writer = pooled_writer(engine)
            shared = client.app[SERVICES].send.dispatcher.governor.shared
            own_takes: list[str] = []
            take = shared.take

            async def counted(scope: str, now: Any) -> Any:
                own_takes.append(scope)
                return await take(scope, now)

            calls_before = len(fake_monday.fake.requests_to("/v2"))
            log = WriteLog()
            listeners = recording(engine.sync_engine, log)
            shared.take = counted
            try:
                async with engine.connect() as holder:
                    await holder.execute(text("SELECT pg_advisory_lock(4242)"))
                    await holder.commit()
                    blockers = []
                    for lane in (1, 2):  # one held job per lane, each taken alone
                        blocker = write(
                            engine,
                            lambda c: c.execute(text("SELECT pg_advisory_xact_lock(4242)")),
                        )
                        blockers.append(asyncio.ensure_future(blocker))
                        await until_true(
                            lambda lane=lane: waiting_for_the_lock(holder, lane),
                            "a lane never took its held job",
                        )
                    headers = {"Authorization": mint(user=MEMBER)}
                    sends = [
                        asyncio.ensure_future(
                            client.post(
                                "/notifications",
                                json=notification(message=f"g{i}"),
                                headers=headers,
                            )
                        )
                        for i in range(8)
                    ]
                    await until(lambda: writer.queued == 8, "the sends never queued")
                    await holder.execute(text("SELECT pg_advisory_unlock(4242)"))
                    await holder.commit()
                await asyncio.gather(*blockers)
                answers = [await response.json() for response in await asyncio.gather(*sends)]
            finally:
                shared.take = take
                for name, listener in listeners:
                    event.remove(engine.sync_engine, name, listener)
            assert [a["data"]["delivery_status"] for a in answers] == ["sent"] * 8
            assert own_takes == []  # every attempt used the take its insert made
            calls = len(fake_monday.fake.requests_to("/v2")) - calls_before
            inserts = [t for t in log.committed if any("INSERT INTO notifications" in s for s in t)]
            assert len(inserts) == 1, inserts  # one group, one transaction
            (group,) = inserts
            locks = [s for s in group if s.startswith("INSERT INTO delivery_limits")]
            writes = [s for s in group if s.startswith("UPDATE delivery_limits")]
            # The user's bucket and the account's budget: each row locked and written once.
            assert (len(locks), len(writes)) == (2, 2), group
            assert calls == 1  # the eight rows went out in one shared monday request
            # The group reads its account's facts once and takes its eight ids in one
            # statement (storage/notifications/insert.py).
            facts = [s for s in group if s.startswith("SELECT installations.revision")]
            assert len(facts) == 1, group
            assert len([s for s in group if "nextval" in s]) == 1, group
            ids = [a["data"]["id"] for a in answers]
            assert len(set(ids)) == 8
