"""A server killed with SIGKILL with 50+ rows in flight and restarted: every row ends `sent`
and monday ran each exactly once (contract §11: rows cut off mid-send are `unknown`, then
asked again with the same request and Idempotency-Key), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tests.conftest import FakeMondayServer
from tests.delivery.procs import (
    ServerProcess,
    all_rows,
    post_batches,
    seed,
    statuses,
    wait_until_settled,
)
from tests.notifications.helpers import MEMBER, notification

REQUESTS = 40
ROWS_PER_REQUEST = 10


async def test_sigkill_mid_run_ends_with_every_row_sent_once(
    tmp_path: Path, empty_database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    database_url = empty_database_url
    await seed(database_url, fake_monday)
    fake = fake_monday.fake
    # Every answer takes 1 s (and monday executes it even if the caller has gone), so
    # requests are in flight, and rows are waiting for a slot, when the server dies.
    fake.fail_next("timeout", count=100_000, seconds=1.0, executes=True)
    env = {
        "DELIVERY_LEASE_SECONDS": "5",
        "DELIVERY_POLL_SECONDS": "0.2",
        "DELIVERY_CONCURRENCY": "8",
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
    loop = asyncio.get_running_loop()
    sending = asyncio.create_task(post_batches(mint(user=MEMBER), batches, parallel=20))
    try:
        deadline = loop.time() + 30
        while (await statuses(database_url)).get("sending", 0) < 50:  # 50+ rows in flight
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
        await wait_until_settled(database_url, within=90)
        # Rows cut off mid-send became `unknown`, due for a retry with their key: wait for
        # those too (a row past its retries would keep this from passing).
        final = await statuses(database_url)
        deadline = loop.time() + 60
        while set(final) != {"sent"}:
            assert loop.time() < deadline, f"not all sent: {final}\n{restarted.log_tail()}"
            await asyncio.sleep(0.25)
            final = await statuses(database_url)
    finally:
        await restarted.stop()

    rows = await all_rows(database_url)
    assert rows, "nothing was accepted before the kill"
    assert in_flight_at_kill["sending"] >= 50, in_flight_at_kill
    assert final == {"sent": len(rows)}, final  # every row sent, none unknown or failed
    assert accepted_ids <= {row["id"] for row in rows}  # every answered row is in the ledger

    texts = [n.text for n in fake.bell(MEMBER)]
    delivered = Counter(texts)
    assert all(count == 1 for count in delivered.values()), "monday ran a notification twice"
    assert sorted(texts) == sorted(row["message"] for row in rows)  # each row ran once
    print(f"at kill: {dict(in_flight_at_kill)}; after restart: {final}")
