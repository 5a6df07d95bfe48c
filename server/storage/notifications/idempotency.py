"""Statements on `idempotency_keys`: reserve a key, read it, keep the answer, forget it.

The rules (the replay window, who waits for whom, which answers are kept) live in
`notifications/idempotency.py`; the primary key makes a reservation atomic.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import utcnow
from server.notifications.model import IdempotencyRecord
from server.storage.db import read, write
from server.storage.tables import idempotency_keys

c = idempotency_keys.c


def _where(account_id: str, user_id: str, key: str) -> Any:
    return and_(c.account_id == account_id, c.user_id == user_id, c.key == key)


class SqlIdempotencyKeys:
    """The `idempotency_keys` statements over one SQLAlchemy engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def reserve(self, account_id: str, user_id: str, key: str, digest: str) -> bool:
        """Insert the key row; False if it exists already (someone else holds the key)."""
        statement = insert(idempotency_keys).values(
            account_id=account_id,
            user_id=user_id,
            key=key,
            body_digest=digest,
            created_at=utcnow(),
        )
        try:
            await write(self.engine, lambda connection: connection.execute(statement))
        except IntegrityError:
            return False
        return True

    async def read(self, account_id: str, user_id: str, key: str) -> IdempotencyRecord | None:
        # A plain read: waiting duplicates must not take SQLite's single write lock while
        # they poll.
        statement = select(idempotency_keys).where(_where(account_id, user_id, key))
        row = await read(
            self.engine, lambda connection: connection.execute(statement).mappings().first()
        )
        if row is None:
            return None
        return IdempotencyRecord(
            body_digest=row["body_digest"],
            created_at=row["created_at"],
            response_status=row["response_status"],
            response_body=row["response_body"],
            row_ids=None if row["row_ids"] is None else tuple(int(i) for i in row["row_ids"]),
        )

    async def forget(self, account_id: str, user_id: str, key: str) -> None:
        """Give the key back (its 24 hours are over)."""
        statement = delete(idempotency_keys).where(_where(account_id, user_id, key))
        await write(self.engine, lambda connection: connection.execute(statement))

    async def keep_answer(
        self, account_id: str, user_id: str, key: str, status: int, body: Any
    ) -> bool:
        """Store the first answer, replayed to later requests with the key; False if there
        is no key row to keep it on (the request ended before reserving it)."""
        statement = (
            update(idempotency_keys)
            .where(_where(account_id, user_id, key), c.response_status.is_(None))
            .values(response_status=status, response_body=body)
        )
        count = await write(self.engine, lambda connection: connection.execute(statement).rowcount)
        return bool(count)

    async def keep_new_answer(
        self, account_id: str, user_id: str, key: str, digest: str, status: int, body: Any
    ) -> None:
        """Reserve the key with its answer at once (a request that wrote no rows: a refusal,
        invalid input). If a concurrent duplicate took the key meanwhile, its answer stands."""
        statement = insert(idempotency_keys).values(
            account_id=account_id,
            user_id=user_id,
            key=key,
            body_digest=digest,
            created_at=utcnow(),
            response_status=status,
            response_body=body,
        )
        with contextlib.suppress(IntegrityError):
            await write(self.engine, lambda connection: connection.execute(statement))
