"""What the send path's insert reads to decide which rows go out inline (insert.py inserts
those already `sending`, stamped with the monday request they go out in: contract §11).

Only rows the §12 gate lets through untouched are stamped: the insert reads what the gate
would read (the recipients' mutes, the account's quiet hours and digest window) in its own
transaction and hands it to the dispatcher's `DueFilter`; a row it leaves out (muted, maybe
in quiet hours, or opening a digest) stays `queued` and meets the gate before its attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, exists, select
from sqlalchemy.engine import Connection

from server.notifications.model import (
    DueFacts,
    Notification,
)
from server.storage.prepared import Prepared
from server.storage.tables import installations, mutes

m = mutes.c
i = installations.c


def mute_key(collection: str | None, item: str | None) -> str:
    """A mute's target: "" mutes everything, else "collection:item"."""
    return "" if collection is None or item is None else f"{collection}:{item}"


# Built once with bound parameters: building and caching these per send cost more than
# running them (the writer thread holds the GIL meanwhile).
_ACCOUNT = Prepared(
    select(
        i.revision,
        i.quiet_hours_start,
        i.quiet_hours_end,
        i.digest_window_seconds,
        exists().where(m.account_id == i.account_id).label("has_mutes"),
    ).where(i.account_id == bindparam("a_account"))
)
_MUTED = select(m.user_id, m.target_key).where(
    m.account_id == bindparam("d_account"), m.user_id.in_(bindparam("d_users", expanding=True))
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
    row = next(iter(_ACCOUNT.rows(connection, {"a_account": account_id})), None)
    if row is None:
        # No installation row (development before a claim): look the mutes up anyway.
        return AccountFacts(None, None, False, True)
    revision, start, end = row["revision"], row["quiet_hours_start"], row["quiet_hours_end"]
    window, has_mutes = row["digest_window_seconds"], row["has_mutes"]
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
