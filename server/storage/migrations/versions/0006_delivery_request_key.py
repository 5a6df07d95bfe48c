"""notifications: the monday request a row was last sent in (contract §11)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 12:00:00.000000

A row that ends `unknown` is retried with the *same* request and `Idempotency-Key`, so the
request is remembered on its rows: the key, the ids of the batch in alias order (the document
is rebuilt from those rows), and when the key was first sent (the retry window's start).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("delivery_request_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("delivery_request_rows", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("delivery_request_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch.create_index(
            "ix_notifications_delivery_request_key", ["delivery_request_key"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_index("ix_notifications_delivery_request_key")
        batch.drop_column("delivery_request_at")
        batch.drop_column("delivery_request_rows")
        batch.drop_column("delivery_request_key")
