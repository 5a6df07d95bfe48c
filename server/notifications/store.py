"""Ledger rows for the send path: insert before calling monday, then record each outcome."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from server.notifications.inputs import NotificationInput
from server.sender import SenderDecision
from server.storage.tables import notifications, sender_audit


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    account_id: str
    user_id: str
    surface: str
    send_as_hint: str | None
    policy: str | None
    outcome: str
    reason: str
    decision: SenderDecision | None = None


async def insert_rows(
    connection: AsyncConnection,
    *,
    account_id: str,
    sender: str,
    items: Sequence[NotificationInput],
    decisions: Sequence[SenderDecision],
    idempotency_key: str | None,
    lease_owner: str | None = None,
    lease_seconds: int = 60,
) -> list[int]:
    """Write the rows (status `queued` or `awaiting_client`) and return their ids in order.

    With `lease_owner`, rows the server sends are written already leased to the caller, so
    the background worker cannot take them before the request's own first attempt.
    """
    now = utcnow()
    lease_expires_at = now + timedelta(seconds=lease_seconds)
    ids: list[int] = []
    for item, decision in zip(items, decisions, strict=True):
        seamless = decision.transport == "seamless"
        result = await connection.execute(
            insert(notifications)
            .values(
                timestamp=now,
                status="inbox",
                recipient=item.recipient,
                sender=sender,
                subject=item.subject,
                message=item.message,
                collection=item.collection,
                item=item.item,
                account_id=account_id,
                sent_as=decision.sent_as,
                transport=decision.transport,
                credential_owner=decision.credential_owner,
                delivery_status="awaiting_client" if seamless else "queued",
                attempts=0,
                next_attempt_at=None if seamless else now,
                idempotency_key=idempotency_key,
                lease_owner=None if seamless else lease_owner,
                lease_expires_at=None if seamless or lease_owner is None else lease_expires_at,
            )
            .returning(notifications.c.id)
        )
        ids.append(int(result.scalar_one()))
    return ids


async def write_audit(
    connection: AsyncConnection, entry: AuditEntry, notification_id: int | None = None
) -> None:
    """One audit row per decision (who asked, which credential, why), refusals included."""
    decision = entry.decision
    await connection.execute(
        insert(sender_audit).values(
            at=utcnow(),
            account_id=entry.account_id,
            user_id=entry.user_id,
            surface=entry.surface,
            send_as_hint=entry.send_as_hint,
            policy=entry.policy,
            outcome=entry.outcome,
            sent_as=decision.sent_as if decision else None,
            transport=decision.transport if decision else None,
            credential_owner=decision.credential_owner if decision else None,
            reason=entry.reason,
            notification_id=notification_id,
        )
    )


async def fetch_rows(engine: AsyncEngine, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Rows by id, in the order of `ids`."""
    if not ids:
        return []
    async with engine.connect() as connection:
        result = await connection.execute(select(notifications).where(notifications.c.id.in_(ids)))
        by_id = {row["id"]: dict(row) for row in result.mappings()}
    return [by_id[i] for i in ids if i in by_id]


async def fetch_row(engine: AsyncEngine, row_id: int) -> dict[str, Any] | None:
    rows = await fetch_rows(engine, [row_id])
    return rows[0] if rows else None


async def record_relay(
    engine: AsyncEngine,
    row_id: int,
    *,
    ok: bool,
    monday_id: str | None,
    error: dict[str, Any] | None,
) -> bool:
    """Move an `awaiting_client` row to `sent`/`failed`; False when it was not awaiting."""
    values: dict[str, Any] = {"attempts": notifications.c.attempts + 1}
    if ok:
        values.update(
            delivery_status="sent", sent_at=utcnow(), monday_id=monday_id, last_error=None
        )
    else:
        values.update(delivery_status="failed", last_error=error)
    async with engine.begin() as connection:
        result = await connection.execute(
            update(notifications)
            .where(
                notifications.c.id == row_id, notifications.c.delivery_status == "awaiting_client"
            )
            .values(**values)
        )
    return bool(result.rowcount)
