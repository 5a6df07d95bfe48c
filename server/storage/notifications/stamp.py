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
from dataclasses import replace
from datetime import datetime

from sqlalchemy import bindparam, select, update
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
_MUTED = select(m.account_id, m.user_id, m.target_key).where(
    m.account_id == bindparam("d_account"), m.user_id.in_(bindparam("d_users", expanding=True))
)
_SETTINGS = select(
    i.account_id, i.quiet_hours_start, i.quiet_hours_end, i.digest_window_seconds
).where(i.account_id.in_(bindparam("d_accounts", expanding=True)))
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


def due_facts(connection: Connection, rows: Sequence[Notification]) -> DueFacts:
    """The gate's inputs for `rows`, read in the caller's transaction (indexed reads: the
    recipients' mutes per account, the accounts' settings)."""
    if not rows:
        return DueFacts()
    users: dict[str, set[str]] = {}
    for row in rows:
        users.setdefault(row.account_id, set()).add(row.recipient)
    muted_keys: set[tuple[str, str, str]] = set()
    for account_id, recipients in users.items():
        params = {"d_account": account_id, "d_users": sorted(recipients)}
        muted_keys.update(
            (str(a), str(u), str(k)) for a, u, k in connection.execute(_MUTED, params)
        )
    muted = frozenset(
        row.id
        for row in rows
        if muted_keys
        and (
            (row.account_id, row.recipient, "") in muted_keys
            or (row.account_id, row.recipient, mute_key(row.collection, row.item)) in muted_keys
        )
    )
    quiet: dict[str, tuple[str, str]] = {}
    digests: set[str] = set()
    for account_id, start, end, window in connection.execute(
        _SETTINGS, {"d_accounts": sorted(users)}
    ):
        if start and end:
            quiet[str(account_id)] = (str(start), str(end))
        if int(window or 0) > 0:
            digests.add(str(account_id))
    return DueFacts(muted, quiet, frozenset(digests))


def stamp_planned(
    connection: Connection,
    stored: list[Notification],
    plan: RequestPlanner,
    lease_owner: str,
    now: datetime,
    clear: DueFilter | None = None,
) -> list[Notification]:
    """Move the leased rows (those `clear` lets through, when given) to `sending` for the
    requests `plan` makes of them (what `mark_sending_request` does before a later
    attempt), inside the insert's transaction."""
    leased = [row for row in stored if row.lease_owner == lease_owner]
    if leased and clear is not None:
        leased = list(clear(leased, due_facts(connection, leased)))
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
