"""Helpers for the installation tests: lifecycle events, raw database reads, seeded credentials."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy.engine import make_url

from server.appkeys import ENGINE
from server.installations.crypto import CIPHER
from server.installations.model import CredentialKind
from server.settings import Settings
from server.storage.installations import SqlCredentials
from server.tokens import mint_lifecycle
from tests.conftest import ACCOUNT, CLIENT_SECRET, INSTALLER

SUBSCRIPTION_TYPES = [
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
ALL_TYPES = ["install", "uninstall", *SUBSCRIPTION_TYPES]


def event(
    type_: str, *, account: str = ACCOUNT, user: str = INSTALLER, **overrides: Any
) -> dict[str, Any]:
    """A lifecycle body shaped like monday's (monday-platform.md §4)."""
    data: dict[str, Any] = {
        "app_id": 10000,
        "app_name": "monday-notify",
        "user_id": int(user),
        "user_email": "ada@example.com",
        "user_name": "Ada <admin>",
        "user_cluster": "other",
        "account_tier": "pro",
        "account_max_users": 25,
        "account_id": int(account),
        "account_name": "Acme",
        "account_slug": "acme",
        "version_data": {"major": 1, "minor": 2, "patch": 0, "type": "minor", "number": 3},
        "timestamp": "2026-07-01T10:00:00.000+00:00",
        "subscription": {
            "plan_id": "basic",
            "renewal_date": "2026-08-01T00:00:00+00:00",
            "is_trial": False,
            "billing_period": "monthly",
            "days_left": 30,
            "pricing_version": 1,
        },
        "user_country": "FR",
    }
    data.update(overrides)
    return {"type": type_, "data": data}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": token}


# tests.conftest.make_settings' PUBLIC_BASE_URL + the route: a lifecycle token's `aud`.
LIFECYCLE_AUDIENCE = "http://127.0.0.1:8080/monday/lifecycle"


def lifecycle_token(
    secret: str = CLIENT_SECRET,
    lifetime: int = 300,
    *,
    account: str = ACCOUNT,
    user: str = INSTALLER,
    audience: str = LIFECYCLE_AUDIENCE,
) -> str:
    """A lifecycle webhook JWT in monday's outbound shape, for `account`."""
    return mint_lifecycle(
        secret, account_id=account, user_id=user, audience=audience, lifetime=lifetime
    )


def _event_account(body: Any) -> str:
    """The account a body names, when it names a valid one (else the test account)."""
    data = body.get("data") if isinstance(body, dict) else None
    value = data.get("account_id") if isinstance(data, dict) else None
    return str(value) if isinstance(value, int | str) and str(value).isdigit() else ACCOUNT


async def post_event(client: Any, body: Any, *, token: str | None = None) -> Any:
    """POST the event with a token monday would sign for the account the event names."""
    token = token or lifecycle_token(account=_event_account(body))
    return await client.post("/monday/lifecycle", json=body, headers=auth(token))


def db_path(settings: Settings) -> str:
    database = make_url(settings.database_url).database
    assert database
    return database


def query(settings: Settings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """Read the real SQLite file with the standard library (not through our code)."""
    with sqlite3.connect(db_path(settings)) as conn:
        return conn.execute(sql, params).fetchall()


async def seed_credential(
    client: Any,
    *,
    user: str,
    kind: CredentialKind,
    secret: str,
    account: str = ACCOUNT,
    refresh: str | None = None,
) -> None:
    """Store a credential through the store (as a connect would), without asking monday."""
    await SqlCredentials(client.app[ENGINE], client.app[CIPHER]).put(
        account_id=account,
        user_id=user,
        kind=kind,
        secret=secret,
        refresh_secret=refresh,
    )
