"""One battery, both engines: what the installation stores promise their callers.

The installation services and the send path's cache rely on these promises through the
ports in `server/installations/ports.py`; every test runs once on SQLite and once on
PostgreSQL (`database_url` is parametrised over both).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.installations.crypto import CredentialCipher
from server.installations.facts import InstallationCache
from server.installations.lifecycle import LifecycleEvent, LifecycleService
from server.installations.ports import (
    AccountChanges,
    CredentialStore,
    InstallationStore,
    OAuthStateStore,
)
from server.storage.db import create_engine
from server.storage.installations import SqlCredentials, SqlInstallations, SqlOAuthStates
from server.storage.tables import credentials, lifecycle_events
from tests.installations.helpers import event

ACCOUNT = "1001"


@dataclass
class Stores:
    engine: AsyncEngine
    cipher: CredentialCipher
    changes: AccountChanges
    installations: InstallationStore
    credentials: CredentialStore
    states: OAuthStateStore
    changed: list[str]


@pytest.fixture
async def stores(database_url: str) -> AsyncIterator[Stores]:
    engine = create_engine(database_url)
    cipher = CredentialCipher([Fernet.generate_key().decode()])
    changes = AccountChanges()
    changed: list[str] = []
    changes.subscribe(changed.append)
    # The SQL adapters must satisfy the ports the services are typed against.
    yield Stores(
        engine,
        cipher,
        changes,
        SqlInstallations(engine, changes),
        SqlCredentials(engine, cipher, changes),
        SqlOAuthStates(engine, cipher),
        changed,
    )
    await engine.dispose()


async def apply(stores: Stores, body: dict[str, object]) -> bool:
    event = LifecycleEvent.model_validate(body)
    # As verified by the lifecycle token, which monday signs for the event's own account.
    outcome = await LifecycleService(stores.installations).handle(
        body, event, token_account_id=event.data.account_id
    )
    return outcome.replayed


async def count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def test_lifecycle_is_recorded_once_and_applied(stores: Stores) -> None:
    get = stores.installations.get
    assert await get(ACCOUNT) is None
    body = event("install")
    assert await apply(stores, body) is False
    first = await get(ACCOUNT)
    assert first is not None
    assert first.installed and first.installer_user_id == "11"
    assert first.version == body["data"]["version_data"]
    assert first.updated_at is not None and first.updated_at.tzinfo is not None

    assert await apply(stores, body) is True
    assert await get(ACCOUNT) == first  # a replay changes nothing, not even the revision
    assert await count(stores.engine, lifecycle_events) == 1

    await apply(stores, event("app_subscription_renewed", subscription={"days_left": 9}))
    renewed = await get(ACCOUNT)
    assert renewed is not None
    assert renewed.subscription == {"days_left": 9}
    assert renewed.last_event_type == "app_subscription_renewed"
    assert renewed.revision > first.revision


async def test_credentials_round_trip_encrypted(stores: Stores) -> None:
    store = stores.credentials
    expires = datetime.now(UTC) + timedelta(hours=1)
    await store.put(
        account_id=ACCOUNT,
        user_id="12",
        kind="oauth",
        secret="access-1-wxyz",
        refresh_secret="refresh-1",
        expires_at=expires,
        scope="me:read",
    )
    got = await store.get(ACCOUNT, "12", "oauth")
    assert got is not None
    assert (got.secret, got.refresh_secret, got.last4, got.scope) == (
        "access-1-wxyz",
        "refresh-1",
        "wxyz",
        "me:read",
    )
    assert got.expires_at is not None
    assert abs((got.expires_at - expires).total_seconds()) < 1
    assert await store.get(ACCOUNT, "12", "api_key") is None
    async with stores.engine.connect() as conn:
        stored = (await conn.execute(select(credentials.c.secret_encrypted))).scalar_one()
    assert "access-1" not in stored
    assert stores.cipher.decrypt(stored) == "access-1-wxyz"

    # Storing again replaces (one row per owner and kind) and clears needs_reconnect.
    await store.mark_needs_reconnect(ACCOUNT, "12", "oauth")
    flagged = await store.get(ACCOUNT, "12", "oauth")
    assert flagged is not None and flagged.needs_reconnect
    await store.put(account_id=ACCOUNT, user_id="12", kind="oauth", secret="access-2")
    again = await store.get(ACCOUNT, "12", "oauth")
    assert again is not None
    assert (again.secret, again.refresh_secret, again.needs_reconnect) == ("access-2", None, False)
    assert await count(stores.engine, credentials) == 1
    assert [s.last4 for s in await store.list(ACCOUNT)] == ["ss-2"]

    assert await store.delete(ACCOUNT, "12", "oauth") is True
    assert await store.delete(ACCOUNT, "12", "oauth") is False


async def test_uninstall_deletes_the_accounts_credentials_only(stores: Stores) -> None:
    await apply(stores, event("install"))
    for account, user in ((ACCOUNT, "11"), (ACCOUNT, "12"), ("2002", "12")):
        await stores.credentials.put(
            account_id=account, user_id=user, kind="oauth", secret=f"t-{user}"
        )
    await apply(stores, event("uninstall"))
    assert [(s.account_id, s.user_id) for s in await stores.credentials.list("2002")] == [
        ("2002", "12")
    ]
    assert list(await stores.credentials.list(ACCOUNT)) == []
    installation = await stores.installations.get(ACCOUNT)
    assert installation is not None and not installation.installed


async def test_oauth_states_are_single_use_and_expire(stores: Stores) -> None:
    now = datetime.now(UTC)
    for digest in ("a" * 64, "b" * 64):
        await stores.states.create(
            state_digest=digest,
            account_id=ACCOUNT,
            user_id="12",
            code_verifier=None,
            now=now,
            expires_at=now + timedelta(minutes=10),
        )
    # Two callbacks race for the same state: exactly one wins.
    results = await asyncio.gather(
        stores.states.consume("a" * 64, now=now),
        stores.states.consume("a" * 64, now=now),
    )
    assert sorted(r is not None for r in results) == [False, True]
    late = now + timedelta(minutes=10, seconds=1)
    assert await stores.states.consume("b" * 64, now=late) is None
    assert await stores.states.consume("c" * 64, now=now) is None


async def test_a_verifier_no_key_decrypts_is_reported_not_raised(stores: Stores) -> None:
    now = datetime.now(UTC)
    other = SqlOAuthStates(stores.engine, CredentialCipher([Fernet.generate_key().decode()]))
    await other.create(
        state_digest="e" * 64,
        account_id=ACCOUNT,
        user_id="12",
        code_verifier="v" * 50,
        now=now,
        expires_at=now + timedelta(minutes=10),
    )
    state = await stores.states.consume("e" * 64, now=now)
    assert state is not None and state.verifier_unreadable and state.code_verifier is None


async def test_the_first_admin_claims_an_unknown_account_once(stores: Stores) -> None:
    claim = stores.installations.claim_installer
    first = await claim(ACCOUNT, "11")
    assert first.installed and first.installer_user_id == "11"
    second = await claim(ACCOUNT, "12")
    assert second.installer_user_id == "11"

    # A policy set before anyone claimed does not install; a claim afterwards does.
    policy_only = await stores.installations.set_sender_policy("3003", "installer")
    assert not policy_only.installed and policy_only.sender_policy == "installer"
    claimed = await claim("3003", "31")
    assert claimed.installed and claimed.installer_user_id == "31"
    assert claimed.sender_policy == "installer"

    # Once monday's lifecycle spoke, nobody claims (the uninstall named its installer, 11).
    await apply(stores, event("uninstall", account="4004"))
    refused = await claim("4004", "41")
    assert refused.installer_user_id == "11" and not refused.installed


async def test_refreshed_tokens_replace_only_the_refresh_token_they_came_from(
    stores: Stores,
) -> None:
    store = stores.credentials
    original = await store.put(
        account_id=ACCOUNT,
        user_id="12",
        kind="oauth",
        secret="access-1",
        refresh_secret="refresh-1",
    )
    swapped = await store.replace_oauth_tokens(
        original, access_token="access-2", refresh_token="refresh-2", expires_at=None, scope=None
    )
    assert swapped is not None and swapped.secret == "access-2"
    # A second worker holding the old credential loses: the row already moved on.
    stale = await store.replace_oauth_tokens(
        original, access_token="access-3", refresh_token="refresh-3", expires_at=None, scope=None
    )
    assert stale is None
    current = await store.get(ACCOUNT, "12", "oauth")
    assert current is not None
    assert (current.secret, current.refresh_secret) == ("access-2", "refresh-2")


async def test_every_change_moves_the_revision_and_tells_the_listeners(stores: Stores) -> None:
    """What a cache on another instance relies on: no write leaves the revision unchanged."""
    revision = stores.installations.revision
    assert await revision(ACCOUNT) is None
    seen: list[int | None] = [None]

    async def moved() -> None:
        now = await revision(ACCOUNT)
        assert now is not None and now != seen[-1], "this write did not move the revision"
        assert stores.changed[-1] == ACCOUNT
        seen.append(now)

    creds = stores.credentials
    # An account we never heard of has no revision (caches do not keep its facts).
    put = await creds.put(
        account_id=ACCOUNT, user_id="12", kind="oauth", secret="o", refresh_secret="r"
    )
    assert await revision(ACCOUNT) is None and stores.changed[-1] == ACCOUNT
    await stores.installations.set_sender_policy(ACCOUNT, "app")
    await moved()
    await stores.installations.claim_installer(ACCOUNT, "11")
    await moved()
    await creds.put(account_id=ACCOUNT, user_id="11", kind="api_key", secret="k")
    await moved()
    await creds.replace_oauth_tokens(
        put, access_token="o2", refresh_token="r2", expires_at=None, scope=None
    )
    await moved()
    await creds.mark_needs_reconnect(ACCOUNT, "12", "oauth")
    await moved()
    assert await creds.delete(ACCOUNT, "11", "api_key")
    await moved()
    await apply(stores, event("install"))
    await moved()
    await apply(stores, event("uninstall", timestamp="2026-07-02T10:00:00+00:00"))
    await moved()
    # A replay changes nothing, so it need not move anything.
    before = await revision(ACCOUNT)
    await apply(stores, event("install"))
    assert await revision(ACCOUNT) == before


async def test_the_cache_sees_a_change_made_by_another_store(stores: Stores) -> None:
    """Two instances: each its own stores and cache, one database."""
    cache = InstallationCache(stores.installations, stores.credentials, stores.changes)
    elsewhere = SqlCredentials(stores.engine, stores.cipher)  # another instance's store
    await apply(stores, event("install"))
    await stores.credentials.put(account_id=ACCOUNT, user_id="11", kind="api_key", secret="k-1")
    await cache.installation(ACCOUNT)
    cached = await cache.credential(ACCOUNT, "11", "api_key")
    assert cached is not None and cached.secret == "k-1"

    assert await elsewhere.delete(ACCOUNT, "11", "api_key")
    assert stores.changed.count(ACCOUNT) == 2  # this process was not told
    assert await cache.credential(ACCOUNT, "11", "api_key", check=True) is None


async def test_a_write_in_this_process_drops_the_entry_at_once(stores: Stores) -> None:
    """In-process invalidation, without relying on the revision check (frozen clock)."""
    cache = InstallationCache(
        stores.installations, stores.credentials, stores.changes, monotonic=lambda: 0.0
    )
    await apply(stores, event("install"))
    await stores.credentials.put(account_id=ACCOUNT, user_id="11", kind="api_key", secret="k-1")
    await cache.installation(ACCOUNT)
    assert await cache.credential(ACCOUNT, "11", "api_key") is not None
    assert await stores.credentials.delete(ACCOUNT, "11", "api_key")
    assert await cache.credential(ACCOUNT, "11", "api_key") is None


async def test_a_user_keeps_at_most_five_pending_oauth_states(stores: Stores) -> None:
    now = datetime(2026, 7, 1, tzinfo=UTC)
    for index in range(8):
        await stores.states.create(
            state_digest=f"member-{index}",
            account_id=ACCOUNT,
            user_id="12",
            code_verifier=None,
            now=now + timedelta(seconds=index),
            expires_at=now + timedelta(minutes=10),
        )
    await stores.states.create(
        state_digest="admin-0",
        account_id=ACCOUNT,
        user_id="11",
        code_verifier=None,
        now=now,
        expires_at=now + timedelta(minutes=10),
    )
    later = now + timedelta(seconds=30)
    assert await stores.states.consume("member-2", now=later) is None  # ended by newer ones
    for kept in ("member-3", "member-7", "admin-0"):
        assert await stores.states.consume(kept, now=later) is not None, kept
