"""notifications: the error of every failed delivery attempt (contract §11)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 14:00:00.000000

`last_error` keeps only the latest error; `attempt_errors` lists each failed attempt's
(`attempt`, `at`, `code`, `message`, `monday_request_id`), the latest 20, appended by the
same UPDATE that records the outcome (storage/notifications/attempt_errors.py). Existing
rows start with none (NULL reads as an empty list).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("attempt_errors", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("attempt_errors")
