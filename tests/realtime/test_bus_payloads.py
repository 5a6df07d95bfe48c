"""The change bus' NOTIFY payloads stay under PostgreSQL's 8000 bytes, whatever the change.

PostgreSQL refuses a payload of 8000 bytes or more, and with it the statement that sends the
whole batch of changes. A delete carries each row's recipient and sender (a non-admin may
only hear of their own rows), so a fixed number of ids per payload overflowed from ~200 rows
on; a `DELETE /notifications` may remove 10,000 (server/realtime/bus.py `encode`).
"""

from __future__ import annotations

from server.notifications.changes import RowChange
from server.notifications.query import MAX_LIMIT
from server.realtime.bus import decode, encode

INSTANCE = "a1b2c3d4e5f6a7b8"
# The longest user ids the ledger holds (its columns take 32 characters), 19-digit row ids.
USER_A, USER_B = "9" * 32, "8" * 32
ROW_IDS = tuple(range(10**18, 10**18 + MAX_LIMIT))


def round_trip(change: RowChange) -> tuple[list[str], RowChange]:
    payloads = encode(INSTANCE, change)
    decoded = [decode(payload) for payload in payloads]
    assert all(one is not None and one[0] == INSTANCE for one in decoded)
    parts = [one[1] for one in decoded if one is not None]
    assert {(part.event, part.account_id) for part in parts} == {(change.event, "1001")}
    whole = RowChange(
        change.event,
        tuple(row_id for part in parts for row_id in part.ids),
        "1001",
        tuple(owner for part in parts for owner in part.owners),
    )
    return payloads, whole


def test_a_delete_of_the_largest_batch_fits_and_loses_nothing() -> None:
    owners = tuple((row_id, USER_A, USER_B) for row_id in ROW_IDS)
    change = RowChange("delete", ROW_IDS, "1001", owners)
    payloads, whole = round_trip(change)
    assert max(len(payload.encode()) for payload in payloads) < 8000
    assert whole == change  # every id and owner, in order


def test_an_update_of_ids_only_fits_in_fewer_payloads() -> None:
    change = RowChange("update", ROW_IDS, "1001")
    payloads, whole = round_trip(change)
    assert max(len(payload.encode()) for payload in payloads) < 8000
    assert whole == change
    with_owners = RowChange("delete", ROW_IDS, "1001", tuple((i, "7", "8") for i in ROW_IDS))
    assert len(payloads) < len(encode(INSTANCE, with_owners))


def test_a_small_change_is_one_payload() -> None:
    change = RowChange("delete", (5,), "1001", ((5, "7", "8"),))
    payloads, whole = round_trip(change)
    assert len(payloads) == 1 and whole == change
