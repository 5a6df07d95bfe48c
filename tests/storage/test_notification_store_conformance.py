"""One battery, both engines: what the notification stores promise their callers.

The send service, the ledger service and delivery rely on these promises through the
ports in `server/notifications/ports.py`; every test runs once on SQLite and once on
PostgreSQL (`database_url` is parametrised over both). Time is the injected clock
(`server.clock.frozen`), so leases expire by moving the clock, not by waiting.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import frozen
from server.notifications.filters import Context
from server.notifications.model import (
    DeliveryStatus,
    Finish,
    IllegalTransition,
    KeyReservation,
    KeyTaken,
    NewNotification,
    Notification,
    PlannedRequest,
    Visibility,
    delivery_error,
    transition,
)
from server.notifications.ports import IdempotencyStore, NotificationStore, OutboxStore
from server.notifications.query import parse_query
from server.storage.db import create_engine
from server.storage.notifications import SqlIdempotencyKeys, SqlNotificationRows, SqlOutbox
from server.storage.tables import sender_audit
from tests.storage.rows import ACCOUNT, SENDER, audit, new

T0 = datetime(2026, 11, 28, 9, 0, 0, 123456, tzinfo=UTC)
S = DeliveryStatus


@dataclass
class Stores:
    engine: AsyncEngine
    rows: NotificationStore
    outbox: OutboxStore
    keys: IdempotencyStore


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = create_engine(database_url)
    # The SQL adapters must satisfy the ports the services are typed against.
    yield Stores(engine, SqlNotificationRows(engine), SqlOutbox(engine), SqlIdempotencyKeys(engine))
    await engine.dispose()


async def insert(
    stores: Stores, *rows: NewNotification, lease: str | None = None
) -> list[Notification]:
    with frozen(T0):
        return await stores.rows.insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=rows,
            audits=[audit() for _ in rows],
            idempotency_key="k1",
            lease_owner=lease,
            lease_seconds=60,
        )


# ------------------------------------------------------------------ rows and audit


async def test_insert_returns_typed_rows_and_writes_their_audit(stores: Stores) -> None:
    server, seamless = await insert(stores, new("12"), new("13", transport="seamless"), lease="p/1")
    assert server.delivery_status is S.QUEUED
    assert (server.lease_owner, server.lease_expires_at) == ("p/1", T0 + timedelta(seconds=60))
    assert server.next_attempt_at == T0 and server.timestamp == T0
    assert seamless.delivery_status is S.AWAITING_CLIENT
    assert (seamless.lease_owner, seamless.next_attempt_at) == (None, None)
    assert (server.status, server.attempts, server.idempotency_key) == ("inbox", 0, "k1")
    async with stores.engine.connect() as conn:
        audited = (await conn.execute(select(sender_audit.c.notification_id))).scalars().all()
    assert sorted(audited) == [server.id, seamless.id]
    assert await stores.rows.get_many([seamless.id, 999_999, server.id]) == [seamless, server]


async def test_relay_moves_only_an_awaiting_row(stores: Stores) -> None:
    server, seamless = await insert(stores, new("12"), new("13", transport="seamless"))
    sent = await stores.rows.record_relay(seamless.id, status=S.SENT, monday_id="m1", error=None)
    assert sent is not None
    assert (sent.delivery_status, sent.monday_id, sent.attempts) == (S.SENT, "m1", 1)
    assert sent.sent_at is not None
    # Already sent, or never awaiting: nothing moves.
    for row in (seamless, server):
        assert (
            await stores.rows.record_relay(row.id, status=S.FAILED, monday_id=None, error=None)
            is None
        )
    with pytest.raises(IllegalTransition):
        await stores.rows.record_relay(seamless.id, status=S.UNKNOWN, monday_id=None, error=None)


async def test_status_changes_are_all_or_nothing_within_visibility(stores: Stores) -> None:
    mine, theirs = await insert(stores, new("12"), new("13"))
    member = Visibility(ACCOUNT, "12")
    assert await stores.rows.set_status_all(member, [mine.id, theirs.id], "archived") is None
    assert (await stores.rows.get(theirs.id)) == theirs
    changed = await stores.rows.set_status(member, [(mine.id, "archived"), (mine.id, None)])
    assert changed is not None and {row.status for row in changed} == {"archived"}
    other_account = Visibility("2002", None)
    assert await stores.rows.set_status_all(other_account, [mine.id], "inbox") is None
    query = parse_query({"filter": {"recipient": {"_eq": "13"}}}, Context("11", T0))
    admin = Visibility(ACCOUNT, None)
    [archived] = await stores.rows.set_status_matching(admin, query, "archived")
    assert (archived.id, archived.status) == (theirs.id, "archived")


async def test_deletes_are_all_or_nothing_within_what_may_be_deleted(stores: Stores) -> None:
    first, second = await insert(stores, new("12"), new("13"))
    recipient_only = Visibility(ACCOUNT, "12", ("sender",))  # user 12 sent neither
    assert await stores.rows.delete(recipient_only, [first.id]) is None
    everything = parse_query({}, Context("12", T0))
    visible_to_12 = Visibility(ACCOUNT, "12")
    assert await stores.rows.delete_matching(visible_to_12, recipient_only, everything) is None
    assert await stores.rows.get_many([first.id, second.id]) == [first, second]
    sender = Visibility(ACCOUNT, SENDER, ("sender",))
    assert sorted(await stores.rows.delete(sender, [first.id, first.id]) or []) == [first.id]
    deleted = await stores.rows.delete_matching(Visibility(ACCOUNT, SENDER), sender, everything)
    assert deleted == [second.id]
    assert await stores.rows.get_many([first.id, second.id]) == []


# ------------------------------------------------------------------ the outbox


async def test_claims_never_share_a_row_and_expired_leases_are_reclaimed(stores: Stores) -> None:
    [row] = await insert(stores, new())
    with frozen(T0):
        first = await stores.outbox.claim("a", lease_seconds=30, limit=10)
        assert [r.id for r in first] == [row.id]
        assert first[0].lease_owner is not None and first[0].lease_owner.startswith("a/")
        assert await stores.outbox.claim("a", lease_seconds=30, limit=10) == []
    with frozen(T0 + timedelta(seconds=31)):
        again = await stores.outbox.claim("b", lease_seconds=30, limit=10, ids=[row.id])
    assert [r.id for r in again] == [row.id]
    assert again[0].lease_owner != first[0].lease_owner


async def test_inserted_leased_rows_are_not_claimable_until_the_lease_ends(stores: Stores) -> None:
    [row] = await insert(stores, new(), lease="req/1")
    with frozen(T0 + timedelta(seconds=59)):
        assert await stores.outbox.claim("w", lease_seconds=30, limit=10) == []
    with frozen(T0 + timedelta(seconds=61)):
        assert [r.id for r in await stores.outbox.claim("w", lease_seconds=30, limit=10)] == [
            row.id
        ]


async def test_sending_then_finishing_records_the_outcome(stores: Stores) -> None:
    sent_row, unknown_row = await insert(stores, new("12"), new("13"), lease="req/1")
    ids = [sent_row.id, unknown_row.id]
    with frozen(T0 + timedelta(seconds=1)):
        assert await stores.outbox.mark_sending("someone-else", ids) == []
        assert sorted(await stores.outbox.mark_sending("req/1", ids, lease_seconds=90)) == ids
        await stores.outbox.finish("req/1", sent_row.id, delivery_status=S.SENT, monday_id="m9")
        # A row in `sending` may not go back to `queued`: the guard leaves it as it is.
        await stores.outbox.finish("req/1", unknown_row.id, delivery_status=S.QUEUED)
    sent, still_sending = await stores.rows.get_many(ids)
    assert (sent.delivery_status, sent.monday_id, sent.attempts) == (S.SENT, "m9", 1)
    assert (sent.lease_owner, sent.lease_expires_at, sent.sent_at) == (
        None,
        None,
        T0 + timedelta(seconds=1),
    )
    assert still_sending.delivery_status is S.SENDING
    with frozen(T0 + timedelta(seconds=60)):
        assert await stores.outbox.expire_stale_sending() == 0  # its lease was renewed to 90 s
    with frozen(T0 + timedelta(seconds=92)):
        assert await stores.outbox.expire_stale_sending() == 1
    unknown = await stores.rows.get(unknown_row.id)
    assert unknown is not None and unknown.delivery_status is S.UNKNOWN
    assert unknown.last_error is not None and unknown.last_error["code"] == "DELIVERY_INTERRUPTED"


async def test_retry_defer_release_and_queue_depth(stores: Stores) -> None:
    retried, deferred, released = await insert(stores, new("12"), new("13"), new("14"), lease="r/1")
    until = T0 + timedelta(minutes=5)
    with frozen(T0):
        await stores.outbox.mark_sending("r/1", [retried.id])
        error = delivery_error("ComplexityException", "try later")
        await stores.outbox.finish(
            "r/1", retried.id, delivery_status=S.RETRY_SCHEDULED, error=error, next_attempt_at=until
        )
        moved = await stores.outbox.defer("r/1", [deferred.id], until=until, error=error)
        assert [r.id for r in moved] == [deferred.id]
        await stores.outbox.release("r/1", [released.id])
        counts, oldest = await stores.outbox.queue_depth()
    assert counts == {"queued": 1, "retry_scheduled": 2, "sending": 0, "scheduled": 0}
    assert oldest == 0.0  # the queued row is due at T0 exactly
    rows = await stores.rows.get_many([retried.id, deferred.id, released.id])
    assert [r.delivery_status for r in rows] == [S.RETRY_SCHEDULED, S.RETRY_SCHEDULED, S.QUEUED]
    assert [r.next_attempt_at for r in rows[:2]] == [until, until]
    assert all(r.lease_owner is None for r in rows)
    with frozen(until + timedelta(seconds=1)):
        claimed = await stores.outbox.claim("w", lease_seconds=30, limit=10)
        _, age = await stores.outbox.queue_depth()
    assert sorted(r.id for r in claimed) == sorted(r.id for r in rows)
    assert age == pytest.approx(301.0, abs=0.01)


async def test_queue_depth_counts_scheduled_rows_and_their_due_age(stores: Stores) -> None:
    """Contract §12: /metrics' queue includes rows waiting `scheduled`; one that is due but
    not yet released makes the oldest-due age grow (a stalled scheduler shows)."""
    send_at = T0 + timedelta(minutes=1)
    later = replace(new("12"), send_at=send_at, scheduled=True)
    (row,) = await insert(stores, later)
    assert row.delivery_status is S.SCHEDULED
    with frozen(T0):
        counts, oldest = await stores.outbox.queue_depth()
    assert counts["scheduled"] == 1 and counts["queued"] == 0
    assert oldest == 0.0  # not due yet
    with frozen(send_at + timedelta(seconds=30)):
        counts, age = await stores.outbox.queue_depth()
    assert counts["scheduled"] == 1
    assert age == pytest.approx(30.0, abs=0.01)


# ------------------------------------------------------------------ idempotency keys


async def test_a_key_is_reserved_once_until_forgotten(stores: Stores) -> None:
    with frozen(T0):
        assert await stores.keys.reserve(ACCOUNT, SENDER, "k", "d1") is True
        assert await stores.keys.reserve(ACCOUNT, SENDER, "k", "d2") is False
        assert await stores.keys.reserve(ACCOUNT, "12", "k", "d2") is True  # per user
    record = await stores.keys.read(ACCOUNT, SENDER, "k")
    assert record is not None
    assert (record.body_digest, record.created_at, record.response_status) == ("d1", T0, None)
    await stores.keys.keep_answer(ACCOUNT, SENDER, "k", 200, {"data": [1, "ü"]})
    record = await stores.keys.read(ACCOUNT, SENDER, "k")
    assert record is not None and (record.response_status, record.response_body) == (
        200,
        {"data": [1, "ü"]},
    )
    await stores.keys.forget(ACCOUNT, SENDER, "k")
    assert await stores.keys.read(ACCOUNT, SENDER, "k") is None


# ------------------------------------------------------------------ the transition table


def test_the_transition_table_refuses_what_could_notify_twice() -> None:
    assert transition("sending", "unknown") is S.UNKNOWN
    assert transition(S.AWAITING_CLIENT, S.SENT) is S.SENT
    for current, target in [
        (S.UNKNOWN, S.QUEUED),  # no automatic retry after "maybe sent"
        (S.SENDING, S.QUEUED),
        (S.SENT, S.FAILED),
        (S.CANCELLED, S.QUEUED),
        (S.AWAITING_CLIENT, S.SENDING),
    ]:
        with pytest.raises(IllegalTransition):
            transition(current, target)


async def test_a_batch_of_outcomes_is_recorded_together(stores: Stores) -> None:
    sent_row, failed_row, foreign = await insert(
        stores, new("12"), new("13"), new("14"), lease="b/1"
    )
    ids = [sent_row.id, failed_row.id, foreign.id]
    with frozen(T0):
        await stores.outbox.mark_sending("b/1", ids)
        await stores.outbox.finish_many(
            "b/1",
            [
                Finish(sent_row.id, S.SENT, monday_id="m1"),
                Finish(failed_row.id, S.FAILED, delivery_error("UserUnauthorizedException", "no")),
            ],
        )
        # Another lease holder's outcome is not ours to record.
        await stores.outbox.finish_many("b/2", [Finish(foreign.id, S.SENT, monday_id="m3")])
    rows = await stores.rows.get_many(ids)
    assert [r.delivery_status for r in rows] == [S.SENT, S.FAILED, S.SENDING]
    assert rows[0].monday_id == "m1" and rows[1].last_error is not None
    assert [r.lease_owner for r in rows] == [None, None, "b/1"]


# ------------------------------------------------------------------ the send path's one write


def _one_request_each(rows: Sequence[Notification]) -> list[PlannedRequest]:
    return [PlannedRequest((row.id,), f"key-{row.id}") for row in rows]


async def test_the_insert_reserves_the_key_and_stamps_the_inline_request(stores: Stores) -> None:
    reserve = KeyReservation(ACCOUNT, SENDER, "k1", "d1")
    with frozen(T0):
        sent, relayed = await stores.rows.insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=[new("12"), new("13", transport="seamless")],
            audits=[audit(), audit()],
            idempotency_key="k1",
            lease_owner="me/1",
            plan=_one_request_each,
            reserve=reserve,
        )
    # The server's row is `sending` for exactly its planned request; the relayed one is not.
    assert (sent.delivery_status, sent.attempts) == (S.SENDING, 1)
    assert (sent.delivery_request_key, sent.delivery_request_rows) == (f"key-{sent.id}", (sent.id,))
    assert sent.delivery_request_at == T0
    assert relayed.delivery_status is S.AWAITING_CLIENT and relayed.delivery_request_key is None
    assert await stores.rows.get_many([sent.id, relayed.id]) == [sent, relayed]
    record = await stores.keys.read(ACCOUNT, SENDER, "k1")
    assert record is not None and (record.body_digest, record.created_at) == ("d1", T0)
    # The key names its rows, in item order: an abandoned request's answer is built from them.
    assert record.row_ids == (sent.id, relayed.id)

    # The key is taken: a second insert with it writes nothing at all.
    with pytest.raises(KeyTaken):
        await stores.rows.insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=[new("14")],
            audits=[audit()],
            idempotency_key="k1",
            lease_owner="me/2",
            plan=_one_request_each,
            reserve=reserve,
        )
    async with stores.engine.connect() as connection:
        audits = (await connection.execute(select(sender_audit.c.notification_id))).all()
    assert sorted(n for (n,) in audits) == sorted([sent.id, relayed.id])


async def test_a_deferral_takes_a_stamped_row_back_to_retry_scheduled(stores: Stores) -> None:
    until = T0 + timedelta(minutes=5)
    with frozen(T0):
        (row,) = await stores.rows.insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=[new("12")],
            audits=[audit()],
            idempotency_key=None,
            lease_owner="me/1",
            plan=_one_request_each,
        )
        assert row.delivery_status is S.SENDING
        error = delivery_error("MINUTE_BUDGET", "later")
        assert await stores.outbox.defer("other/1", [row.id], until=until, error=error) == []
        (deferred,) = await stores.outbox.defer("me/1", [row.id], until=until, error=error)
    # Never attempted: no attempt counted, no request named, claimable again when due.
    assert (deferred.delivery_status, deferred.attempts) == (S.RETRY_SCHEDULED, 0)
    assert deferred.delivery_request_key is None and deferred.delivery_request_rows == ()
    assert (deferred.next_attempt_at, deferred.lease_owner) == (until, None)
    with frozen(until + timedelta(seconds=1)):
        claimed = await stores.outbox.claim("w", lease_seconds=30, limit=10)
    assert [r.id for r in claimed] == [row.id]


async def test_a_sent_outcome_of_a_known_row_is_the_row_as_stored(stores: Stores) -> None:
    """`finish_many(known=...)`: a row still exactly the caller's copy is written without
    being read back; what comes back must still be the row as stored. A copy that is stale
    (the row was archived meanwhile) takes the general way, and still answers as stored."""
    with frozen(T0):
        first, second = await stores.rows.insert(
            account_id=ACCOUNT,
            sender=SENDER,
            rows=[new("12"), new("13")],
            audits=[audit(), audit()],
            idempotency_key=None,
            lease_owner="me/1",
            plan=_one_request_each,
        )
    assert first.delivery_status is S.SENDING and second.delivery_status is S.SENDING
    member = Visibility(ACCOUNT, "13")
    assert await stores.rows.set_status(member, [(second.id, "archived")]) is not None
    with frozen(T0 + timedelta(seconds=1)):
        done = await stores.outbox.finish_many(
            "me/1",
            [Finish(first.id, S.SENT, monday_id="m1"), Finish(second.id, S.SENT, monday_id="m2")],
            known=[first, second],
        )
    assert done == await stores.rows.get_many([first.id, second.id])
    assert [(row.delivery_status, row.monday_id, row.lease_owner) for row in done] == [
        (S.SENT, "m1", None),
        (S.SENT, "m2", None),
    ]
    assert done[0].sent_at == T0 + timedelta(seconds=1) and done[1].status == "archived"
    # Not leased to the caller any more: nothing moves, whatever the copy says.
    assert (
        await stores.outbox.finish_many(
            "me/1", [Finish(first.id, S.SENT, monday_id="m3")], known=[first]
        )
        == []
    )
