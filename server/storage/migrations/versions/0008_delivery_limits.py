"""delivery_limits: monday's limits as the whole deployment sees them (contract §11)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 13:00:00.000000

Several instances on one PostgreSQL database share one view of each account's monday budget
and pauses, and of each user's send-rate bucket (server/storage/limits.py), so together they
stay under monday's limits and the per-user rate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_limits",
        sa.Column("scope", sa.String(160), primary_key=True),
        sa.Column("paused_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pause_code", sa.String(64), nullable=True),
        sa.Column("pause_message", sa.String(300), nullable=True),
        sa.Column("minute_quota", sa.Integer(), nullable=True),
        sa.Column("minute_left", sa.Integer(), nullable=True),
        sa.Column("minute_reset", sa.DateTime(timezone=True), nullable=True),
        sa.Column("probe_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tokens", sa.Float(), nullable=True),
        sa.Column("tokens_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("delivery_limits")
