"""install and uninstall are ordered among themselves, not behind subscription events

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-29 09:00:00.000000

`installations.install_event_at` is the `data.timestamp` of the newest `install` or
`uninstall` applied to the account. Until now one watermark (`last_event_at`) ordered every
event, so a subscription event that arrived before an older `uninstall` (or a reinstall by
another admin) made that event stale: the account stayed installed with its credentials.
Rows that exist start with their `last_event_at`: for what was applied before, the order
they were applied in stays the same.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("install_event_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute("UPDATE installations SET install_event_at = last_event_at")


def downgrade() -> None:
    with op.batch_alter_table("installations", schema=None) as batch_op:
        batch_op.drop_column("install_event_at")
