"""oauth_states: the PKCE code verifier, encrypted

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a state made before this revision had no challenge in its authorize URL.
    with op.batch_alter_table("oauth_states") as batch:
        batch.add_column(sa.Column("code_verifier_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("oauth_states") as batch:
        batch.drop_column("code_verifier_encrypted")
