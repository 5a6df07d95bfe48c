"""PostgreSQL: the `sent` outcomes of a transaction's rows in one statement.

On SQLite each row's `sent` is one prepared UPDATE run at the driver (finish.py
`finish_sent`): a statement costs no round trip there, and SQLite steps a many-row statement
more slowly than several one-row ones (docs/benchmarks.md, seventh pass). On PostgreSQL each
statement is a round trip through SQLAlchemy and asyncpg, and a send's outcome was one
UPDATE per row. Here the rows whose stored values the caller holds (`sent_unchanged`: the
inline attempt's rows) are written by one `UPDATE ... FROM unnest(...)` for the whole job,
or for every job of a writer group, which checks each row as the one-row UPDATE does and
returns the ids it changed.

A row it did not change (its stored values are no longer the caller's copy, which does not
happen to a row leased to the caller unless something else is wrong):
- in a job run alone, that row is written the general way right there (`finish_statement`);
- in a writer group, the group's finalizer raises, the group is rolled back and each of its
  jobs runs again alone (storage/writer.py), so a job never answers with a row that was not
  stored as it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from server.notifications.model import Finish, Notification
from server.storage.txn_group import current

# What the one-row statement (finish.py `_SENT`) sets, for every row of `v`. `last_error`
# is SQL NULL, as the one-row statement's bound None stores it (tables.py `NullableJSON`).
_SENT_ALL = text(
    "UPDATE notifications AS n SET delivery_status = 'sent', last_error = NULL,"
    " lease_owner = NULL, lease_expires_at = NULL, next_attempt_at = NULL,"
    " sent_at = v.sent_at, monday_id = coalesce(v.monday_id, n.monday_id)"
    " FROM unnest(CAST(:ids AS bigint[]), CAST(:owners AS text[]), CAST(:statuses AS text[]),"
    " CAST(:attempts AS integer[]), CAST(:keys AS text[]), CAST(:sent_at AS timestamptz[]),"
    " CAST(:monday_ids AS text[])) AS v(id, owner, status, attempts, key, sent_at, monday_id)"
    " WHERE n.id = v.id AND n.lease_owner = v.owner AND n.delivery_status = 'sending'"
    " AND n.status = v.status AND n.attempts = v.attempts AND n.delivery_request_key = v.key"
    " RETURNING n.id"
)
_SLOT = "notifications.sent_batch"  # a writer group's batch (`TxnGroup.shared`)


class StaleCopies(Exception):
    """A row of a group's batch was not its caller's copy: the group runs each job alone."""


@dataclass
class SentBatch:
    # A writer group's batch (its finalizer writes it), or a job's own (the job writes it).
    by_group: bool = False
    ids: list[int] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    attempts: list[int] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    sent_at: list[datetime] = field(default_factory=list)
    monday_ids: list[str | None] = field(default_factory=list)

    def add(self, row: Notification, owner: str, outcome: Finish, now: datetime) -> None:
        self.ids.append(row.id)
        self.owners.append(owner)
        self.statuses.append(row.status)
        self.attempts.append(row.attempts)
        self.keys.append(row.delivery_request_key)
        self.sent_at.append(now)
        self.monday_ids.append(outcome.monday_id)

    def write(self, connection: Connection) -> set[int]:
        """Run the statement; the ids of the rows it changed."""
        if not self.ids:
            return set()
        parameters: dict[str, Any] = {
            "ids": self.ids,
            "owners": self.owners,
            "statuses": self.statuses,
            "attempts": self.attempts,
            "keys": self.keys,
            "sent_at": self.sent_at,
            "monday_ids": self.monday_ids,
        }
        return {int(row_id) for (row_id,) in connection.execute(_SENT_ALL, parameters)}

    def write_all(self, connection: Connection) -> None:
        """A group's finalizer: every row changed, or the group runs each job alone."""
        changed = len(self.write(connection))
        if changed != len(self.ids):
            stale = len(self.ids) - changed
            raise StaleCopies(f"{stale} of {len(self.ids)} rows were not as their callers held")


def sent_batch(connection: Connection) -> SentBatch | None:
    """Where a job's fast `sent` rows go on PostgreSQL (None elsewhere): its writer group's
    batch, written by the group's finalizer, or a batch of the job's own, which the job
    writes itself (`SentBatch.by_group`)."""
    if connection.dialect.name != "postgresql":
        return None
    group = current(connection)
    if group is None:
        return SentBatch()
    batch: SentBatch | None = group.shared.get(_SLOT)
    if batch is None:
        batch = group.shared[_SLOT] = SentBatch(by_group=True)
        # First: these rows are the group's own leased rows; the accounts' limit rows are
        # locked last (storage/notifications/budget.py).
        group.finalizers.insert(0, batch.write_all)
    return batch
