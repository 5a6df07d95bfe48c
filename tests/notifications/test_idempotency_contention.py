"""Issue 10: many concurrent duplicates over a few `Idempotency-Key`s (contract §6).

18 requests over 3 keys (6 per key), all at once, round after round, on SQLite and PostgreSQL.
Every request answers (no 5xx, no hang), each key reaches monday exactly once, and every
duplicate answers exactly what the first request answered. On SQLite this used to end in
"database is locked" and a 30 s connection-pool timeout (see docs/storage.md).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.notifications.helpers import MEMBER, connect, install, notification, sent_texts

KEYS_PER_ROUND = 3
REQUESTS_PER_KEY = 6
ROUNDS = 10  # every CI run, on each engine
STRESS_ROUNDS = 50  # `make stress`
# A generous bound on one round (18 requests); a hang fails the test instead of the CI job.
ROUND_BOUND_SECONDS = 60.0


async def one_round(client: TestClient[Any, Any], fake: Any, token: str, round_no: int) -> None:
    keys = [f"round-{round_no}-key-{k}" for k in range(KEYS_PER_ROUND)]
    sent_before = len(fake.requests_to("/v2"))
    bell_before = len(fake.bell(MEMBER))

    async def post(key: str) -> tuple[str, int, Any]:
        response = await client.post(
            "/notifications",
            json=notification(message=key),
            headers={"Authorization": token, "Idempotency-Key": key},
        )
        return key, response.status, await response.json()

    answers = await asyncio.wait_for(
        asyncio.gather(*(post(key) for key in keys * REQUESTS_PER_KEY)),
        timeout=ROUND_BOUND_SECONDS,
    )

    failed = [(key, status, body) for key, status, body in answers if status != 200]
    assert not failed, (round_no, failed[:3])
    bodies: dict[str, set[str]] = {key: set() for key in keys}
    for key, _, body in answers:
        assert body["data"]["message"] == key
        bodies[key].add(json.dumps(body, sort_keys=True))
    # Every duplicate's answer is the first answer, byte for byte once canonicalised.
    assert {key: len(found) for key, found in bodies.items()} == dict.fromkeys(keys, 1), round_no

    # What monday received over HTTP: one create_notification per key, no more (keys sent
    # together may share a document: storage/notifications/coalesce.py).
    received = fake.requests_to("/v2")[sent_before:]
    assert sorted(sent_texts(received)) == sorted(keys), round_no
    delivered = sorted(n.text for n in fake.bell(MEMBER)[bell_before:])
    assert delivered == sorted(keys), round_no


async def run_rounds(client: TestClient[Any, Any], fake: Any, mint: Any, rounds: int) -> None:
    await install(client)
    await connect(client, fake, user=MEMBER, kind="oauth")
    token = mint(user=MEMBER, lifetime=3600)
    for round_no in range(rounds):
        await one_round(client, fake, token, round_no)


async def test_concurrent_duplicates_over_three_keys_send_once_per_key(
    engine_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    await run_rounds(engine_client, fake_monday.fake, mint, ROUNDS)


@pytest.mark.stress
async def test_fifty_rounds_of_concurrent_duplicates(
    engine_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    await run_rounds(engine_client, fake_monday.fake, mint, STRESS_ROUNDS)
