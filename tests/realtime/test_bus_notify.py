"""PostgreSQL: an instance sends its changes to the others on its LISTEN connection (one
statement, no pool checkout, no transaction of SQLAlchemy's), and through the pool while
that connection is being replaced (server/realtime/bus.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from server.notifications.changes import RowChange
from server.realtime.bus import ChangeBus, asyncpg_dsn
from server.storage.db import create_engine
from server.storage.migrate import upgrade
from tests.conditions import until
from tests.pg import fresh_pg_database

pytestmark = pytest.mark.postgres


class Instance:
    """One instance's bus and what reached it from the others."""

    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_engine(url)
        self.received: list[RowChange] = []
        self.bus = ChangeBus(self.engine, self._deliver, asyncpg_dsn(url))
        self.notified_through_pool: list[str] = []
        event.listen(self.engine.sync_engine, "before_cursor_execute", self._statement)

    def _deliver(self, change: RowChange) -> None:
        self.received.append(change)

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "pg_notify" in statement:
            self.notified_through_pool.append(statement)

    async def close(self) -> None:
        await self.bus.stop()
        await self.engine.dispose()


@pytest.fixture
async def instances(pg_url: str) -> AsyncIterator[tuple[Instance, Instance]]:
    async with fresh_pg_database(pg_url) as url:
        await upgrade(url)
        one, two = Instance(url), Instance(url)
        await one.bus.start()
        await two.bus.start()
        try:
            yield one, two
        finally:
            await one.close()
            await two.close()


def change(row_id: int) -> RowChange:
    return RowChange("update", (row_id,), "1001")


async def test_changes_reach_the_other_instance_over_the_listen_connection(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    for row_id in (1, 2, 3):
        one.bus.publish(change(row_id))
    await until(lambda: len(two.received) == 3, "the other instance never got the changes")
    assert sorted(c.ids[0] for c in two.received) == [1, 2, 3]
    assert one.received == [change(1), change(2), change(3)]  # delivered here too, once
    assert one.notified_through_pool == []


async def test_a_change_sent_while_the_listen_connection_is_lost_still_arrives(
    instances: tuple[Instance, Instance],
) -> None:
    one, two = instances
    listener = one.bus._listener  # the test ends this connection the way a server restart would
    async with one.engine.connect() as admin:
        await admin.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": listener.get_server_pid()}
        )
        await admin.commit()
    await until(lambda: listener.is_closed(), "the LISTEN connection was never closed")
    one.bus.publish(change(7))
    await until(lambda: [c.ids for c in two.received] == [(7,)], "the change never arrived")


async def test_a_large_delete_reaches_the_other_instance_whole(
    instances: tuple[Instance, Instance],
) -> None:
    """1,000 rows deleted, each with its owners: more than one payload of 8000 bytes. Sent
    in one batch with a small change, which must not be lost with it."""
    one, two = instances
    ids = tuple(range(1, 1001))
    gone = RowChange("delete", ids, "1001", tuple((i, "9" * 32, "8" * 32) for i in ids))
    one.bus.publish(gone)
    one.bus.publish(change(5000))
    await until(
        lambda: sum(len(c.ids) for c in two.received) == 1001,
        "the other instance never got every change",
    )
    deletes = [c for c in two.received if c.event == "delete"]
    assert tuple(i for c in deletes for i in c.ids) == ids
    assert tuple(o for c in deletes for o in c.owners) == gone.owners
    assert [c for c in two.received if c.event == "update"] == [change(5000)]


async def test_the_listen_connection_reads_the_url_as_the_engine_does(pg_url: str) -> None:
    """SQLAlchemy's own option (`prepared_statement_cache_size`, common behind pgbouncer) is
    not sent to PostgreSQL, which refused it as a setting and stopped `serve` with a
    traceback; a `?host=` wins over the URL's host, as it does for the engine (the LISTEN
    connection went to the URL's host)."""
    async with fresh_pg_database(pg_url) as url:
        await upgrade(url)
        parts = make_url(url)
        odd = parts.set(host="10.255.255.1").update_query_dict(
            {"host": parts.host or "", "prepared_statement_cache_size": "0"}
        )
        listening = Instance(odd.render_as_string(hide_password=False))
        other = Instance(url)
        await listening.bus.start()
        await other.bus.start()
        try:
            await until(lambda: listening.bus._listener is not None, "never listened")
            other.bus.publish(change(9))
            await until(lambda: [c.ids for c in listening.received] == [(9,)], "not received")
        finally:
            await listening.close()
            await other.close()
