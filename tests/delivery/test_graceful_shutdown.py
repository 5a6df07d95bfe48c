"""SIGTERM and the delivery worker (docs/scaling-out.md, "Graceful shutdown"), on a real
`python -m server serve`: the worker stops claiming as soon as shutdown begins, even while
requests in flight keep the process up, and the batch it has in flight still finishes."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import update

from server.clock import utcnow
from server.storage.db import create_engine
from server.storage.tables import notifications
from tests.conftest import FakeMondayServer
from tests.delivery.procs import ServerProcess, all_rows, seed
from tests.notifications.helpers import MEMBER, notification, sent_texts

# Upper bound for waiting on a condition; the condition, not this, ends the wait.
WITHIN = 30.0


async def until(condition: Callable[[], bool], what: str, server: ServerProcess) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN
    while not condition():
        assert loop.time() < deadline, f"{what}: not within {WITHIN} s\n{server.log_tail()}"
        await asyncio.sleep(0.05)


async def send(server: ServerProcess, token: str, **body: Any) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.post(
            server.url + "/notifications",
            json=notification(**body),
            headers={"Authorization": token},
        ) as response:
            assert response.status == 200, await response.text()
            data: dict[str, Any] = (await response.json())["data"]
            return data


async def make_due(database_url: str, row_id: int) -> None:
    """A `scheduled` row's time comes (as it would at its `send_at`)."""
    past = utcnow() - timedelta(seconds=1)
    engine = create_engine(database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                update(notifications)
                .where(notifications.c.id == row_id)
                .values(send_at=past, next_attempt_at=past)
            )
    finally:
        await engine.dispose()


async def row(database_url: str, row_id: int) -> dict[str, Any]:
    return next(r for r in await all_rows(database_url) if r["id"] == row_id)


async def test_the_worker_stops_claiming_while_a_request_in_flight_keeps_the_process_up(
    tmp_path: Path, empty_database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    url, fake = empty_database_url, fake_monday.fake
    await seed(url, fake_monday)
    # A busy poll, and monday calls that may take as long as they like: the hung send below
    # keeps the process in its shutdown until the test lets go of it.
    server = ServerProcess(
        tmp_path / "run",
        url,
        fake_monday.api_url,
        DELIVERY_POLL_SECONDS="0.1",
        MONDAY_TIMEOUT_SECONDS="600",
    )
    await server.start()
    token = mint(user=MEMBER)
    holding: asyncio.Task[dict[str, Any]] | None = None
    try:
        later = await send(
            server,
            token,
            message="due after SIGTERM",
            send_at=(utcnow() + timedelta(hours=1)).isoformat(),
        )
        assert later["delivery_status"] == "scheduled", later
        fake.fail_next("timeout", seconds=600)  # monday does not answer the next call
        holding = asyncio.create_task(send(server, token, message="in flight at SIGTERM"))
        await until(lambda: fake.in_flight == 1, "the inline send reached monday", server)

        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # The worker is done although a request is still in flight (aiohttp waits for it).
        await until(
            lambda: "delivery worker stopped" in server.log_path.read_text(),
            "the worker stopped while a request was in flight",
            server,
        )
        assert fake.in_flight == 1
        await make_due(url, later["id"])  # due now, while the process is still up

        for hang in list(fake.background):
            hang.cancel()  # monday drops the hung call; the send answers, the process exits
        returncode = await asyncio.wait_for(server.process.wait(), WITHIN)
        assert returncode == 0, server.log_tail()
        await asyncio.wait_for(holding, WITHIN)
    finally:
        await server.kill()
        if holding is not None:
            holding.cancel()
            await asyncio.gather(holding, return_exceptions=True)

    after = await row(url, later["id"])
    assert after["delivery_status"] == "scheduled", after  # released and claimed by nobody
    assert after["attempts"] == 0, after
    assert "due after SIGTERM" not in sent_texts(fake.requests_to("/v2"))


async def test_the_batch_in_flight_at_sigterm_finishes_before_the_process_exits(
    tmp_path: Path, empty_database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    url, fake = empty_database_url, fake_monday.fake
    await seed(url, fake_monday)
    server = ServerProcess(tmp_path / "run", url, fake_monday.api_url)
    await server.start()
    try:
        scheduled = await send(
            server,
            mint(user=MEMBER),
            message="sent by the worker",
            send_at=(utcnow() + timedelta(hours=1)).isoformat(),
        )
        # monday takes 3 s to answer the worker's call, then runs it: SIGTERM comes meanwhile.
        fake.fail_next("timeout", seconds=3.0, executes=True)
        await make_due(url, scheduled["id"])
        await until(lambda: fake.in_flight == 1, "the worker's call reached monday", server)

        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        returncode = await asyncio.wait_for(server.process.wait(), WITHIN)
        assert returncode == 0, server.log_tail()
    finally:
        await server.kill()

    after = await row(url, scheduled["id"])
    assert after["delivery_status"] == "sent", after  # its outcome was recorded
    assert [n.text for n in fake.bell(MEMBER)] == ["sent by the worker"]
