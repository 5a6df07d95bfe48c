"""The fake monday's Idempotency-Key semantics, over real HTTP (monday-platform.md,
"Added 2026-11-28"): replay without a second execution, 409 while in flight, and the
`execute-then-*` faults whose only recovery is a retry with the same key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.conftest import INSTALLER
from tests.conftest import FakeMondayServer as Server

KEY = f"dev-personal-key-user-{INSTALLER}"
MUTATION = (
    "mutation ($u: ID!, $t: ID!, $x: String!, $k: NotificationTargetType!) "
    "{ create_notification(user_id: $u, target_id: $t, text: $x, target_type: $k) { id text } }"
)


def body(text: str) -> dict[str, Any]:
    return {"query": MUTATION, "variables": {"u": "12", "t": "5", "x": text, "k": "Project"}}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def send(
    http: aiohttp.ClientSession, server: Server, payload: Any, key: str | None, within: float = 10
) -> tuple[int, Any, Any]:
    headers = {"Authorization": KEY, "API-Version": "2026-07"}
    if key is not None:
        headers["Idempotency-Key"] = key
    async with http.post(
        server.api_url,
        json=payload,
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=within),
    ) as response:
        return response.status, await response.json(content_type=None), response.headers


async def test_same_key_replays_the_first_answer_without_executing_again(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    first = await send(http, fake_monday, body("once"), "k-1")
    second = await send(http, fake_monday, body("once"), "k-1")
    assert first[0] == second[0] == 200
    assert second[1]["data"] == first[1]["data"]
    assert second[2].get("Idempotency-Replayed") == "true"
    assert "Idempotency-Replayed" not in first[2]
    assert [n.text for n in fake_monday.fake.bell("12")] == ["once"]


async def test_without_a_key_or_with_another_key_it_executes_again(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    await send(http, fake_monday, body("twice"), None)
    await send(http, fake_monday, body("twice"), None)
    await send(http, fake_monday, body("twice"), "k-a")
    await send(http, fake_monday, body("twice"), "k-b")
    assert len(fake_monday.fake.bell("12")) == 4


async def test_same_key_with_another_body_is_refused(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    await send(http, fake_monday, body("first"), "k-1")
    status, answer, _ = await send(http, fake_monday, body("different"), "k-1")
    assert status == 422
    assert answer["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert [n.text for n in fake_monday.fake.bell("12")] == ["first"]


async def test_a_refusal_that_ran_nothing_is_not_cached(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    fake_monday.fake.fail_next("rate_limit", retry_in_seconds=1)
    refused = await send(http, fake_monday, body("after 429"), "k-1")
    assert refused[0] == 429
    sent = await send(http, fake_monday, body("after 429"), "k-1")
    assert sent[0] == 200 and "Idempotency-Replayed" not in sent[2]
    assert [n.text for n in fake_monday.fake.bell("12")] == ["after 429"]


async def test_duplicate_while_the_first_is_in_flight_is_409_with_retry_after(
    http: aiohttp.ClientSession, fake_monday: Server
) -> None:
    fake = fake_monday.fake
    fake.fail_next("timeout", seconds=1.0, executes=True)
    first = asyncio.create_task(send(http, fake_monday, body("slow"), "k-1"))
    deadline = asyncio.get_running_loop().time() + 10
    while not fake.requests_to("/v2"):  # the first is being served
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    status, answer, headers = await send(http, fake_monday, body("slow"), "k-1")
    assert status == 409
    assert int(headers["Retry-After"]) >= 1
    assert answer["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_REQUEST_IN_FLIGHT"
    assert (await first)[0] == 200
    replayed = await send(http, fake_monday, body("slow"), "k-1")
    assert replayed[2].get("Idempotency-Replayed") == "true"
    assert [n.text for n in fake.bell("12")] == ["slow"]


@pytest.mark.parametrize(
    "kind", ["execute-then-hang", "execute-then-500", "execute-then-connection-reset"]
)
async def test_execute_then_no_usable_answer_then_the_retry_replays_it(
    http: aiohttp.ClientSession, fake_monday: Server, kind: str
) -> None:
    fake = fake_monday.fake
    fake.fail_next(kind)
    seen: object
    try:
        seen, _, _ = await send(http, fake_monday, body(kind), "k-1", within=0.5)
    except TimeoutError:
        seen = "timeout"
    except aiohttp.ClientError:
        seen = "connection lost"
    expected = {
        "execute-then-hang": "timeout",
        "execute-then-500": 500,
        "execute-then-connection-reset": "connection lost",
    }
    assert seen == expected[kind]
    assert [n.text for n in fake.bell("12")] == [kind]  # executed, whatever we saw

    status, answer, headers = await send(http, fake_monday, body(kind), "k-1")
    assert status == 200
    assert headers.get("Idempotency-Replayed") == "true"
    assert answer["data"]["create_notification"]["text"] == kind
    assert len(fake.bell("12")) == 1
