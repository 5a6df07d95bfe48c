"""ledger read indexes: a non-admin's list in index order

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

A non-admin's list is read as two arms, `recipient = me` and `sender = me` (see
server/notifications/reads.py); these indexes give each arm its rows already in the order of
the list, by time or by id, so neither SQLite nor PostgreSQL sorts the caller's whole ledger
for one page. The two time indexes of 0001 are replaced by the same ones ending in `id`, the
tie-breaker of every sort (PostgreSQL can then read a page straight from them).
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

REPLACED = {
    "ix_notifications_account_recipient_status_ts": [
        "account_id",
        "recipient",
        "status",
        "timestamp",
    ],
    "ix_notifications_account_sender_ts": ["account_id", "sender", "timestamp"],
}
CREATED = {
    "ix_notifications_account_recipient_status_ts_id": [
        "account_id",
        "recipient",
        "status",
        "timestamp",
        "id",
    ],
    "ix_notifications_account_recipient_ts_id": ["account_id", "recipient", "timestamp", "id"],
    "ix_notifications_account_recipient_id": ["account_id", "recipient", "id"],
    "ix_notifications_account_sender_ts_id": ["account_id", "sender", "timestamp", "id"],
    "ix_notifications_account_sender_id": ["account_id", "sender", "id"],
}


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        for name, columns in CREATED.items():
            batch_op.create_index(name, columns, unique=False)
        for name in REPLACED:
            batch_op.drop_index(name)


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        for name, columns in REPLACED.items():
            batch_op.create_index(name, columns, unique=False)
        for name in CREATED:
            batch_op.drop_index(name)
