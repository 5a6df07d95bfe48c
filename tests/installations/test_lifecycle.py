"""`POST /monday/lifecycle` (contract §4): every event type, replays, uninstall, tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest

from server.settings import Settings
from tests.conftest import ACCOUNT, INSTALLER, OLD_CLIENT_SECRET
from tests.installations.helpers import (
    ALL_TYPES,
    SUBSCRIPTION_TYPES,
    event,
    lifecycle_token,
    post_event,
    query,
    seed_credential,
)


def installation_row(settings: Settings, account: str = ACCOUNT) -> dict[str, Any]:
    rows = query(settings, "SELECT * FROM installations WHERE account_id = ?", account)
    assert len(rows) == 1
    columns = [r[1] for r in query(settings, "PRAGMA table_info(installations)")]
    return dict(zip(columns, rows[0], strict=True))


async def test_install_creates_the_installation(client: Any, settings: Settings) -> None:
    response = await post_event(client, event("install"))
    assert response.status == 200
    assert (await response.json())["data"] == {
        "type": "install",
        "account_id": ACCOUNT,
        "replayed": False,
        "applied": True,
    }
    row = installation_row(settings)
    assert row["installed"] == 1
    assert row["app_id"] == "10000"
    assert row["installer_user_id"] == INSTALLER
    assert row["installer_name"] == "Ada <admin>"
    assert row["installer_email"] == "ada@example.com"
    assert row["account_slug"] == "acme"
    assert row["account_name"] == "Acme"
    assert row["account_tier"] == "pro"
    assert row["account_max_users"] == 25
    assert json.loads(row["version"])["number"] == 3
    assert row["last_event_type"] == "install"
    assert row["sender_policy"] == "app_then_installer"
    assert row["installed_at"] is not None


@pytest.mark.parametrize("type_", ALL_TYPES)
async def test_every_event_type_is_accepted_and_recorded(
    client: Any, settings: Settings, type_: str
) -> None:
    body = event(type_, subscription={"plan_id": f"plan-{type_}", "is_trial": True})
    response = await post_event(client, body)
    assert response.status == 200
    events = query(settings, "SELECT type, account_id FROM lifecycle_events")
    assert events == [(type_, ACCOUNT)]
    row = installation_row(settings)
    assert row["last_event_type"] == type_
    assert json.loads(row["subscription"])["plan_id"] == f"plan-{type_}"
    assert row["installed"] == (0 if type_ == "uninstall" else 1)


@pytest.mark.parametrize("type_", SUBSCRIPTION_TYPES)
async def test_subscription_events_update_an_existing_installation(
    client: Any, settings: Settings, type_: str
) -> None:
    await post_event(client, event("install", account_tier="basic"))
    body = event(
        type_, user="99", account_tier="enterprise", subscription={"plan_id": "big", "days_left": 3}
    )
    assert (await post_event(client, body)).status == 200
    row = installation_row(settings)
    assert row["last_event_type"] == type_
    assert json.loads(row["subscription"]) == {"plan_id": "big", "days_left": 3}
    assert row["account_tier"] == "enterprise"
    # Subscription events name the account's first admin; they do not change the installer.
    assert row["installer_user_id"] == INSTALLER
    assert row["installed"] == 1


async def test_a_replayed_event_changes_nothing(client: Any, settings: Settings) -> None:
    body = event("install")
    assert (await post_event(client, body)).status == 200
    before = installation_row(settings)
    events_before = query(settings, "SELECT id, digest FROM lifecycle_events")

    # Same event, keys in another order: the canonical digest is the same.
    reordered = {"data": dict(reversed(list(body["data"].items()))), "type": "install"}
    response = await post_event(client, reordered)
    assert response.status == 200
    assert (await response.json())["data"]["replayed"] is True

    assert query(settings, "SELECT id, digest FROM lifecycle_events") == events_before
    assert installation_row(settings) == before


async def test_a_replayed_install_does_not_undo_a_later_uninstall(
    client: Any, settings: Settings
) -> None:
    install = event("install")
    await post_event(client, install)
    await post_event(client, event("uninstall"))
    response = await post_event(client, install)  # monday redelivers the old install
    assert (await response.json())["data"]["replayed"] is True
    assert installation_row(settings)["installed"] == 0


async def test_uninstall_deletes_every_credential_of_the_account(
    client: Any, settings: Settings
) -> None:
    await post_event(client, event("install"))
    await seed_credential(client, user=INSTALLER, kind="api_key", secret="key-of-installer-1234")
    await seed_credential(client, user=INSTALLER, kind="oauth", secret="oauth-installer-5678")
    await seed_credential(client, user="12", kind="oauth", secret="oauth-member-9012")
    await seed_credential(
        client, user="77", kind="oauth", secret="oauth-other-account", account="2002"
    )
    assert (await post_event(client, event("uninstall"))).status == 200

    assert query(settings, "SELECT account_id, user_id FROM credentials") == [("2002", "77")]
    row = installation_row(settings)
    assert row["installed"] == 0
    assert row["uninstalled_at"] is not None
    assert row["last_event_type"] == "uninstall"


async def test_uninstall_of_an_unknown_account_records_it_uninstalled(
    client: Any, settings: Settings
) -> None:
    assert (await post_event(client, event("uninstall"))).status == 200
    assert installation_row(settings)["installed"] == 0


async def test_reinstall_after_uninstall_marks_installed_again(
    client: Any, settings: Settings
) -> None:
    await post_event(client, event("install"))
    await post_event(client, event("uninstall"))
    # A reinstall is a new delivery (new timestamp), so it is not a replay.
    reinstall = event("install", user="12", timestamp="2026-07-02T10:00:00.000+00:00")
    response = await post_event(client, reinstall)
    assert (await response.json())["data"]["replayed"] is False
    row = installation_row(settings)
    assert row["installed"] == 1
    assert row["uninstalled_at"] is None
    assert row["installer_user_id"] == "12"
    assert len(query(settings, "SELECT id FROM lifecycle_events")) == 3


async def test_a_new_installer_drops_the_former_installers_api_key(
    client: Any, settings: Settings
) -> None:
    await post_event(client, event("install"))
    await seed_credential(client, user=INSTALLER, kind="api_key", secret="key-of-installer-1234")
    await seed_credential(client, user=INSTALLER, kind="oauth", secret="oauth-installer-5678")
    await post_event(client, event("install", user="12", timestamp="2026-07-03T00:00:00Z"))
    assert query(settings, "SELECT user_id, kind FROM credentials") == [(INSTALLER, "oauth")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event("app_installed_by_magic"), "type"),
        ({"type": "install"}, "data"),
        ({"data": event("install")["data"]}, "type"),
        (event("install", account_id=None), "data.account_id"),
        (event("install", account_id="not-a-number"), "data.account_id"),
        ({"type": "install", "data": {"user_id": 11}}, "data.account_id"),
    ],
)
async def test_bad_events_are_400_and_not_recorded(
    client: Any, settings: Settings, body: dict[str, Any], field: str
) -> None:
    response = await post_event(client, body)
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    assert error["extensions"]["field"] == field
    assert query(settings, "SELECT COUNT(*) FROM lifecycle_events") == [(0,)]
    assert query(settings, "SELECT COUNT(*) FROM installations") == [(0,)]


async def test_a_body_that_is_not_an_object_is_400(client: Any) -> None:
    response = await client.post(
        "/monday/lifecycle", data=b"[1, 2]", headers={"Authorization": lifecycle_token()}
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "TOKEN_MISSING"),
        (lifecycle_token(secret="someone-elses-secret"), "TOKEN_INVALID_SIGNATURE"),
        (lifecycle_token(lifetime=-3600), "TOKEN_EXPIRED"),
        ("not.a.jwt", "TOKEN_MALFORMED"),
    ],
)
async def test_a_bad_lifecycle_token_is_401_and_changes_nothing(
    client: Any, settings: Settings, token: str | None, code: str
) -> None:
    headers = {"Authorization": token} if token else {}
    response = await client.post("/monday/lifecycle", json=event("install"), headers=headers)
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == code
    assert query(settings, "SELECT COUNT(*) FROM installations") == [(0,)]


async def test_the_older_client_secret_still_verifies(client: Any, settings: Settings) -> None:
    response = await post_event(client, event("install"), token=lifecycle_token(OLD_CLIENT_SECRET))
    assert response.status == 200
    assert installation_row(settings)["installed"] == 1
