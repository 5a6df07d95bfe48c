"""A server killed with SIGKILL mid-run and restarted: every accepted row ends sent, failed or
unknown; none is lost or stuck; monday never gets a notification twice."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import FakeMondayServer
from tests.delivery.procs import (
    TERMINAL,
    ServerProcess,
    all_rows,
    post_batches,
    seed,
    wait_until_settled,
)
from tests.notifications.helpers import MEMBER, notification

REQUESTS = 40
ROWS_PER_REQUEST = 10


async def test_sigkill_mid_run_loses_nothing_and_sends_nothing_twice(
    tmp_path: Path, fake_monday: FakeMondayServer, mint: Any
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'killed.db'}"
    await seed(database_url, fake_monday)
    fake = fake_monday.fake
    # Every answer takes 0.3 s (and monday executes it even if the caller has gone), so
    # requests are in flight, and rows are waiting for a slot, when the server dies.
    fake.fail_next("timeout", count=100_000, seconds=0.3, executes=True)
    env = {
        "DELIVERY_LEASE_SECONDS": "5",
        "DELIVERY_POLL_SECONDS": "0.2",
        "DELIVERY_CONCURRENCY": "4",
        "MONDAY_TIMEOUT_SECONDS": "3",
    }
    server = ServerProcess(tmp_path / "run", database_url, fake_monday.api_url, **env)
    await server.start()
    batches = [
        (
            server.url,
            [
                notification(message=f"kill-test {r}-{i}", recipient=MEMBER)
                for i in range(ROWS_PER_REQUEST)
            ],
        )
        for r in range(REQUESTS)
    ]
    sending = asyncio.create_task(post_batches(mint(user=MEMBER), batches, parallel=20))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(fake.requests_to("/v2")) < 5:  # mid-run: monday is busy answering
            assert loop.time() < deadline, server.log_tail()
            await asyncio.sleep(0.02)
        await server.kill()
        answers = await sending
    finally:
        await server.kill()

    in_flight_at_kill = Counter(row["delivery_status"] for row in await all_rows(database_url))
    accepted_ids = {row["id"] for answer in answers if answer for row in answer}

    restarted = ServerProcess(tmp_path / "run", database_url, fake_monday.api_url, **env)
    await restarted.start()
    try:
        final = await wait_until_settled(database_url, within=90)
    finally:
        await restarted.stop()

    rows = await all_rows(database_url)
    assert rows, "nothing was accepted before the kill"
    assert set(final) <= set(TERMINAL), final
    assert accepted_ids <= {row["id"] for row in rows}  # every answered row is in the ledger
    # The kill interrupted work: rows were still waiting or in flight.
    assert any(in_flight_at_kill.get(s) for s in ("queued", "sending", "retry_scheduled"))

    texts = [n.text for n in fake.bell(MEMBER)]
    assert len(texts) == len(set(texts)), "monday got a notification twice"
    delivered = Counter(texts)
    for row in rows:
        if row["delivery_status"] == "sent":
            assert delivered[row["message"]] == 1, row
    # Rows that were claimed but not yet sent at the kill were taken over and sent.
    assert sum(1 for row in rows if row["delivery_status"] == "sent") > in_flight_at_kill["sent"]
    print(f"at kill: {dict(in_flight_at_kill)}; after restart: {final}")
