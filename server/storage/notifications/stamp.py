"""Rows inserted for the inline attempt, moved to `sending` in the insert's own transaction
and stamped with the monday request they go out in (contract §11: its rows and
Idempotency-Key), so the attempt needs no write of its own before monday is called.

Only rows the §12 gate lets through untouched are stamped: the insert reads what the gate
would read (the recipients' mutes, the account's quiet hours and digest window) in its own
transaction and hands it to the dispatcher's `DueFilter`; a row it leaves out (muted, maybe
in quiet hours, or opening a digest) stays `queued` and meets the gate before its attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlalchemy.engine import Connection

from server.notifications.model import (
    DeliveryStatus,
    DueFacts,
    DueFilter,
    Notification,
    RequestPlanner,
    transition,
)
from server.storage.tables import installations, mutes, notifications

t = notifications.c
m = mutes.c
i = installations.c


def mute_key(collection: str | None, item: str | None) -> str:
    """A mute's target: "" mutes everything, else "collection:item"."""
    return "" if collection is None or item is None else f"{collection}:{item}"


# Built once with bound parameters: building and caching these per send cost more than
# running them (the writer thread holds the GIL meanwhile).
_ACCOUNT = select(
    i.revision,
    i.quiet_hours_start,
    i.quiet_hours_end,
    i.digest_window_seconds,
    exists().where(m.account_id == i.account_id).label("has_mutes"),
).where(i.account_id == bindparam("a_account"))
_MUTED = select(m.user_id, m.target_key).where(
    m.account_id == bindparam("d_account"), m.user_id.in_(bindparam("d_users", expanding=True))
)
_STAMP = (
    update(notifications)
    .where(t.id.in_(bindparam("s_ids", expanding=True)), t.lease_owner == bindparam("s_owner"))
    .values(
        delivery_status=bindparam("s_status"),
        attempts=t.attempts + 1,
        delivery_request_key=bindparam("s_key"),
        delivery_request_rows=bindparam("s_rows", type_=notifications.c.delivery_request_rows.type),
        delivery_request_at=bindparam("s_at", type_=notifications.c.delivery_request_at.type),
    )
)


@dataclass(frozen=True, slots=True)
class AccountFacts:
    """One read of the account's installation row: its revision, its §12 settings, and
    whether any of its users muted anything (so the common case skips the mutes read)."""

    revision: int | None  # None: no installation row
    quiet_hours: tuple[str, str] | None
    digest: bool
    has_mutes: bool


def account_facts(connection: Connection, account_id: str) -> AccountFacts:
    row = connection.execute(_ACCOUNT, {"a_account": account_id}).first()
    if row is None:
        # No installation row (development before a claim): look the mutes up anyway.
        return AccountFacts(None, None, False, True)
    revision, start, end, window, has_mutes = row
    quiet = (str(start), str(end)) if start and end else None
    return AccountFacts(int(revision), quiet, int(window or 0) > 0, bool(has_mutes))


def due_facts(
    connection: Connection, account_id: str, rows: Sequence[Notification], account: AccountFacts
) -> DueFacts:
    """The gate's inputs for `rows` (all of `account_id`), read in the caller's transaction:
    the account's settings from `account`, and the recipients' mutes if it has any."""
    muted: frozenset[int] = frozenset()
    if rows and account.has_mutes:
        params = {"d_account": account_id, "d_users": sorted({row.recipient for row in rows})}
        keys = {(str(u), str(k)) for u, k in connection.execute(_MUTED, params)}
        muted = frozenset(
            row.id
            for row in rows
            if (row.recipient, "") in keys
            or (row.recipient, mute_key(row.collection, row.item)) in keys
        )
    quiet = {account_id: account.quiet_hours} if account.quiet_hours else {}
    digests = frozenset({account_id}) if account.digest else frozenset()
    return DueFacts(muted, quiet, digests)


def stamp_planned(
    connection: Connection,
    stored: list[Notification],
    plan: RequestPlanner,
    lease_owner: str,
    now: datetime,
    clear: tuple[DueFilter, AccountFacts] | None = None,
) -> list[Notification]:
    """Move the leased rows (those `clear` lets through, when given) to `sending` for the
    requests `plan` makes of them (what `mark_sending_request` does before a later
    attempt), inside the insert's transaction."""
    leased = [row for row in stored if row.lease_owner == lease_owner]
    if leased and clear is not None:
        gate, account = clear
        leased = list(gate(leased, due_facts(connection, leased[0].account_id, leased, account)))
    sending = transition(DeliveryStatus.QUEUED, DeliveryStatus.SENDING)
    by_id = {row.id: row for row in stored}
    for request in plan(leased) if leased else ():
        ids = list(request.ids)
        connection.execute(
            _STAMP,
            {
                "s_ids": ids,
                "s_owner": lease_owner,
                "s_status": sending.value,
                "s_key": request.key,
                "s_rows": ids,
                "s_at": now,
            },
        )
        for row_id in ids:
            by_id[row_id] = replace(
                by_id[row_id],
                delivery_status=sending,
                attempts=by_id[row_id].attempts + 1,
                delivery_request_key=request.key,
                delivery_request_rows=request.ids,
                delivery_request_at=now,
            )
    return [by_id[row.id] for row in stored]
