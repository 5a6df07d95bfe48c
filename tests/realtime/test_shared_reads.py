"""Identical subscriptions of one user read each change once (server/realtime/shared_reads.py).

Every subscription hears of a `create` by re-reading the row with its own query under its
caller's access rules (§13). Subscriptions with the same query text of the same user make the
same read, so it is made once and shared; another user's, another query's, or a query that
depends on when it was parsed (`$NOW`) read on their own. Over a real server, on SQLite and
PostgreSQL; `SharedReads.started` counts the reads made.
"""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from server.notifications.changes import RowChange
from server.realtime.runtime import REALTIME
from server.realtime.shared_reads import SharedReads
from server.tokens import Session
from tests.conftest import INSTALLER
from tests.notifications.helpers import MEMBER
from tests.realtime.test_protocol import open_wire, send
from tests.realtime.wire import Wire

Client = TestClient[Any, Any]
OTHER = "13"  # another member of the account
FIELDS = {"fields": ["id", "message"]}


async def subscribed(rt: Client, token: str, query: dict[str, Any]) -> Wire:
    wire = await open_wire(rt)
    await wire.auth(token)
    await wire.subscribe("s", query=query, event="create")
    return wire


def reads_started(rt: Client) -> int:
    started: int = rt.app[REALTIME].reads.started
    return started


async def test_one_users_identical_subscriptions_share_one_read(rt: Client, mint: Any) -> None:
    member = mint(user=MEMBER)
    same = [await subscribed(rt, member, FIELDS) for _ in range(3)]
    different = await subscribed(rt, member, {"fields": ["id"]})
    before = reads_started(rt)

    row_id = await send(rt, mint(user=INSTALLER, admin=True), message="shared")
    for wire in same:
        created = await wire.event("s", "create")
        assert created["data"] == [{"id": row_id, "message": "shared"}]
    assert (await different.event("s", "create"))["data"] == [{"id": row_id}]
    assert reads_started(rt) - before == 2  # one for the three identical, one for the other


async def test_another_users_subscription_reads_alone_and_sees_only_its_rows(
    rt: Client, mint: Any
) -> None:
    member = await subscribed(rt, mint(user=MEMBER), FIELDS)
    other = await subscribed(rt, mint(user=OTHER), FIELDS)
    before = reads_started(rt)

    to_member = await send(rt, mint(user=INSTALLER, admin=True), message="for 12")
    assert [r["id"] for r in (await member.event("s", "create"))["data"]] == [to_member]
    # OTHER sends one itself: the first create it hears of is its own, not the member's row.
    own = await send(rt, mint(user=OTHER), message="from 13")
    assert [r["id"] for r in (await other.event("s", "create"))["data"]] == [own]
    assert [r["id"] for r in (await member.event("s", "create"))["data"]] == [own]
    assert reads_started(rt) - before == 4  # each change read once per user


async def test_a_query_of_the_time_it_was_parsed_is_not_shared(rt: Client, mint: Any) -> None:
    member = mint(user=MEMBER)
    now_query = {**FIELDS, "filter": {"timestamp": {"_gte": "$NOW(-1 day)"}}}
    wires = [await subscribed(rt, member, now_query) for _ in range(2)]
    before = reads_started(rt)

    row_id = await send(rt, mint(user=INSTALLER, admin=True), message="now")
    for wire in wires:
        assert [r["id"] for r in (await wire.event("s", "create"))["data"]] == [row_id]
    assert reads_started(rt) - before == 2


SESSION = Session("1001", MEMBER, False, False, False, None, None, 2**31, 0)


async def test_kept_reads_are_bounded_and_a_dropped_one_is_read_again() -> None:
    reads = SharedReads(max_reads=2, max_rows=3)
    made: list[int] = []

    def reading(row_id: int) -> Any:
        async def read() -> list[dict[str, Any]]:
            made.append(row_id)
            return [{"id": row_id}]

        return read

    changes = [RowChange("create", (row_id,), "1001") for row_id in (1, 2, 3)]
    for change in changes:
        rows = await reads.rows(change, 0, SESSION, "q", reading(change.ids[0]))
        assert rows == [{"id": change.ids[0]}]
    # Kept: the last two; the first change's read was dropped and is made again.
    assert await reads.rows(changes[2], 0, SESSION, "q", reading(3)) == [{"id": 3}]
    assert await reads.rows(changes[0], 0, SESSION, "q", reading(1)) == [{"id": 1}]
    assert made == [1, 2, 3, 1]
    # Rows bound: one read of three rows leaves room for nothing else.
    big = RowChange("create", (7, 8, 9), "1001")
    three = [{"id": 7}, {"id": 8}, {"id": 9}]

    async def read_three() -> list[dict[str, Any]]:
        made.append(7)
        return three

    await reads.rows(big, 0, SESSION, "q", read_three)
    assert await reads.rows(changes[0], 0, SESSION, "q", reading(1)) == [{"id": 1}]
    assert made == [1, 2, 3, 1, 7, 1]
