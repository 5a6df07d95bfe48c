"""The `installations` and `lifecycle_events` tables (the `InstallationStore` port).

Everything here runs on SQLite and PostgreSQL: upserts use each dialect's own
`INSERT ... ON CONFLICT`, which both spell the same way in SQLAlchemy. Every statement
that changes an account's row also adds 1 to its `revision`, in the same transaction:
that is what another instance's cache compares (see `installations/facts.py`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, and_, delete, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from server.clock import utcnow
from server.installations.model import Installation, SettingsChange, may_claim_installer
from server.installations.ports import AccountChanges, LifecycleChange, LifecycleResult
from server.sender import DEFAULT_POLICY, SenderPolicy
from server.storage.db import read
from server.storage.tables import credentials, installations, lifecycle_events, oauth_states

NEXT_REVISION = installations.c.revision + 1


def dialect_insert(conn: AsyncConnection, table: Any) -> Any:
    """The dialect's INSERT supporting ON CONFLICT (SQLite and PostgreSQL only)."""
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect: {name}")


def _installation(row: Row[Any]) -> Installation:
    m = row._mapping
    return Installation(
        account_id=m["account_id"],
        installed=bool(m["installed"]),
        installer_user_id=m["installer_user_id"],
        sender_policy=m["sender_policy"] or DEFAULT_POLICY,
        app_id=m["app_id"],
        installer_name=m["installer_name"],
        installer_email=m["installer_email"],
        account_name=m["account_name"],
        account_slug=m["account_slug"],
        account_tier=m["account_tier"],
        account_max_users=m["account_max_users"],
        version=m["version"],
        subscription=m["subscription"],
        last_event_type=m["last_event_type"],
        last_event_at=m["last_event_at"],
        installed_at=m["installed_at"],
        uninstalled_at=m["uninstalled_at"],
        updated_at=m["updated_at"],
        revision=int(m["revision"]),
        quiet_hours_start=m["quiet_hours_start"],
        quiet_hours_end=m["quiet_hours_end"],
        digest_window_seconds=int(m["digest_window_seconds"] or 0),
    )


async def read_installation(conn: AsyncConnection, account_id: str) -> Installation | None:
    row = (
        await conn.execute(select(installations).where(installations.c.account_id == account_id))
    ).first()
    return _installation(row) if row is not None else None


async def upsert_installation(
    conn: AsyncConnection, account_id: str, values: Mapping[str, Any], *, now: datetime
) -> None:
    """Create the account's row with `values` or update only those columns (and bump it)."""
    values = {**values, "updated_at": now}
    stmt = dialect_insert(conn, installations).values(account_id=account_id, **values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["account_id"], set_={**values, "revision": NEXT_REVISION}
    )
    await conn.execute(stmt)


async def bump_revision(conn: AsyncConnection, account_id: str) -> None:
    """Mark the account's facts changed (in the caller's transaction).

    An account without an installation row has no revision: caches never keep its facts
    past one check (see `installations/facts.py`), so there is nothing to bump.
    """
    await conn.execute(
        update(installations)
        .where(installations.c.account_id == account_id)
        .values(revision=NEXT_REVISION)
    )


