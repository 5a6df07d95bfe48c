"""Contract §4: an app OAuth token that is about to expire is refreshed before a send uses it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from server.appkeys import ENGINE
from server.clock import utcnow
from server.installations.crypto import CredentialCipher
from server.storage.installations import SqlCredentials
from tests.conftest import ACCOUNT, ENCRYPTION_KEY
from tests.notifications.helpers import MEMBER, install, notification


async def test_an_expiring_oauth_token_is_refreshed_before_sending(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    await install(monday_client)
    fake = fake_monday.fake
    fake.issue_refresh_tokens = True
    fake.add_user(MEMBER, ACCOUNT, "Max Member", "max@example.com")
    granted = fake.grant_tokens(MEMBER, ACCOUNT, "notifications:write")
    cipher = CredentialCipher([ENCRYPTION_KEY])
    engine = monday_client.app[ENGINE]
    await SqlCredentials(engine, cipher).put(
        account_id=ACCOUNT,
        user_id=MEMBER,
        kind="oauth",
        secret=granted["access_token"],
        refresh_secret=granted["refresh_token"],
        expires_at=utcnow() + timedelta(minutes=2),  # inside the 5-minute refresh margin
    )

    response = await monday_client.post(
        "/notifications", json=notification(), headers={"Authorization": mint(user=MEMBER)}
    )
    assert (await response.json())["data"]["delivery_status"] == "sent"

    stored = await SqlCredentials(engine, cipher).get(ACCOUNT, MEMBER, "oauth")
    assert stored is not None
    assert stored.secret != granted["access_token"]
    assert stored.refresh_secret != granted["refresh_token"]  # monday rotates refresh tokens
    [call] = fake.requests_to("/v2")
    assert call.authorization == stored.secret
    assert any(r.path.endswith("/oauth2/token") for r in fake.requests)
