"""monday's app lifecycle webhooks (contract §4, monday-platform.md §4).

Every event is recorded once, keyed by a SHA-256 digest of its canonical JSON body, in
the same transaction that applies it: a replayed delivery inserts nothing and changes
nothing. `install` (re)creates the installation, `uninstall` marks it uninstalled and
deletes every credential of the account, subscription events are kept on the row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import and_, delete
from sqlalchemy.ext.asyncio import AsyncEngine

from server.installations.store import (
    delete_account_credentials,
    dialect_insert,
    read_installation,
    upsert_installation,
    utcnow,
)
from server.sender import DEFAULT_POLICY
from server.storage.tables import credentials, lifecycle_events, oauth_states

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


def _monday_id(value: object) -> str | None:
    """monday ids arrive as numbers or numeric strings."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("must be a monday id (a number)")
    if isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip().isdigit():
        return value.strip()
    raise ValueError("must be a monday id (a number)")


def _short(value: object, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text[:limit]


class LifecycleData(BaseModel):
    """The `data` object monday sends; unknown fields are kept (they are recorded)."""

    model_config = ConfigDict(extra="allow")

    account_id: str
    app_id: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    user_email: str | None = None
    account_name: str | None = None
    account_slug: str | None = None
    account_tier: str | None = None
    account_max_users: int | None = None
    version_data: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None

    @field_validator("account_id", mode="before")
    @classmethod
    def _account(cls, value: object) -> str:
        parsed = _monday_id(value)
        if parsed is None:
            raise ValueError("is required (the monday account id)")
        return parsed

    @field_validator("app_id", "user_id", mode="before")
    @classmethod
    def _ids(cls, value: object) -> str | None:
        return _monday_id(value)

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


async def handle_lifecycle_event(
    engine: AsyncEngine, body: dict[str, Any], event: LifecycleEvent, *, now: datetime | None = None
) -> LifecycleOutcome:
    """Record and apply one event; a replay (same body) is acknowledged and changes nothing."""
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
            )
            .on_conflict_do_nothing(index_elements=["digest"])
        )
        if recorded.rowcount != 1:
            return LifecycleOutcome(type=event.type, account_id=account_id, replayed=True)

        existing = await read_installation(conn, account_id)
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
            if data.user_id is not None:
                # The API key is the installing user's personal token: a former installer's
                # key has no business staying stored once someone else installed.
                await conn.execute(
                    delete(credentials).where(
                        and_(
                            credentials.c.account_id == account_id,
                            credentials.c.kind == "api_key",
                            credentials.c.user_id != data.user_id,
                        )
                    )
                )
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
    return LifecycleOutcome(type=event.type, account_id=account_id, replayed=False)