class SqlInstallations:
    """`InstallationStore` over SQLAlchemy; tells `changes` after each committed write."""

    def __init__(self, engine: AsyncEngine, changes: AccountChanges | None = None) -> None:
        self.engine = engine
        self.changes = changes or AccountChanges()

    async def get(self, account_id: str) -> Installation | None:
        """The account's installation, or None when monday never told us about it."""
        async with self.engine.connect() as conn:
            return await read_installation(conn, account_id)

    async def revision(self, account_id: str) -> int | None:
        # Read before every send decision and delivery attempt (installations/facts.py): on
        # the dedicated reader connection, one call into its thread, not aiosqlite's several.
        statement = select(installations.c.revision).where(installations.c.account_id == account_id)
        value = await read(self.engine, lambda conn: conn.execute(statement).scalar())
        return None if value is None else int(value)

    async def set_sender_policy(
        self, account_id: str, policy: SenderPolicy, *, now: datetime | None = None
    ) -> Installation:
        """Store the policy; an account we never heard of gets a row that is not installed."""
        return await self.change_settings(account_id, SettingsChange(sender_policy=policy), now=now)

    async def change_settings(
        self, account_id: str, change: SettingsChange, *, now: datetime | None = None
    ) -> Installation:
        """Apply `PATCH /installation`'s keys in one transaction (bumping the revision); an
        account we never heard of gets a row that is not installed."""
        now = now or utcnow()
        async with self.engine.begin() as conn:
            existing = await read_installation(conn, account_id)
            values = change.columns()
            if existing is None:
                values["installed"] = False
            await upsert_installation(conn, account_id, values, now=now)
            result = await read_installation(conn, account_id)
        self.changes.changed(account_id)
        assert result is not None
        return result

    async def claim_installer(
        self, account_id: str, user_id: str, *, now: datetime | None = None
    ) -> Installation:
        """Record `user_id` as the installer if the account may still be claimed.

        Returns the installation afterwards; its `installer_user_id` says who won if two
        admins raced (the conditional UPDATE lets only one of them set it).
        """
        now = now or utcnow()
        async with self.engine.begin() as conn:
            existing = await read_installation(conn, account_id)
            if existing is None:
                stmt = dialect_insert(conn, installations).values(
                    account_id=account_id,
                    installer_user_id=user_id,
                    installed=True,
                    installed_at=now,
                    sender_policy=DEFAULT_POLICY,
                    updated_at=now,
                )
                await conn.execute(stmt.on_conflict_do_nothing(index_elements=["account_id"]))
            elif may_claim_installer(existing):
                await conn.execute(
                    update(installations)
                    .where(
                        and_(
                            installations.c.account_id == account_id,
                            installations.c.installer_user_id.is_(None),
                            installations.c.last_event_type.is_(None),
                        )
                    )
                    .values(
                        installer_user_id=user_id,
                        installed=True,
                        installed_at=now,
                        updated_at=now,
                        revision=NEXT_REVISION,
                    )
                )
            result = await read_installation(conn, account_id)
        self.changes.changed(account_id)
        assert result is not None
        return result

    async def record_lifecycle(self, change: LifecycleChange) -> LifecycleResult:
        """Record the event once and, if it is not older than the last one, apply it.

        An `install` or `uninstall` is compared with the last of those (its installed state
        and credentials), and with the last event of any kind for the account's facts it
        carries; a subscription event with the last event of any kind (contract §10,
        docs/security.md "Ordering rule"). One transaction: the record, the ordering checks
        and the changes commit together.
        """
        async with self.engine.begin() as conn:
            recorded = await conn.execute(
                dialect_insert(conn, lifecycle_events)
                .values(
                    digest=change.digest,
                    account_id=change.account_id,
                    type=change.event_type,
                    data=change.data,
                    received_at=change.now,
                    applied=True,
                )
                .on_conflict_do_nothing(index_elements=["digest"])
            )
            if recorded.rowcount != 1:
                return LifecycleResult.REPLAYED
            existing = await read_installation(conn, change.account_id)
            await _ensure_row(conn, change.account_id, change.now)
            applied = change.installation is None or await _take_turn(
                conn,
                change.account_id,
                installations.c.install_event_at,
                change.timestamp,
                change.now,
            )
            # A stale install or uninstall takes no turn on the facts: they are older still
            # (the install watermark never passes the facts' one).
            facts_applied = applied and await _take_turn(
                conn, change.account_id, installations.c.last_event_at, change.timestamp, change.now
            )
            if change.installation is None:
                applied = facts_applied
            if not applied:
                await conn.execute(
                    update(lifecycle_events)
                    .where(lifecycle_events.c.digest == change.digest)
                    .values(applied=False)
                )
                return LifecycleResult.STALE
            await _apply(conn, change, new=existing is None, facts=facts_applied)
        self.changes.changed(change.account_id)
        return LifecycleResult.APPLIED


async def _ensure_row(conn: AsyncConnection, account_id: str, now: datetime) -> None:
    ensure = dialect_insert(conn, installations).values(
        account_id=account_id,
        installed=False,
        sender_policy=DEFAULT_POLICY,
        updated_at=now,
    )
    await conn.execute(ensure.on_conflict_do_nothing(index_elements=["account_id"]))


async def _take_turn(
    conn: AsyncConnection, account_id: str, watermark: Any, when: datetime | None, now: datetime
) -> bool:
    """Whether the event is not older than `watermark` (the newest applied event of its
    kind); if so it is now that newest one.

    An event with no timestamp takes a turn only while no timestamped event of any kind was
    applied (`last_event_at` is NULL). One conditional UPDATE decides, so two deliveries
    racing for the same account are ordered by the row lock (PostgreSQL re-checks the
    condition after waiting for it; SQLite runs one writing transaction at a time).
    """
    condition: ColumnElement[bool] = installations.c.last_event_at.is_(None)
    values: dict[str, Any] = {"updated_at": now}
    if when is not None:
        condition = or_(watermark.is_(None), watermark <= when)
        values[watermark.name] = when
    result = await conn.execute(
        update(installations)
        .where(and_(installations.c.account_id == account_id, condition))
        .values(**values)
    )
    return result.rowcount == 1


async def _apply(conn: AsyncConnection, change: LifecycleChange, *, new: bool, facts: bool) -> None:
    account_id = change.account_id
    if change.drop == "api_keys_of_others":
        stale = and_(credentials.c.account_id == account_id, credentials.c.kind == "api_key")
        if change.keep_user_id is not None:
            stale = and_(stale, credentials.c.user_id != change.keep_user_id)
        await conn.execute(delete(credentials).where(stale))
    elif change.drop == "everything":
        await conn.execute(delete(credentials).where(credentials.c.account_id == account_id))
        await conn.execute(delete(oauth_states).where(oauth_states.c.account_id == account_id))
    values = {
        **(change.facts if facts else {}),
        **(change.installation or {}),
        **(change.values_if_new if new else {}),
    }
    await upsert_installation(conn, account_id, values, now=change.now)
