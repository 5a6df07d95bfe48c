"""the ledger's nullable JSON columns hold SQL NULL for "none", never the JSON text `null`

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 06:50:00.000000

SQLAlchemy's JSON type stores Python None as the JSON text `null` unless told otherwise, so
every sent row's `last_error` was `null` and `aggregate[count]=last_error` counted rows with no
error. The columns are `JSON(none_as_null=True)` now (storage/tables.py `NullableJSON`); this
turns what is stored into SQL NULL. No index holds these columns: the UPDATE rewrites the rows
only.
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = ("last_error", "attempt_errors", "delivery_request_rows")


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(
            f"UPDATE notifications SET {column} = NULL WHERE CAST({column} AS TEXT) = 'null'"
        )


def downgrade() -> None:
    # SQL NULL reads back as None as the JSON text did: nothing to restore.
    pass
