"""`GET /installation` and `PATCH /installation` (contract §4)."""

from __future__ import annotations

from typing import Any

import pytest

from server.settings import Settings
from tests.conftest import ACCOUNT, INSTALLER
from tests.installations.helpers import event, post_event, query, seed_credential

SECRETS = {
    "installer_key": "installer-api-key-AAAA",
    "installer_oauth": "installer-oauth-BBBB",
    "member_oauth": "member-oauth-CCCC",
    "other_member_oauth": "other-member-oauth-DDDD",
    "other_account": "other-account-oauth-EEEE",
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def seed_account(client: Any) -> None:
    await post_event(client, event("install"))
    await seed_credential(client, user=INSTALLER, kind="api_key", secret=SECRETS["installer_key"])
    await seed_credential(client, user=INSTALLER, kind="oauth", secret=SECRETS["installer_oauth"])
    await seed_credential(client, user="12", kind="oauth", secret=SECRETS["member_oauth"])
    await seed_credential(client, user="13", kind="oauth", secret=SECRETS["other_member_oauth"])
    await seed_credential(
        client, user="12", kind="oauth", secret=SECRETS["other_account"], account="2002"
    )


async def test_an_unknown_account_is_not_installed(client: Any, mint: Any) -> None:
    response = await client.get("/installation", headers=auth(mint(admin=True)))
    assert response.status == 200
    assert (await response.json()) == {
        "data": {
            "account_id": ACCOUNT,
            "installed": False,
            "installer_user_id": None,
            "sender_policy": "app_then_installer",
            "credentials": [],
            "quiet_hours": None,  # contract §12
            "digest_window_seconds": 0,
        }
    }


async def test_admins_see_every_credential_of_their_account_and_no_secret(
    client: Any, mint: Any
) -> None:
    await seed_account(client)
    response = await client.get("/installation", headers=auth(mint(user="14", admin=True)))
    text = await response.text()
    data = (await response.json())["data"]
    assert data["installed"] is True
    assert data["installer_user_id"] == INSTALLER
    summary = {(c["kind"], c["owner_user_id"]): c for c in data["credentials"]}
    assert set(summary) == {
        ("api_key", INSTALLER),
        ("oauth", INSTALLER),
        ("oauth", "12"),
        ("oauth", "13"),
    }
    key = summary[("api_key", INSTALLER)]
    assert key["connected"] is True
    assert key["last4"] == "AAAA"
    assert key["needs_reconnect"] is False
    assert key["verified_at"] is not None
    assert key["expires_at"] is None
    assert set(key) == {
        "kind",
        "owner_user_id",
        "connected",
        "verified_at",
        "last4",
        "needs_reconnect",
        "expires_at",
    }
    for secret in SECRETS.values():
        assert secret not in text
    assert "EEEE" not in text  # the other account's credential is not listed at all


async def test_members_see_their_own_oauth_and_the_installers_key(client: Any, mint: Any) -> None:
    await seed_account(client)
    response = await client.get("/installation", headers=auth(mint(user="12")))
    credentials = (await response.json())["data"]["credentials"]
    assert sorted((c["kind"], c["owner_user_id"]) for c in credentials) == [
        ("api_key", INSTALLER),
        ("oauth", "12"),
    ]


async def test_another_account_sees_only_itself(client: Any, mint: Any) -> None:
    await seed_account(client)
    response = await client.get("/installation", headers=auth(mint(account="2002", admin=True)))
    data = (await response.json())["data"]
    assert data["account_id"] == "2002"
    assert data["installed"] is False
    assert [(c["owner_user_id"], c["last4"]) for c in data["credentials"]] == [("12", "EEEE")]


async def test_needs_reconnect_is_shown(client: Any, mint: Any) -> None:
    await seed_account(client)
    from server.appkeys import ENGINE
    from server.installations.crypto import CIPHER
    from server.storage.installations import SqlCredentials

    credentials = SqlCredentials(client.app[ENGINE], client.app[CIPHER])
    await credentials.mark_needs_reconnect(ACCOUNT, "12", "oauth")
    response = await client.get("/installation", headers=auth(mint(user="12")))
    flags = {
        c["owner_user_id"]: c["needs_reconnect"]
        for c in (await response.json())["data"]["credentials"]
        if c["kind"] == "oauth"
    }
    assert flags == {"12": True}


async def test_get_installation_needs_a_session(client: Any) -> None:
    response = await client.get("/installation")
    assert response.status == 401
    assert (await response.json())["errors"][0]["extensions"]["code"] == "TOKEN_MISSING"


@pytest.mark.parametrize("policy", ["app", "installer", "app_then_installer"])
async def test_an_admin_sets_the_sender_policy(
    client: Any, settings: Settings, mint: Any, policy: str
) -> None:
    await post_event(client, event("install"))
    response = await client.patch(
        "/installation", json={"sender_policy": policy}, headers=auth(mint(admin=True))
    )
    assert response.status == 200
    assert (await response.json())["data"]["sender_policy"] == policy
    assert query(settings, "SELECT sender_policy FROM installations") == [(policy,)]
    again = await client.get("/installation", headers=auth(mint(user="12")))
    assert (await again.json())["data"]["sender_policy"] == policy


async def test_patch_before_any_install_keeps_the_account_uninstalled(
    client: Any, settings: Settings, mint: Any
) -> None:
    response = await client.patch(
        "/installation", json={"sender_policy": "app"}, headers=auth(mint(admin=True))
    )
    data = (await response.json())["data"]
    assert data["sender_policy"] == "app"
    assert data["installed"] is False
    assert query(settings, "SELECT installed, installer_user_id FROM installations") == [(0, None)]


@pytest.mark.parametrize(
    "claims",
    [
        {"admin": False},
        {"admin": True, "view_only": True},
        {"admin": False, "guest": True},
        {"admin": True, "guest": True},
    ],
)
async def test_only_admins_may_patch(
    client: Any, settings: Settings, mint: Any, claims: dict[str, bool]
) -> None:
    await post_event(client, event("install"))
    response = await client.patch(
        "/installation", json={"sender_policy": "installer"}, headers=auth(mint(**claims))
    )
    assert response.status == 403
    assert (await response.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert query(settings, "SELECT sender_policy FROM installations") == [("app_then_installer",)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"sender_policy": "whoever"}, "sender_policy"),
        ({"sender_policy": None}, "sender_policy"),
        ({}, ""),  # contract §12: any subset of the keys, but at least one
        ({"sender_policy": "app", "installed": False}, "installed"),
        ([], ""),
    ],
)
async def test_bad_patches_are_400(
    client: Any, settings: Settings, mint: Any, body: Any, field: str
) -> None:
    await post_event(client, event("install"))
    response = await client.patch("/installation", json=body, headers=auth(mint(admin=True)))
    assert response.status == 400
    error = (await response.json())["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PAYLOAD"
    if field:
        assert error["extensions"]["field"] == field
    assert query(settings, "SELECT sender_policy, installed FROM installations") == [
        ("app_then_installer", 1)
    ]
