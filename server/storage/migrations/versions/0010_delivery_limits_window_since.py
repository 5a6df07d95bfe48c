"""delivery_limits.minute_since: when the account's current minute window was rolled over

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 10:40:00.000000

A call taken before the roll-over can be answered after it; its answer tells the old window's
budget and reset, which must not end the new window early (server/storage/limits.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "delivery_limits", sa.Column("minute_since", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("delivery_limits", "minute_since")
