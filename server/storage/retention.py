"""Purge the data of accounts that stay uninstalled (contract §10, monday's marketplace rule).

monday requires an app to delete an account's data within 10 days of the uninstall. An account
uninstalled for at least `UNINSTALL_RETENTION_DAYS` (default 10) loses, in this order:

- its sender audit entries, ledger rows (`notifications`), idempotency records and mutes;
- any credential or OAuth state left (the uninstall already deleted them; belt and braces);
- what its lifecycle events said (`lifecycle_events.data`: monday's payload, with the
  installing user's name, e-mail and country), emptied to `{}`;
- the installer's name and e-mail on the installation record.

Kept: the installation record itself (account id, installed flag, `uninstalled_at`, last
event, policy), because lifecycle handling needs it, and each lifecycle event's digest, type
and times (the digest makes a replayed webhook change nothing; nothing reads `data`). A
reinstall before the deadline clears `uninstalled_at`, so nothing of that account is purged.

Every delete is a short transaction of at most `batch_size` rows, and each one re-checks that
the account is still uninstalled past the deadline, so a reinstall during a purge stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    String,
    Table,
    and_,
    cast,
    delete,
    exists,
    false,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Executable

from server.clock import utcnow
from server.installations.ports import AccountChanges
from server.storage.installations.accounts import NEXT_REVISION
from server.storage.tables import (
    credentials,
    idempotency_keys,
    installations,
    lifecycle_events,
    mutes,
    notifications,
    oauth_states,
    sender_audit,
)

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500
DEFAULT_MAX_ACCOUNTS = 50
# Purged per account, in this order (audit entries reference ledger rows).
PURGED: tuple[Table, ...] = (
    sender_audit,
    notifications,
    idempotency_keys,
    mutes,  # contract §12: the account's users' mutes
    credentials,
    oauth_states,
)


# What a purged lifecycle event keeps of its payload (as JSON text, to find those left).
EMPTIED: dict[str, object] = {}
_EMPTIED_TEXT = "{}"


@dataclass
class PurgeReport:
    accounts: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)


def _expired(account_id: str | None, cutoff: datetime) -> ColumnElement[bool]:
    """The account is uninstalled, and was so before `cutoff`."""
    condition = and_(
        installations.c.installed == false(),
        installations.c.uninstalled_at.is_not(None),
        installations.c.uninstalled_at <= cutoff,
    )
    if account_id is not None:
        condition = and_(installations.c.account_id == account_id, condition)
    return condition


def _has_data() -> ColumnElement[bool]:
    """Something of the account is left to purge (so a purged account is not visited again)."""
    account = installations.c.account_id
    left = [exists().where(table.c.account_id == account) for table in PURGED]
    return or_(
        *left,
        exists().where(lifecycle_events.c.account_id == account, _event_not_emptied()),
        installations.c.installer_name.is_not(None),
        installations.c.installer_email.is_not(None),
    )


def _event_not_emptied() -> ColumnElement[bool]:
    # As text: PostgreSQL's `json` has no equality operator (the stored text is what was sent).
    return cast(lifecycle_events.c.data, String) != _EMPTIED_TEXT


async def _in_batches(engine: AsyncEngine, statement: Executable, batch_size: int) -> int:
    """Run `statement` (it changes at most `batch_size` rows) in short transactions until a
    run changes fewer; the rows changed in all."""
    total = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(statement)
        changed = int(result.rowcount or 0)
        total += changed
        if changed < batch_size:
            return total


async def _purge_table(
    engine: AsyncEngine, table: Table, account_id: str, cutoff: datetime, batch_size: int
) -> int:
    """Delete the account's rows of `table`, `batch_size` per short transaction."""
    key = list(table.primary_key.columns)
    target = key[0] if len(key) == 1 else tuple_(*key)
    batch = select(*key).where(table.c.account_id == account_id).limit(batch_size)
    still_expired = exists().where(_expired(account_id, cutoff))
    statement = delete(table).where(target.in_(batch), still_expired)
    return await _in_batches(engine, statement, batch_size)


async def _empty_events(
    engine: AsyncEngine, account_id: str, cutoff: datetime, batch_size: int
) -> int:
    """Empty the payload of the account's lifecycle events, `batch_size` per transaction."""
    events = lifecycle_events.c
    batch = (
        select(events.id)
        .where(events.account_id == account_id, _event_not_emptied())
        .limit(batch_size)
    )
    still_expired = exists().where(_expired(account_id, cutoff))
    statement = (
        update(lifecycle_events).where(events.id.in_(batch), still_expired).values(data=EMPTIED)
    )
    return await _in_batches(engine, statement, batch_size)


async def purge_uninstalled(
    engine: AsyncEngine,
    *,
    retention_days: int,
    now: datetime | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_accounts: int = DEFAULT_MAX_ACCOUNTS,
    changes: AccountChanges | None = None,
) -> PurgeReport:
    """Purge up to `max_accounts` accounts uninstalled for `retention_days` or more.

    Each purged account's revision is bumped and `changes` told, so no cache keeps a
    credential of it (the uninstall already deleted them; this is belt and braces).
    """
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    async with engine.connect() as conn:
        accounts: Sequence[str] = (
            (
                await conn.execute(
                    select(installations.c.account_id)
                    .where(_expired(None, cutoff), _has_data())
                    .order_by(installations.c.uninstalled_at)
                    .limit(max_accounts)
                )
            )
            .scalars()
            .all()
        )
    report = PurgeReport()
    for account_id in accounts:
        for table in PURGED:
            removed = await _purge_table(engine, table, account_id, cutoff, batch_size)
            if removed:
                report.rows[table.name] = report.rows.get(table.name, 0) + removed
        emptied = await _empty_events(engine, account_id, cutoff, batch_size)
        if emptied:
            report.rows["lifecycle_events.data"] = emptied
        async with engine.begin() as conn:
            await conn.execute(
                update(installations)
                .where(_expired(account_id, cutoff))
                .values(installer_name=None, installer_email=None, revision=NEXT_REVISION)
            )
        if changes is not None:
            changes.changed(account_id)
        report.accounts.append(account_id)
    if report.accounts:
        log.info(
            "purged the data of %d account(s) uninstalled for %d days or more",
            len(report.accounts),
            retention_days,
            extra={"fields": {"accounts": report.accounts, "rows": report.rows}},
        )
    return report
