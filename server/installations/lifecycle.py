"""monday's app lifecycle webhooks (contract §4, §10; monday-platform.md §4).

Every event is recorded once, keyed by a SHA-256 digest of its canonical JSON body, in
the same transaction that applies it: a replayed delivery inserts nothing and changes
nothing. `install` (re)creates the installation, `uninstall` marks it uninstalled and
deletes every credential of the account, subscription events are kept on the row.

Trust (contract §10): the body is not signed, the token is. An event applies only to the
account its token names (`data.account_id` must equal the token's `accountId`), else 403
and nothing is recorded: recording it would let a forged body occupy the digest of a real
future delivery, which would then be taken for a replay. Events apply in monday's order:
one whose `data.timestamp` is older than the last applied for the account is recorded
(`applied = false`) and changes nothing. An event without a timestamp cannot be placed in
that order: it applies only while no timestamped event has been applied to the account.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema, field_validator
from sqlalchemy import and_, delete, or_, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from server.errors import forbidden
from server.ids import MONDAY_ID_SCHEMA, monday_id
from server.installations.store import (
    Installation,
    delete_account_credentials,
    dialect_insert,
    read_installation,
    upsert_installation,
    utcnow,
)
from server.sender import DEFAULT_POLICY
from server.storage.tables import credentials, installations, lifecycle_events, oauth_states

log = logging.getLogger(__name__)

EventType = Literal[
    "install",
    "uninstall",
    "app_subscription_created",
    "app_subscription_changed",
    "app_subscription_renewed",
    "app_subscription_cancelled_by_user",
    "app_subscription_cancelled",
    "app_subscription_cancellation_revoked_by_user",
    "app_subscription_renewal_attempt_failed",
    "app_subscription_renewal_failed",
    "app_trial_subscription_started",
    "app_trial_subscription_ended",
    "app_subscription_pricing_version_change_scheduled",
]


_OPTIONAL_ID_SCHEMA: dict[str, object] = {"anyOf": [MONDAY_ID_SCHEMA, {"type": "null"}]}


def _optional_id(value: object) -> str | None:
    return None if value is None else monday_id(value)


def _timestamp(value: object) -> datetime | None:
    """monday's `data.timestamp` (ISO 8601, e.g. `2026-07-01T10:00:00.000+00:00`), in UTC."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an ISO 8601 date-time")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "zZ" else text)
    except ValueError:
        raise ValueError("must be an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # monday sends an offset; a bare time is UTC
    return parsed.astimezone(UTC)


def _short(value: object, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit]


class LifecycleData(BaseModel):
    """The `data` object monday sends; unknown fields are kept (they are recorded)."""

    model_config = ConfigDict(extra="allow")

    account_id: Annotated[str, WithJsonSchema(MONDAY_ID_SCHEMA)]
    app_id: Annotated[str | None, WithJsonSchema(_OPTIONAL_ID_SCHEMA)] = None
    user_id: Annotated[str | None, WithJsonSchema(_OPTIONAL_ID_SCHEMA)] = None
    user_name: str | None = None
    user_email: str | None = None
    account_name: str | None = None
    account_slug: str | None = None
    account_tier: str | None = None
    account_max_users: int | None = None
    version_data: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None
    timestamp: datetime | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, value: object) -> str:
        if value is None:
            raise ValueError("is required (the monday account id)")
        return monday_id(value)

    @field_validator("app_id", "user_id", mode="before")
    @classmethod
    def _ids(cls, value: object) -> str | None:
        return _optional_id(value)

    @field_validator("timestamp", mode="before")
    @classmethod
    def _when(cls, value: object) -> datetime | None:
        return _timestamp(value)

    @field_validator(
        "user_name", "user_email", "account_name", "account_slug", "account_tier", mode="before"
    )
    @classmethod
    def _text(cls, value: object) -> str | None:
        return None if value is None else str(value)


class LifecycleEvent(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: EventType
    data: LifecycleData


@dataclass(frozen=True, slots=True)
class LifecycleOutcome:
    type: str
    account_id: str
    replayed: bool
    # False when the event is older than one already applied (recorded, changed nothing).
    applied: bool


def event_digest(body: Any) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces): same delivery, same digest."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _account_values(data: LifecycleData) -> dict[str, Any]:
    """Account facts present in this event (absent ones leave the stored value alone)."""
    values: dict[str, Any] = {}
    if data.app_id is not None:
        values["app_id"] = data.app_id
    if data.account_name is not None:
        values["account_name"] = _short(data.account_name, 255)
    if data.account_slug is not None:
        values["account_slug"] = _short(data.account_slug, 255)
    if data.account_tier is not None:
        values["account_tier"] = _short(data.account_tier, 64)
    if data.account_max_users is not None:
        values["account_max_users"] = data.account_max_users
    if data.version_data is not None:
        values["version"] = data.version_data
    if data.subscription is not None:
        values["subscription"] = data.subscription
    return values


