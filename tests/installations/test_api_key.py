"""`PUT/DELETE /installation/api-key` (contract §4) against the fake monday over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from server.appkeys import ENGINE
from server.dev.fake_monday_state import dev_personal_key
from server.installations.crypto import CIPHER
from server.settings import Settings
from server.storage.installations import SqlCredentials
from tests.conftest import ACCOUNT, INSTALLER
from tests.installations.helpers import auth, event, post_event, query

INSTALLER_KEY = dev_personal_key(INSTALLER)


async def put_key(client: Any, token: str, key: str) -> Any:
    return await client.put("/installation/api-key", json={"api_key": key}, headers=auth(token))


def me_calls(fake_monday: Any) -> list[Any]:
    return [r for r in fake_monday.fake.requests_to("/v2") if "me" in str(r.body)]


async def test_the_installer_stores_their_key_checked_and_encrypted(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    response = await put_key(monday_client, mint(admin=True), f"  {INSTALLER_KEY}\n")
    assert response.status == 200
    text = await response.text()
    assert INSTALLER_KEY not in text
    data = (await response.json())["data"]
    assert data["kind"] == "api_key"
    assert data["owner_user_id"] == INSTALLER
    assert data["last4"] == INSTALLER_KEY[-4:]
    assert data["verified_at"] is not None

    # monday was asked who the key belongs to, with the key itself as Authorization.
    calls = me_calls(fake_monday)
    assert [c.authorization for c in calls] == [INSTALLER_KEY]

    rows = query(monday_settings, "SELECT secret_encrypted, last4 FROM credentials")
    assert len(rows) == 1
    assert INSTALLER_KEY not in rows[0][0]
    assert rows[0][0].startswith("gAAAAA")  # a Fernet token
    stored = await SqlCredentials(monday_client.app[ENGINE], monday_client.app[CIPHER]).get(
        ACCOUNT, INSTALLER, "api_key"
    )
    assert stored is not None
    assert stored.secret == INSTALLER_KEY  # trimmed, and decrypts
    assert INSTALLER_KEY not in repr(stored)

    listed = await monday_client.get("/installation", headers=auth(mint(user="12")))
    creds = (await listed.json())["data"]["credentials"]
    assert [(c["kind"], c["last4"]) for c in creds] == [("api_key", INSTALLER_KEY[-4:])]


async def test_another_users_key_is_rejected(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    other_key = dev_personal_key("12")
    response = await put_key(monday_client, mint(admin=True), other_key)
    assert response.status == 422
    text = await response.text()
    assert (await response.json())["errors"][0]["extensions"]["code"] == "API_KEY_REJECTED"
    assert other_key not in text
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_a_key_of_another_account_is_rejected(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    # Same user id, another account: the key's account must be the caller's.
    fake_monday.fake.add_token("key-in-other-account", INSTALLER, "2002", "personal")
    response = await put_key(monday_client, mint(admin=True), "key-in-other-account")
    assert response.status == 422
    assert (await response.json())["errors"][0]["extensions"]["code"] == "API_KEY_REJECTED"
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_a_key_monday_does_not_know_is_rejected(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    response = await put_key(monday_client, mint(admin=True), "no-such-key-xyz")
    assert response.status == 422
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "API_KEY_REJECTED"
    assert "no-such-key-xyz" not in body["errors"][0]["message"]
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


@pytest.mark.parametrize("claims", [{"user": "12"}, {"user": "12", "admin": True}])
async def test_only_the_installer_may_set_the_key(
    monday_client: Any,
    monday_settings: Settings,
    fake_monday: Any,
    mint: Any,
    claims: dict[str, Any],
) -> None:
    await post_event(monday_client, event("install"))
    response = await put_key(monday_client, mint(**claims), dev_personal_key("12"))
    assert response.status == 403
    assert (await response.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert me_calls(fake_monday) == []  # refused before the key goes anywhere
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_without_lifecycle_the_first_admin_becomes_the_installer(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    # No lifecycle webhook (local development): a member cannot claim the account...
    member = await put_key(monday_client, mint(user="12"), dev_personal_key("12"))
    assert member.status == 403
    assert query(monday_settings, "SELECT COUNT(*) FROM installations") == [(0,)]

    # ...the first admin who connects a credential is recorded as the installer.
    response = await put_key(monday_client, mint(admin=True), INSTALLER_KEY)
    assert response.status == 200
    assert query(monday_settings, "SELECT installed, installer_user_id FROM installations") == [
        (1, INSTALLER)
    ]
    view = await monday_client.get("/installation", headers=auth(mint(user="12")))
    data = (await view.json())["data"]
    assert data["installed"] is True
    assert data["installer_user_id"] == INSTALLER

    # A second admin is now not the installer.
    second = await put_key(monday_client, mint(user="12", admin=True), dev_personal_key("12"))
    assert second.status == 403


async def test_a_rejected_key_does_not_claim_the_account(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    response = await put_key(monday_client, mint(admin=True), dev_personal_key("12"))
    assert response.status == 422
    assert query(monday_settings, "SELECT COUNT(*) FROM installations") == [(0,)]


async def test_an_uninstalled_account_cannot_store_a_key(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    await post_event(monday_client, event("uninstall"))
    response = await put_key(monday_client, mint(admin=True), INSTALLER_KEY)
    assert response.status == 409
    assert (await response.json())["errors"][0]["extensions"]["code"] == "APP_NOT_INSTALLED"
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


async def test_monday_being_down_is_not_a_rejection(
    monday_client: Any, monday_settings: Settings, fake_monday: Any, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    fake_monday.fake.fail_next("server_error")
    response = await put_key(monday_client, mint(admin=True), INSTALLER_KEY)
    assert response.status == 502
    body = await response.json()
    assert body["errors"][0]["extensions"]["code"] == "MONDAY_UNAVAILABLE"
    assert INSTALLER_KEY not in str(body)
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]


@pytest.mark.parametrize(
    "body",
    [{}, {"api_key": ""}, {"api_key": "   "}, {"api_key": 12345}, {"api_key": "k", "x": 1}],
)
async def test_bad_bodies_are_400(monday_client: Any, mint: Any, body: Any) -> None:
    await post_event(monday_client, event("install"))
    response = await monday_client.put(
        "/installation/api-key", json=body, headers=auth(mint(admin=True))
    )
    assert response.status == 400
    assert (await response.json())["errors"][0]["extensions"]["code"] == "INVALID_PAYLOAD"


async def test_delete_removes_the_key(
    monday_client: Any, monday_settings: Settings, mint: Any
) -> None:
    await post_event(monday_client, event("install"))
    assert (await put_key(monday_client, mint(admin=True), INSTALLER_KEY)).status == 200

    member = await monday_client.delete("/installation/api-key", headers=auth(mint(user="12")))
    assert member.status == 403
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(1,)]

    response = await monday_client.delete("/installation/api-key", headers=auth(mint()))
    assert response.status == 204
    assert await response.read() == b""
    assert query(monday_settings, "SELECT COUNT(*) FROM credentials") == [(0,)]
    again = await monday_client.delete("/installation/api-key", headers=auth(mint()))
    assert again.status == 204
