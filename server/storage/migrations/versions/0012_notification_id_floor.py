"""notification ids are never given twice on SQLite: the highest id ever deleted, kept

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29 06:30:00.000000

The send path reserves SQLite ids as max(id) + 1, so deleting the newest rows handed their
ids to the next notifications (a retried DELETE by id, or an id a client kept, then reached
another row). `notification_id_floor` keeps the highest id ever deleted, raised by a trigger
on every delete, and ids are reserved above it (storage/tables.py, notifications/insert.py).
The floor starts at today's highest id: what was deleted before this migration is unknown.
PostgreSQL gets the table for one schema on both, and no trigger: its sequence never gives
an id twice.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TRIGGER = "notifications_raise_id_floor"


def upgrade() -> None:
    op.create_table(
        "notification_id_floor",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "last_deleted_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute(
        "INSERT INTO notification_id_floor (id, last_deleted_id) "
        "SELECT 1, coalesce(max(id), 0) FROM notifications"
    )
    if op.get_bind().dialect.name == "sqlite":
        # Per deleted row (SQLite has no statement triggers), writing only when it raises the
        # floor: a 10,000-row delete of old rows writes nothing.
        op.execute(
            f"CREATE TRIGGER {TRIGGER} AFTER DELETE ON notifications "
            "WHEN old.id > (SELECT last_deleted_id FROM notification_id_floor WHERE id = 1) "
            "BEGIN UPDATE notification_id_floor SET last_deleted_id = old.id WHERE id = 1; END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    op.drop_table("notification_id_floor")
