"""ledger read index: an admin's whole-account list by time, in index order

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 13:00:00.000000

An admin's list of the whole account newest first (`sort=-timestamp`, no recipient or sender
in the filter) had no index in that order: SQLite found the account's rows through
(account_id, sender, id) and sorted all of them in a temporary B-tree for every page, and
PostgreSQL top-N sorted them. (account_id, timestamp, id) delivers them in the order of the
list (id is the tie-breaker of every sort, server/notifications/query.py), so a page reads
offset + limit index entries and stops.
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

NAME = "ix_notifications_account_ts_id"
COLUMNS = ["account_id", "timestamp", "id"]


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.create_index(NAME, COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(NAME)