def check_account_binding(event: LifecycleEvent, token_account_id: str) -> None:
    """403 unless the event is about the account the token was signed for (contract §10)."""
    if event.data.account_id != token_account_id:
        log.warning(
            "lifecycle event refused: its account is not the token's",
            extra={"fields": {"event_type": event.type, "event_account_id": event.data.account_id}},
        )
        raise forbidden("This lifecycle event names another account than its token.")


async def _take_turn(
    conn: AsyncConnection, account_id: str, when: datetime | None, now: datetime
) -> bool:
    """Whether the event is not older than the last applied one; if so it is now the last.

    One conditional UPDATE decides, so two deliveries racing for the same account are
    ordered by the row lock (PostgreSQL re-checks the condition after waiting for it;
    SQLite runs one writing transaction at a time).
    """
    ensure = dialect_insert(conn, installations).values(
        account_id=account_id,
        installed=False,
        sender_policy=DEFAULT_POLICY,
        updated_at=now,
    )
    await conn.execute(ensure.on_conflict_do_nothing(index_elements=["account_id"]))
    last = installations.c.last_event_at
    condition: ColumnElement[bool] = last.is_(None)
    values: dict[str, Any] = {"updated_at": now}
    if when is not None:
        condition = or_(condition, last <= when)
        values = {"last_event_at": when, "updated_at": now}
    result = await conn.execute(
        update(installations)
        .where(and_(installations.c.account_id == account_id, condition))
        .values(**values)
    )
    return result.rowcount == 1


async def handle_lifecycle_event(
    engine: AsyncEngine,
    body: dict[str, Any],
    event: LifecycleEvent,
    *,
    token_account_id: str,
    now: datetime | None = None,
) -> LifecycleOutcome:
    """Record and apply one event; a replay (same body) is acknowledged and changes nothing.

    Raises 403 `FORBIDDEN` (nothing recorded) when the event names another account than
    the token (`token_account_id`, already verified by `verify_lifecycle`).
    """
    check_account_binding(event, token_account_id)
    now = now or utcnow()
    data = event.data
    account_id = data.account_id
    async with engine.begin() as conn:
        recorded = await conn.execute(
            dialect_insert(conn, lifecycle_events)
            .values(
                digest=event_digest(body),
                account_id=account_id,
                type=event.type,
                data=body.get("data"),
                received_at=now,
                applied=True,
            )
            .on_conflict_do_nothing(index_elements=["digest"])
        )
        if recorded.rowcount != 1:
            return LifecycleOutcome(event.type, account_id, replayed=True, applied=False)

        existing = await read_installation(conn, account_id)
        if not await _take_turn(conn, account_id, data.timestamp, now):
            await conn.execute(
                update(lifecycle_events)
                .where(lifecycle_events.c.digest == event_digest(body))
                .values(applied=False)
            )
            log.info(
                "lifecycle event older than the last applied one: recorded, not applied",
                extra={"fields": {"event_type": event.type}},
            )
            return LifecycleOutcome(event.type, account_id, replayed=False, applied=False)
        await _apply(conn, event, existing, now)
    return LifecycleOutcome(event.type, account_id, replayed=False, applied=True)


async def _apply(
    conn: AsyncConnection, event: LifecycleEvent, existing: Installation | None, now: datetime
) -> None:
    data = event.data
    account_id = data.account_id
    values = _account_values(data)
    values["last_event_type"] = event.type
    if existing is None:
        values["sender_policy"] = DEFAULT_POLICY

    if event.type == "install":
        values.update(
            installed=True,
            installed_at=now,
            uninstalled_at=None,
            installer_user_id=data.user_id,
            installer_name=_short(data.user_name, 255),
            installer_email=_short(data.user_email, 320),
        )
        # The API key is the installing user's personal token: once someone else (or, if
        # monday named nobody, no one) is the installer, a former installer's key has no
        # owner it may be used for, so it is deleted rather than left for the new one.
        stale = and_(credentials.c.account_id == account_id, credentials.c.kind == "api_key")
        if data.user_id is not None:
            stale = and_(stale, credentials.c.user_id != data.user_id)
        await conn.execute(delete(credentials).where(stale))
    elif event.type == "uninstall":
        values.update(installed=False, uninstalled_at=now)
        await delete_account_credentials(conn, account_id)
        await conn.execute(delete(oauth_states).where(oauth_states.c.account_id == account_id))
    elif existing is None:
        # A subscription event for an account whose install we never saw: it has the
        # app, and monday names the account's first admin as the user.
        values.update(
            installed=True,
            installed_at=now,
            installer_user_id=data.user_id,
            installer_name=_short(data.user_name, 255),
            installer_email=_short(data.user_email, 320),
        )
    await upsert_installation(conn, account_id, values, now=now)
