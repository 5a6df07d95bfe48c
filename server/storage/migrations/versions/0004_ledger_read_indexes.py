"""ledger read indexes: a non-admin's list in index order

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-22

A non-admin's list is read as two arms, `recipient = me` and `sender = me` (see
server/notifications/reads.py); these indexes give each arm its rows already in the order of
the list, by time or by id, so neither SQLite nor PostgreSQL sorts the caller's whole ledger
for one page.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0001"  # the lead re-chains revisions at merge
branch_labels = None
depends_on = None

INDEXES = {
    "ix_notifications_account_recipient_ts_id": ["account_id", "recipient", "timestamp", "id"],
    "ix_notifications_account_recipient_id": ["account_id", "recipient", "id"],
    "ix_notifications_account_sender_id": ["account_id", "sender", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        for name in reversed(INDEXES):
            batch_op.drop_index(name)
