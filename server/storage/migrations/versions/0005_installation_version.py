"""installations.revision: a per-account change counter for caches across instances

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 12:00:00.000000

Every change to an account's installation or credentials adds 1 to it in the same
transaction; an instance that caches those facts (server/installations/facts.py) reads it
by primary key before each send and reloads when it moved. (`installations.version` is
already monday's app version data, hence the name.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.add_column(
            sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    with op.batch_alter_table("installations") as batch:
        batch.drop_column("revision")
