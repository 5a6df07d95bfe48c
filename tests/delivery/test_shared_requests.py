"""One monday request for several sends' attempts (server/delivery/shared.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from server.delivery.shared import SharedRequests
from server.notifications.model import DeliveryStatus, Notification
from tests.conditions import until

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


def row(row_id: int, ids: tuple[int, ...], key: str = "key-1") -> Notification:
    return Notification(
        id=row_id,
        timestamp=T0,
        status="inbox",
        recipient="12",
        sender="11",
        subject=None,
        message=f"hello {row_id}",
        collection="Project",
        item="5001",
        account_id="1001",
        sent_as="app",
        transport="server",
        credential_owner="11",
        delivery_status=DeliveryStatus.SENDING,
        attempts=1,
        next_attempt_at=None,
        sent_at=None,
        last_error=None,
        idempotency_key=None,
        lease_owner="lease/1",
        lease_expires_at=None,
        monday_id=None,
        delivery_request_key=key,
        delivery_request_rows=ids,
    )


async def test_the_request_is_sent_once_and_survives_a_caller_going_away() -> None:
    ids = (1, 2, 3)
    rows = [row(i, ids) for i in ids]
    shared = SharedRequests()
    shared.add(rows, participants=2)
    calls: list[list[int]] = []
    answer = asyncio.Event()

    async def send(every: list[Notification]) -> list[Notification]:
        calls.append([r.id for r in every])
        await answer.wait()
        return [row(r.id, ids, key="recorded") for r in every]

    first = asyncio.ensure_future(shared.join(rows[:2], send))
    second = asyncio.ensure_future(shared.join(rows[2:], send))
    await until(lambda: calls, "the request was never sent")
    first.cancel()  # that caller went away; the call the other waits for goes on
    answer.set()
    recorded = await second
    assert [(r.id, r.delivery_request_key) for r in recorded] == [(3, "recorded")]
    assert calls == [[1, 2, 3]]
    assert first.cancelled()
    assert len(shared) == 0  # both sends joined: forgotten


async def test_an_unknown_request_is_left_to_the_worker() -> None:
    shared = SharedRequests()

    async def send(every: list[Notification]) -> list[Notification]:
        raise AssertionError("nothing may be sent for a request this process does not know")

    assert await shared.join([row(5, (5, 6))], send) == []


async def test_the_oldest_entry_is_forgotten_beyond_the_limit() -> None:
    shared = SharedRequests(limit=2)
    for n in range(3):
        shared.add([row(n, (n, n + 10), key=f"key-{n}")], participants=2)
    assert len(shared) == 2
    sent: list[int] = []

    async def send(every: list[Notification]) -> list[Notification]:
        sent.extend(r.id for r in every)
        return list(every)

    assert await shared.join([row(0, (0, 10), key="key-0")], send) == []
    assert [r.id for r in await shared.join([row(2, (2, 12), key="key-2")], send)] == [2]
    assert sent == [2]


def test_a_send_with_all_the_rows_of_its_request_is_not_a_part() -> None:
    assert not SharedRequests.is_part([row(1, (1, 2)), row(2, (1, 2))])
    assert SharedRequests.is_part([row(1, (1, 2))])
