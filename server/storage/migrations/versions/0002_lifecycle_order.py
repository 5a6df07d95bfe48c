"""lifecycle events applied in monday's order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 12:00:00

`installations.last_event_at` is the `data.timestamp` of the newest lifecycle event
applied to the account; `lifecycle_events.applied` is False for an event recorded but not
applied because it was older (contract §10). Existing rows keep NULL: no order known yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('lifecycle_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('applied', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('lifecycle_events', schema=None) as batch_op:
        batch_op.drop_column('applied')
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_column('last_event_at')
