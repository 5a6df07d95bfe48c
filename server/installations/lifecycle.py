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
`install` and `uninstall` are ordered among themselves: a subscription event (which changes
neither the installed state nor the credentials) that arrives before an older `uninstall`
or reinstall does not make it stale; it only keeps that event's account facts (tier,
subscription, ...) from overwriting its own newer ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, WithJsonSchema, field_validator

from server.clock import utcnow
from server.errors import forbidden
from server.ids import MONDAY_ID_SCHEMA, monday_id
from server.installations.ports import (
    CredentialDrop,
    InstallationStore,
    LifecycleChange,
    LifecycleResult,
)
from server.sender import DEFAULT_POLICY

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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00: before the year 1 in UTC
        raise ValueError(
            "must be an ISO 8601 date-time within the years 1 to 9999 in UTC"
        ) from None


# The largest `account_max_users` stored (the column is a 32-bit INTEGER on PostgreSQL).
MAX_USERS_STORED = 2**31 - 1


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
        # Informational: a value no column can hold is stored as unknown rather than refusing
        # the event (an uninstall refused for it would keep every credential).
        in_range = 0 <= data.account_max_users <= MAX_USERS_STORED
        values["account_max_users"] = data.account_max_users if in_range else None
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


def _installer(data: LifecycleData, now: datetime) -> dict[str, Any]:
    return {
        "installed": True,
        "installed_at": now,
        "installer_user_id": data.user_id,
        "installer_name": _short(data.user_name, 255),
        "installer_email": _short(data.user_email, 320),
    }


def change_for(body: dict[str, Any], event: LifecycleEvent, now: datetime) -> LifecycleChange:
    """What applying `event` changes, decided here; the store records and applies it."""
    data = event.data
    facts = _account_values(data)
    facts["last_event_type"] = event.type
    if_new: dict[str, Any] = {"sender_policy": DEFAULT_POLICY}
    installation: dict[str, Any] | None = None
    drop: CredentialDrop = "none"
    installer = _installer(data, now)
    if event.type == "install":
        installation = {**installer, "uninstalled_at": None}
        # The API key is the installing user's personal token: once someone else (or, if
        # monday named nobody, no one) is the installer, a former installer's key has no
        # owner it may be used for, so it is deleted rather than left for the new one.
        drop = "api_keys_of_others"
    elif event.type == "uninstall":
        installation = {"installed": False, "uninstalled_at": now}
        drop = "everything"  # every credential and pending OAuth state of the account
        # An uninstall that arrives before its account's install (which then is stale) still
        # says who installed the app: monday names that admin in both.
        if_new.update(
            {key: value for key, value in installer.items() if key.startswith("installer_")}
        )
    else:
        # A subscription event for an account whose install we never saw: it has the
        # app, and monday names the account's first admin as the user.
        if_new.update(installer)
    return LifecycleChange(
        digest=event_digest(body),
        account_id=data.account_id,
        event_type=event.type,
        data=body.get("data"),
        timestamp=data.timestamp,
        now=now,
        facts=facts,
        installation=installation,
        values_if_new=if_new,
        drop=drop,
        keep_user_id=data.user_id,
    )


@dataclass(frozen=True, slots=True)
class LifecycleService:
    """`POST /monday/lifecycle`: the rules of contract §4 and §10 over the store."""

    installations: InstallationStore

    async def handle(
        self,
        body: dict[str, Any],
        event: LifecycleEvent,
        *,
        token_account_id: str,
        now: datetime | None = None,
    ) -> LifecycleOutcome:
        """Record and apply one event; a replay (same body) is acknowledged, changes nothing.

        Raises 403 `FORBIDDEN` (nothing recorded) when the event names another account
        than the token (`token_account_id`, already verified by `verify_lifecycle`).
        """
        check_account_binding(event, token_account_id)
        change = change_for(body, event, now or utcnow())
        result = await self.installations.record_lifecycle(change)
        if result is LifecycleResult.STALE:
            log.info(
                "lifecycle event older than the last applied one: recorded, not applied",
                extra={"fields": {"event_type": event.type}},
            )
        return LifecycleOutcome(
            event.type,
            change.account_id,
            replayed=result is LifecycleResult.REPLAYED,
            applied=result is LifecycleResult.APPLIED,
        )
