"""Contract §10, the reproduced attacks on `POST /monday/lifecycle` and the send path.

monday signs session tokens and lifecycle webhooks with the same client secret, and the
event body is not signed. Each test is one attack that worked before issue 9; each asserts
what the store holds afterwards and what the fake monday received.
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import update

from server.appkeys import ENGINE
from server.storage.tables import notifications
from server.token_mint import mint_integration
from tests.conftest import ACCOUNT, CLIENT_SECRET, INSTALLER, SIGNING_SECRET, Mint
from tests.installations.helpers import event, lifecycle_token, seed_credential
from tests.notifications.helpers import connect, install, notification
from tests.security.conftest import (
    ACTIONS_AUD,
    ACTIONS_PATH,
    GUEST_OF_B,
    MEMBER,
    NEW_ADMIN,
    OTHER_ACCOUNT,
    days_ago,
    sign,
    table,
)

INSTALLER_KEY = "api_key-token-of-" + INSTALLER  # what tests.notifications.helpers.connect stores


async def post(client: Any, body: dict[str, Any], token: str) -> Any:
    return await client.post("/monday/lifecycle", json=body, headers={"Authorization": token})


async def installed_with_credentials(client: Any, fake: Any) -> None:
    """Account A installed by its admin (11), with the admin's API key and OAuth token."""
    assert (await post(client, event("install"), lifecycle_token())).status == 200
    await connect(client, fake, user=INSTALLER, kind="api_key")
    await connect(client, fake, user=INSTALLER, kind="oauth")


async def test_a_guest_of_b_cannot_uninstall_a_with_a_session_token(
    app: Any, fake_monday: Any, mint: Mint
) -> None:
    await installed_with_credentials(app, fake_monday.fake)
    before = await table(app, "installations"), await table(app, "credentials")
    guest = mint(account=OTHER_ACCOUNT, user=GUEST_OF_B, guest=True)
    for body in (event("uninstall"), event("install", user=GUEST_OF_B)):
        response = await post(app, body, guest)
        assert response.status == 401
        assert (await response.json())["errors"][0]["extensions"]["code"] == "TOKEN_MALFORMED"
    assert (await table(app, "installations"), await table(app, "credentials")) == before
    assert len(await table(app, "lifecycle_events")) == 1  # only the real install


