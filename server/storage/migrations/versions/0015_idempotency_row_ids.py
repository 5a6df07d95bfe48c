"""idempotency_keys: the ledger rows a reservation's request inserted

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 09:00:00.000000

A key is reserved in the transaction that inserts the send's rows; `row_ids` names those
rows (in the order of the request's items), written by the same INSERT. When the request
that reserved the key can no longer be running (its process was killed before it stored an
answer), the next request with the key and body answers from these rows instead of waiting
for an answer that never comes (docs/scaling-out.md, "Idempotency-Key on our send routes").
Reservations made before this migration have none: such a key is refused until it expires.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.add_column(sa.Column("row_ids", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("row_ids")
