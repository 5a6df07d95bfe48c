"""Who may reach which ledger rows, and the SQL of it: every access rule of the ledger.

Contract §7 (Directus' app-access permissions adapted to monday): a caller reaches rows of
their own account only; an admin all of them; anyone else the rows they received or sent, and
deletes only the rows they sent. The rule is a `Visibility`, and the statements that apply it
are built here only, so a read, an update and a delete can't disagree on it:

* `visibility_condition`: one WHERE clause (`account AND (recipient = me OR sender = me)`),
  for updates, deletes, reads by id and aggregates;
* `visible_arms`: the same rows as disjoint conditions, one per role, for the list reads that
  read each arm in index order and merge them (server/notifications/reads.py).

Every statement ANDs the condition in after the request's own filter, so no filter can widen it.
"""

from __future__ import annotations

from sqlalchemy import and_, or_
from sqlalchemy.sql.elements import ColumnElement

from server.notifications.model import Visibility
from server.storage.tables import notifications
from server.tokens import Session

t = notifications.c


def visible(session: Session) -> Visibility:
    """Rows the caller may read: their account; for non-admins, rows they received or sent."""
    return Visibility(session.account_id, None if session.is_admin else session.user_id)


def deletable(session: Session) -> Visibility:
    """Rows the caller may delete: their account; for non-admins, rows they sent."""
    user = None if session.is_admin else session.user_id
    return Visibility(session.account_id, user, ("sender",))


def visibility_condition(visibility: Visibility) -> ColumnElement[bool]:
    """The WHERE clause of `visibility`: the account, and for a user, their roles' rows."""
    account = t.account_id == visibility.account_id
    if visibility.user_id is None:
        return account
    roles = [t[role] == visibility.user_id for role in visibility.roles]
    return and_(account, or_(*roles))


def visible_arms(visibility: Visibility) -> tuple[ColumnElement[bool], ...]:
    """Disjoint conditions whose union is `visibility_condition(visibility)`: one arm per
    role, each excluding the earlier roles (`recipient = me`, then `sender = me AND
    recipient <> me`; both columns are NOT NULL, so the arms never overlap)."""
    account = t.account_id == visibility.account_id
    if visibility.user_id is None:
        return (account,)
    me = visibility.user_id
    arms = []
    for i, role in enumerate(visibility.roles):
        earlier = [t[other] != me for other in visibility.roles[:i]]
        arms.append(and_(account, t[role] == me, *earlier))
    return tuple(arms)


def reaches(visibility: Visibility, account_id: str, recipient: str, sender: str) -> bool:
    """`visibility_condition` for one row already in hand (a realtime delete event, whose
    rows are gone and can't be read back)."""
    if account_id != visibility.account_id:
        return False
    if visibility.user_id is None:
        return True
    owners = {"recipient": recipient, "sender": sender}
    return any(owners[role] == visibility.user_id for role in visibility.roles)
