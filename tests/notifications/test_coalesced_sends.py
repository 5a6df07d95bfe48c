"""Concurrent sends whose inserts are committed together go to monday as one request.

The writer is held while the sends line up (tests/writer_hold.py), so their inserts are
committed in one group (storage/writer.py) and deterministically coalesced (storage/notifications/
coalesce.py); the deliverer then sends the request once for all of them (delivery/
shared.py). What each caller sees must not change: its own row, `sent`, with its own
monday id; monday receives each notification exactly once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient

from server.appkeys import ENGINE
from tests.conditions import until
from tests.conftest import INSTALLER
from tests.delivery.helpers import wait_for
from tests.notifications.helpers import (
    MEMBER,
    connect,
    fetch_row,
    install,
    notification,
    sent_texts,
)
from tests.writer_hold import writer_held

Send = Callable[[int], Awaitable[tuple[int, Any]]]


async def lined_up(client: TestClient[Any, Any], count: int, send: Send) -> list[tuple[int, Any]]:
    """Run `send(0..count-1)` concurrently, their inserts committed in one writer group."""
    async with writer_held(client.app[ENGINE]) as writer:
        tasks = [asyncio.ensure_future(send(i)) for i in range(count)]
        await until(lambda: writer.queued >= count, "the sends never reached the writer")
        assert not any(task.done() for task in tasks), [t.result() for t in tasks if t.done()]
    return list(await asyncio.gather(*tasks))


def poster(client: TestClient[Any, Any], token: str, **extra: Any) -> Send:
    async def send(i: int) -> tuple[int, Any]:
        response = await client.post(
            "/notifications",
            json=notification(message=f"coalesced {i}", **extra),
            headers={"Authorization": token},
        )
        return response.status, await response.json()

    return send


async def test_concurrent_sends_share_one_monday_request(
    monday_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    count = 5
    answers = await lined_up(monday_client, count, poster(monday_client, mint(user=MEMBER)))

    assert [status for status, _ in answers] == [200] * count, answers
    rows = [body["data"] for _, body in answers]
    # Each caller gets its own row, sent, with its own message and monday id.
    assert [row["message"] for row in rows] == [f"coalesced {i}" for i in range(count)]
    assert {row["delivery_status"] for row in rows} == {"sent"}
    # Monday received every notification exactly once, in one request.
    calls = fake_monday.fake.requests_to("/v2")
    assert sorted(sent_texts(calls)) == sorted(f"coalesced {i}" for i in range(count))
    assert len(calls) == 1, [len(sent_texts([call])) for call in calls]
    assert len(fake_monday.fake.bell(MEMBER)) == count
    # The ledger: rows sent in one request share its key, which the request carried.
    stored = [await fetch_row(monday_client.app[ENGINE], row["id"]) for row in rows]
    assert all(row is not None and row["attempts"] == 1 for row in stored)
    keys = {call.headers["idempotency-key"] for call in calls}
    by_key: dict[str, list[int]] = {}
    for row in stored:
        assert row is not None and row["delivery_request_key"] in keys
        by_key.setdefault(row["delivery_request_key"], []).append(row["id"])
        assert row["lease_owner"] is None  # the outcome released every row's lease
    assert [len(ids) for ids in by_key.values()] == [count]
    for row in stored:
        assert row is not None
        assert list(row["delivery_request_rows"]) == sorted(by_key[row["delivery_request_key"]])


async def test_a_refused_notification_fails_only_its_own_row(
    monday_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    """One alias of the coalesced document is refused by monday (an unknown recipient):
    that send answers `failed`, the others `sent`."""
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    token = mint(user=MEMBER)
    good = poster(monday_client, token)
    bad = poster(monday_client, token, recipient="999999")

    async def send(i: int) -> tuple[int, Any]:
        return await (bad if i == 2 else good)(i)

    answers = await lined_up(monday_client, 4, send)
    statuses = [body["data"]["delivery_status"] for _, body in answers]
    assert statuses == ["sent", "sent", "failed", "sent"], answers
    assert answers[2][1]["data"]["last_error"]["code"]
    assert len(fake_monday.fake.bell(MEMBER)) == 3


async def test_sends_with_different_credentials_are_not_joined(
    monday_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    """Each credential's rows go in a request of its own: the member's and the installer's
    app tokens are never mixed in one document."""
    await install(monday_client)
    member_token = await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    installer_token = await connect(monday_client, fake_monday.fake, user=INSTALLER, kind="oauth")
    by_member = poster(monday_client, mint(user=MEMBER))
    by_installer = poster(monday_client, mint(user=INSTALLER))

    async def send(i: int) -> tuple[int, Any]:
        return await (by_member if i % 2 else by_installer)(i)

    answers = await lined_up(monday_client, 6, send)
    assert [body["data"]["delivery_status"] for _, body in answers] == ["sent"] * 6, answers
    calls = fake_monday.fake.requests_to("/v2")
    for call in calls:
        expected = member_token if call.authorization == member_token else installer_token
        assert call.authorization == expected
        texts = sent_texts([call])
        owners = {int(text.split()[-1]) % 2 for text in texts}
        assert owners == ({1} if expected == member_token else {0}), texts
    assert sorted(sent_texts(calls)) == sorted(f"coalesced {i}" for i in range(6))


async def test_an_unknown_coalesced_request_is_retried_as_the_same_request(
    monday_client: TestClient[Any, Any], fake_monday: Any, mint: Any
) -> None:
    """Contract §11: monday ran the shared request but its answer was lost (a 500 after
    executing). Every send answers `unknown`; the retry is the same document with the same
    Idempotency-Key, monday replays it, and each notification reaches the bell once."""
    await install(monday_client)
    await connect(monday_client, fake_monday.fake, user=MEMBER, kind="oauth")
    fake = fake_monday.fake
    fake.fail_next("execute-then-500")
    count = 3
    answers = await lined_up(monday_client, count, poster(monday_client, mint(user=MEMBER)))
    rows = [body["data"] for _, body in answers]
    assert {row["delivery_status"] for row in rows} == {"unknown"}, answers
    done = [await wait_for(monday_client, row["id"], "sent") for row in rows]
    assert {row["delivery_status"] for row in done} == {"sent"}
    calls = fake.requests_to("/v2")
    assert len(calls) >= 2, "no retry reached monday"
    assert len({call.headers["idempotency-key"] for call in calls}) == 1
    assert len({json.dumps(call.body, sort_keys=True) for call in calls}) == 1
    assert sorted(n.text for n in fake.bell(MEMBER)) == [f"coalesced {i}" for i in range(count)]
