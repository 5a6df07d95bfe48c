"""The installation store on both engines (SQLite and PostgreSQL, via `database_url`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.installations.crypto import CredentialCipher
from server.installations.lifecycle import LifecycleEvent, handle_lifecycle_event
from server.installations.store import (
    claim_installer,
    consume_oauth_state,
    create_oauth_state,
    delete_credential,
    get_credential,
    get_installation,
    list_credentials,
    mark_needs_reconnect,
    replace_oauth_tokens,
    set_sender_policy,
    store_credential,
)
from server.storage.db import create_engine
from server.storage.tables import credentials, lifecycle_events
from tests.installations.helpers import event

ACCOUNT = "1001"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def cipher() -> CredentialCipher:
    return CredentialCipher([Fernet.generate_key().decode()])


async def apply(engine: AsyncEngine, body: dict[str, object]) -> bool:
    event = LifecycleEvent.model_validate(body)
    # As verified by the lifecycle token, which monday signs for the event's own account.
    outcome = await handle_lifecycle_event(
        engine, body, event, token_account_id=event.data.account_id
    )
    return outcome.replayed


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_lifecycle_is_recorded_once_and_applied(engine: AsyncEngine) -> None:
    assert await get_installation(engine, ACCOUNT) is None
    body = event("install")
    assert await apply(engine, body) is False
    first = await get_installation(engine, ACCOUNT)
    assert first is not None
    assert first.installed and first.installer_user_id == "11"
    assert first.version == body["data"]["version_data"]
    assert first.updated_at is not None and first.updated_at.tzinfo is not None

    assert await apply(engine, body) is True
    assert await get_installation(engine, ACCOUNT) == first
    assert await count(engine, lifecycle_events) == 1

    await apply(engine, event("app_subscription_renewed", subscription={"days_left": 9}))
    renewed = await get_installation(engine, ACCOUNT)
    assert renewed is not None
    assert renewed.subscription == {"days_left": 9}
    assert renewed.last_event_type == "app_subscription_renewed"


async def test_credentials_round_trip_encrypted(
    engine: AsyncEngine, cipher: CredentialCipher
) -> None:
    expires = datetime.now(UTC) + timedelta(hours=1)
    await store_credential(
        engine,
        cipher,
        account_id=ACCOUNT,
        user_id="12",
        kind="oauth",
        secret="access-1-wxyz",
        refresh_secret="refresh-1",
        expires_at=expires,
        scope="me:read",
    )
    got = await get_credential(engine, cipher, ACCOUNT, "12", "oauth")
    assert got is not None
    assert (got.secret, got.refresh_secret, got.last4, got.scope) == (
        "access-1-wxyz",
        "refresh-1",
        "wxyz",
        "me:read",
    )
    assert got.expires_at is not None
    assert abs((got.expires_at - expires).total_seconds()) < 1
    assert await get_credential(engine, cipher, ACCOUNT, "12", "api_key") is None
    async with engine.connect() as conn:
        stored = (await conn.execute(select(credentials.c.secret_encrypted))).scalar_one()
    assert "access-1" not in stored

    # Storing again replaces (one row per owner and kind) and clears needs_reconnect.
    await mark_needs_reconnect(engine, ACCOUNT, "12", "oauth")
    flagged = await get_credential(engine, cipher, ACCOUNT, "12", "oauth")
    assert flagged is not None and flagged.needs_reconnect
    await store_credential(
        engine, cipher, account_id=ACCOUNT, user_id="12", kind="oauth", secret="access-2"
    )
    again = await get_credential(engine, cipher, ACCOUNT, "12", "oauth")
    assert again is not None
    assert (again.secret, again.refresh_secret, again.needs_reconnect) == ("access-2", None, False)
    assert await count(engine, credentials) == 1
    assert [s.last4 for s in await list_credentials(engine, ACCOUNT)] == ["ss-2"]

    assert await delete_credential(engine, ACCOUNT, "12", "oauth") is True
    assert await delete_credential(engine, ACCOUNT, "12", "oauth") is False


async def test_uninstall_deletes_the_accounts_credentials_only(
    engine: AsyncEngine, cipher: CredentialCipher
) -> None:
    await apply(engine, event("install"))
    for account, user in ((ACCOUNT, "11"), (ACCOUNT, "12"), ("2002", "12")):
        await store_credential(
            engine, cipher, account_id=account, user_id=user, kind="oauth", secret=f"t-{user}"
        )
    await apply(engine, event("uninstall"))
    assert [(s.account_id, s.user_id) for s in await list_credentials(engine, "2002")] == [
        ("2002", "12")
    ]
    assert await list_credentials(engine, ACCOUNT) == []
    installation = await get_installation(engine, ACCOUNT)
    assert installation is not None and not installation.installed


async def test_oauth_states_are_single_use_and_expire(engine: AsyncEngine) -> None:
    now = datetime.now(UTC)
    await create_oauth_state(
        engine,
        state_digest="a" * 64,
        account_id=ACCOUNT,
        user_id="12",
        now=now,
        expires_at=now + timedelta(minutes=10),
    )
    await create_oauth_state(
        engine,
        state_digest="b" * 64,
        account_id=ACCOUNT,
        user_id="12",
        now=now,
        expires_at=now + timedelta(minutes=10),
    )
    # Two callbacks race for the same state: exactly one wins.
    results = await asyncio.gather(
        consume_oauth_state(engine, "a" * 64, now=now),
        consume_oauth_state(engine, "a" * 64, now=now),
    )
    assert sorted(r is not None for r in results) == [False, True]
    late = now + timedelta(minutes=10, seconds=1)
    assert await consume_oauth_state(engine, "b" * 64, now=late) is None
    assert await consume_oauth_state(engine, "c" * 64, now=now) is None


async def test_the_first_admin_claims_an_unknown_account_once(engine: AsyncEngine) -> None:
    first = await claim_installer(engine, ACCOUNT, "11")
    assert first.installed and first.installer_user_id == "11"
    second = await claim_installer(engine, ACCOUNT, "12")
    assert second.installer_user_id == "11"

    # A policy set before anyone claimed does not install; a claim afterwards does.
    policy_only = await set_sender_policy(engine, "3003", "installer")
    assert not policy_only.installed and policy_only.sender_policy == "installer"
    claimed = await claim_installer(engine, "3003", "31")
    assert claimed.installed and claimed.installer_user_id == "31"
    assert claimed.sender_policy == "installer"

    # Once monday's lifecycle spoke, nobody claims.
    await apply(engine, event("uninstall", account="4004"))
    refused = await claim_installer(engine, "4004", "41")
    assert refused.installer_user_id is None and not refused.installed


async def test_refreshed_tokens_replace_only_the_refresh_token_they_came_from(
    engine: AsyncEngine, cipher: CredentialCipher
) -> None:
    original = await store_credential(
        engine,
        cipher,
        account_id=ACCOUNT,
        user_id="12",
        kind="oauth",
        secret="access-1",
        refresh_secret="refresh-1",
    )
    swapped = await replace_oauth_tokens(
        engine,
        cipher,
        original,
        access_token="access-2",
        refresh_token="refresh-2",
        expires_at=None,
        scope=None,
    )
    assert swapped is not None and swapped.secret == "access-2"
    # A second worker holding the old credential loses: the row already moved on.
    stale = await replace_oauth_tokens(
        engine,
        cipher,
        original,
        access_token="access-3",
        refresh_token="refresh-3",
        expires_at=None,
        scope=None,
    )
    assert stale is None
    current = await get_credential(engine, cipher, ACCOUNT, "12", "oauth")
    assert current is not None
    assert (current.secret, current.refresh_secret) == ("access-2", "refresh-2")
