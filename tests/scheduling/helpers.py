"""Scheduling test helpers: the whole server on a chosen database and the fake monday, with a
clock the test moves (server/clock.py), so nothing waits for real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.appkeys import ENGINE, SERVICES
from tests.conftest import FakeMondayServer, make_settings
from tests.notifications.helpers import MEMBER, connect, fetch_row, install

Client = TestClient[web.Request, web.Application]
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class MovingClock:
    """`clock.frozen(MovingClock())`: a time that only moves when the test says so."""

    def __init__(self, start: datetime = START) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def iso(self, **delta: float) -> str:
        return (self.now + timedelta(**delta)).isoformat()


@asynccontextmanager
async def server(
    tmp_path: Path, database_url: str, fake: FakeMondayServer, *, setup: bool = True
) -> AsyncIterator[Client]:
    settings = make_settings(tmp_path, database_url=database_url, monday_api_url=fake.api_url)
    async with TestClient(TestServer(create_app(settings), host="127.0.0.1")) as client:
        if setup:
            await install(client)
            await connect(client, fake.fake, user=MEMBER, kind="oauth")
        yield client


async def row(client: Client, row_id: int) -> dict[str, Any]:
    found = await fetch_row(client.app[ENGINE], row_id)
    assert found is not None
    return found


async def wait_for(client: Client, row_id: int, *statuses: str, within: float = 15.0) -> Any:
    """The row once its delivery status is one of `statuses` (fails after `within` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await row(client, row_id)
        if found["delivery_status"] in statuses:
            return found
        assert loop.time() < deadline, f"row {row_id} stayed {found['delivery_status']}"
        await asyncio.sleep(0.05)


async def wait_row(client: Client, row_id: int, check: Any, within: float = 15.0) -> Any:
    """The row once `check(row)` holds (fails after `within` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await row(client, row_id)
        if check(found):
            return found
        assert loop.time() < deadline, f"row {row_id}: {found}"
        await asyncio.sleep(0.05)


async def worker_pass(client: Client) -> None:
    """One full pass of this server's delivery worker (release, claim, deliver), now."""
    await client.app[SERVICES].worker.run_once()
