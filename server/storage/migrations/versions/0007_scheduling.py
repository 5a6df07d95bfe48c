"""scheduling: send later, quiet hours, digests, mutes (contract §12)

Revision ID: 0007
Revises: 0004
Create Date: 2026-11-28

New ledger columns `send_at`, `urgent`, `digest_id`, `deferred_reason`; per-account
`quiet_hours_start`/`quiet_hours_end` and `digest_window_seconds`; the `mutes` table.
Scheduled rows wait as `scheduled` with `next_attempt_at` = when they are due, so the
existing `ix_notifications_due` (delivery_status, next_attempt_at) is the index the
scheduler reads due rows from; `ix_notifications_digest` finds a digest's rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("urgent", sa.Boolean(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("digest_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("deferred_reason", sa.String(24), nullable=True))
        batch_op.create_index("ix_notifications_digest", ["digest_id"], unique=False)
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quiet_hours_start", sa.String(5), nullable=True))
        batch_op.add_column(sa.Column("quiet_hours_end", sa.String(5), nullable=True))
        batch_op.add_column(
            sa.Column("digest_window_seconds", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "mutes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        # "" = everything from this app; else "<collection>:<item>".
        sa.Column("target_key", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(16), nullable=True),
        sa.Column("item", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mutes")),
        sa.UniqueConstraint("account_id", "user_id", "target_key", name="uq_mutes_user_target"),
    )


def downgrade() -> None:
    op.drop_table("mutes")
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.drop_column("digest_window_seconds")
        batch_op.drop_column("quiet_hours_end")
        batch_op.drop_column("quiet_hours_start")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_notifications_digest")
        batch_op.drop_column("deferred_reason")
        batch_op.drop_column("digest_id")
        batch_op.drop_column("urgent")
        batch_op.drop_column("send_at")