async def test_a_lifecycle_token_of_b_cannot_touch_a(app: Any, fake_monday: Any) -> None:
    await installed_with_credentials(app, fake_monday.fake)
    before = await table(app, "installations"), await table(app, "credentials")
    token_of_b = lifecycle_token(account=OTHER_ACCOUNT, user=GUEST_OF_B)
    uninstall_a = event("uninstall", timestamp="2026-07-05T00:00:00Z")
    for body in (uninstall_a, event("install", user=GUEST_OF_B, timestamp="2026-07-05T00:00:01Z")):
        response = await post(app, body, token_of_b)
        assert response.status == 403
        assert (await response.json())["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert (await table(app, "installations"), await table(app, "credentials")) == before
    # Refused events are not recorded: the forged body did not take the digest of monday's
    # real delivery, which still applies when it comes with A's own token.
    assert [e["type"] for e in await table(app, "lifecycle_events")] == ["install"]
    response = await post(app, uninstall_a, lifecycle_token())
    assert (await response.json())["data"]["replayed"] is False
    assert await table(app, "credentials") == []


async def test_a_member_cannot_make_themselves_installer(
    app: Any, fake_monday: Any, mint: Mint
) -> None:
    """The member posts a reinstall naming themselves, then connects their own key; the
    admin's "send as installer" must still go out with the admin's key."""
    await installed_with_credentials(app, fake_monday.fake)
    await install(app, policy="app_then_installer")  # keep 11 as installer (as monday said)
    member = mint(user=MEMBER)
    reinstall = event("install", user=MEMBER, timestamp="2026-07-09T00:00:00Z")
    response = await post(app, reinstall, member)
    assert response.status == 401
    [row] = await table(app, "installations")
    assert row["installer_user_id"] == INSTALLER
    # Nor can the member store a key as if they were the installer.
    fake_monday.fake.add_token("member-key-12", MEMBER, ACCOUNT, "personal")
    put = await app.put(
        "/installation/api-key",
        json={"api_key": "member-key-12"},
        headers={"Authorization": member},
    )
    assert put.status == 403

    admin = mint(user=INSTALLER, admin=True)
    sent = await app.post(
        "/notifications",
        json=notification(send_as="installer"),
        headers={"Authorization": admin},
    )
    assert sent.status == 200, await sent.text()
    [call] = fake_monday.fake.requests_to("/v2")
    assert call.authorization == INSTALLER_KEY


async def test_an_old_exp_less_lifecycle_token_is_refused(app: Any, fake_monday: Any) -> None:
    await installed_with_credentials(app, fake_monday.fake)
    before = await table(app, "credentials")
    # The shape handlers used to accept (claims under `dat`), issued 30 days ago, no `exp`.
    old = sign(
        {"dat": {"account_id": int(ACCOUNT), "user_id": int(INSTALLER)}, "iat": days_ago(30)},
        CLIENT_SECRET,
    )
    # monday's outbound shape, but without `exp`.
    outbound = sign(
        {
            "accountId": int(ACCOUNT),
            "userId": int(INSTALLER),
            "aud": "http://127.0.0.1:8080/monday/lifecycle",
            "iat": days_ago(30),
        },
        CLIENT_SECRET,
    )
    for token in (old, outbound):
        response = await post(app, event("uninstall", timestamp="2026-08-01T00:00:00Z"), token)
        assert response.status == 401
        assert (await response.json())["errors"][0]["extensions"]["code"] == "TOKEN_MALFORMED"
    assert await table(app, "credentials") == before


async def test_the_installers_key_never_sends_for_a_new_installer(
    app: Any, fake_monday: Any, mint: Mint
) -> None:
    """A reinstall by another admin: rows queued for the former installer's key do not go
    out with it, even if that key survived (stored by a connect that raced the reinstall)."""
    fake = fake_monday.fake
    await installed_with_credentials(app, fake)
    fake.add_user(NEW_ADMIN, ACCOUNT, "New Admin", "new.admin@example.com")
    fake.fail_next("rate_limit", retry_in_seconds=1)
    queued = await app.post(
        "/notifications",
        json=notification(send_as="installer"),
        headers={"Authorization": mint(user=MEMBER)},
    )
    row = (await queued.json())["data"]
    assert (row["delivery_status"], row["credential_owner"]) == ("retry_scheduled", INSTALLER)
    assert [c.authorization for c in fake.requests_to("/v2")] == [INSTALLER_KEY]

    reinstall = event("install", user=NEW_ADMIN, timestamp="2026-07-10T00:00:00Z")
    assert (await post(app, reinstall, lifecycle_token(user=NEW_ADMIN))).status == 200
    assert [c["user_id"] for c in await table(app, "credentials")] == [INSTALLER]  # OAuth only
    await seed_credential(app, user=INSTALLER, kind="api_key", secret=INSTALLER_KEY)
    async with app.app[ENGINE].begin() as conn:  # due now: the worker picks it up
        await conn.execute(update(notifications).values(next_attempt_at=None))

    async def settled() -> dict[str, Any]:
        while True:
            [current] = await table(app, "notifications")
            if current["delivery_status"] != "retry_scheduled":
                return current
            await asyncio.sleep(0.02)

    final = await asyncio.wait_for(settled(), timeout=30)
    assert final["delivery_status"] == "failed"
    assert final["last_error"]["code"] == "NO_CREDENTIAL"
    assert [c.authorization for c in fake.requests_to("/v2")] == [INSTALLER_KEY]  # no 2nd send

    # A new "send as installer" needs the new installer's own key: nothing else is used.
    again = await app.post(
        "/notifications",
        json=notification(send_as="installer"),
        headers={"Authorization": mint(user=MEMBER)},
    )
    assert again.status == 409
    assert (await again.json())["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert len(fake.requests_to("/v2")) == 1


def integration_token(short_lived: str | None) -> str:
    return mint_integration(
        SIGNING_SECRET,
        account_id=ACCOUNT,
        user_id=MEMBER,
        audience=ACTIONS_AUD,
        short_lived_token=short_lived,
    )


def run_body(uuid: str) -> dict[str, Any]:
    inbound = {"userId": int(MEMBER), "itemId": 9876543210, "text": "Deal closed"}
    return {
        "payload": {"inboundFieldValues": inbound, "inputFields": inbound},
        "runtimeMetadata": {"actionUuid": uuid},
    }


async def test_an_automation_without_short_lived_token_sends_nothing(
    app: Any, fake_monday: Any
) -> None:
    for policy in ("app_then_installer", "installer", "app"):
        await installed_with_credentials(app, fake_monday.fake)
        await install(app, policy=policy)
        response = await app.post(
            ACTIONS_PATH,
            json=run_body(f"run-{policy}"),
            headers={"Authorization": integration_token(None)},
        )
        assert response.status == 409, policy
        body = await response.json()
        assert body["severityCode"] == 4000 and body["notificationErrorDescription"]
        assert body["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert fake_monday.fake.requests_to("/v2") == []
    assert await table(app, "notifications") == []


async def test_an_automation_never_falls_back_to_the_installers_key(
    app: Any, fake_monday: Any
) -> None:
    """With its short-lived token, under a policy that only allows the installer: refused,
    not sent with the installer's stored key."""
    await installed_with_credentials(app, fake_monday.fake)
    await install(app, policy="installer")
    fake_monday.fake.add_token("short-lived-1", MEMBER, ACCOUNT, "short_lived")
    response = await app.post(
        ACTIONS_PATH,
        json=run_body("run-1"),
        headers={"Authorization": integration_token("short-lived-1")},
    )
    assert response.status == 409
    assert (await response.json())["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert fake_monday.fake.requests_to("/v2") == []

    await install(app, policy="app_then_installer")
    response = await app.post(
        ACTIONS_PATH,
        json=run_body("run-2"),
        headers={"Authorization": integration_token("short-lived-1")},
    )
    assert response.status == 200, await response.text()
    [call] = fake_monday.fake.requests_to("/v2")
    assert call.authorization == "short-lived-1"
