"""Two instances on one database: a credential revoked through one is not used by the other.

Each app caches installation and credential facts for its send path
(`server/installations/facts.py`); a change made through the *other* app reaches this one
only through the database (`installations.revision`). Both engines; the PostgreSQL run is
the deployment the contract has in mind (several instances, one database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from server.app import create_app
from server.dev.fake_monday_records import dev_personal_key
from tests.conftest import INSTALLER, FakeMondayServer, make_settings
from tests.installations.helpers import auth, event, post_event
from tests.notifications.helpers import MEMBER, notification

KEY = dev_personal_key(INSTALLER)
Client = TestClient[Any, Any]


@pytest.fixture
async def pair(
    database_url: str, tmp_path: Path, fake_monday: FakeMondayServer
) -> AsyncIterator[tuple[Client, Client]]:
    """Apps A and B: the same settings and database, separate processes' worth of state."""
    settings = make_settings(
        tmp_path, database_url=database_url, monday_api_url=fake_monday.api_url
    )
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(
            TestClient(TestServer(create_app(settings), host="127.0.0.1"))
        )
        b = await stack.enter_async_context(
            TestClient(TestServer(create_app(settings), host="127.0.0.1"))
        )
        yield a, b


def key_uses(fake_monday: FakeMondayServer) -> int:
    """How many notifications monday received sent with the installer's API key."""
    return sum(
        1
        for r in fake_monday.fake.requests_to("/v2")
        if r.authorization == KEY and "create_notification" in str(r.body)
    )


async def send(client: Client, mint: Any) -> Any:
    return await client.post(
        "/notifications",
        json=notification(send_as="installer"),
        headers=auth(mint(user=MEMBER)),
    )


async def cached_by_a(pair: tuple[Client, Client], fake: FakeMondayServer, mint: Any) -> None:
    """Installed, the installer's key connected, and A has sent with it (so A caches it)."""
    a, _ = pair
    assert (await post_event(a, event("install"))).status == 200
    put = await a.put("/installation/api-key", json={"api_key": KEY}, headers=auth(mint()))
    assert put.status == 200, await put.text()
    first = await send(a, mint)
    assert first.status == 200, await first.text()
    assert (await first.json())["data"]["delivery_status"] == "sent"
    assert key_uses(fake) == 1


async def test_a_key_removed_through_b_is_not_used_by_a(
    pair: tuple[Client, Client], fake_monday: FakeMondayServer, mint: Any
) -> None:
    a, b = pair
    await cached_by_a(pair, fake_monday, mint)

    removed = await b.delete("/installation/api-key", headers=auth(mint()))
    assert removed.status == 204

    again = await send(a, mint)
    assert again.status == 409, await again.text()
    assert (await again.json())["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"
    assert key_uses(fake_monday) == 1


async def test_an_uninstall_received_by_b_stops_a_at_once(
    pair: tuple[Client, Client], fake_monday: FakeMondayServer, mint: Any
) -> None:
    a, b = pair
    await cached_by_a(pair, fake_monday, mint)

    later = event("uninstall", timestamp="2026-07-02T10:00:00.000+00:00")
    assert (await post_event(b, later)).status == 200

    again = await send(a, mint)
    assert again.status == 409, await again.text()
    assert (await again.json())["errors"][0]["extensions"]["code"] == "APP_NOT_INSTALLED"
    assert key_uses(fake_monday) == 1


async def test_a_key_replaced_through_b_is_the_one_a_sends_with(
    pair: tuple[Client, Client], fake_monday: FakeMondayServer, mint: Any
) -> None:
    """The delivery side too: A's resolver reloads the credential B replaced."""
    a, b = pair
    await cached_by_a(pair, fake_monday, mint)
    fresh = "a-second-key-of-the-installer"
    fake_monday.fake.add_token(fresh, INSTALLER, "1001", "personal")
    put = await b.put("/installation/api-key", json={"api_key": fresh}, headers=auth(mint()))
    assert put.status == 200, await put.text()

    again = await send(a, mint)
    assert (await again.json())["data"]["delivery_status"] == "sent"
    [last] = [
        r for r in fake_monday.fake.requests_to("/v2") if "create_notification" in str(r.body)
    ][-1:]
    assert last.authorization == fresh
    assert key_uses(fake_monday) == 1


async def test_a_key_connected_through_b_after_a_refused_is_used_by_a(
    pair: tuple[Client, Client], fake_monday: FakeMondayServer, mint: Any
) -> None:
    """A decides from its cache without a read, but never refuses on it: the key B connected
    since A's refusal (A cached "no key") is found and used."""
    a, b = pair
    assert (await post_event(a, event("install"))).status == 200
    refused = await send(a, mint)
    assert refused.status == 409, await refused.text()
    assert (await refused.json())["errors"][0]["extensions"]["code"] == "NO_CREDENTIAL"

    put = await b.put("/installation/api-key", json={"api_key": KEY}, headers=auth(mint()))
    assert put.status == 200, await put.text()

    again = await send(a, mint)
    assert again.status == 200, await again.text()
    assert (await again.json())["data"]["delivery_status"] == "sent"
    assert key_uses(fake_monday) == 1


async def test_a_keyed_send_decided_again_after_b_changed_the_account_still_reserves_its_key(
    pair: tuple[Client, Client], fake_monday: FakeMondayServer, mint: Any
) -> None:
    """A's first insert finds the revision moved (B replaced the key) and writes nothing; the
    insert made after the new decision must still reserve the request's Idempotency-Key, so
    the same request again is answered from it, not sent twice."""
    a, b = pair
    await cached_by_a(pair, fake_monday, mint)
    fresh = "a-second-key-of-the-installer"
    fake_monday.fake.add_token(fresh, INSTALLER, "1001", "personal")
    put = await b.put("/installation/api-key", json={"api_key": fresh}, headers=auth(mint()))
    assert put.status == 200, await put.text()

    headers = {**auth(mint(user=MEMBER)), "Idempotency-Key": "after-the-change"}
    body = notification(send_as="installer")
    first = await a.post("/notifications", json=body, headers=headers)
    assert first.status == 200, await first.text()
    again = await a.post("/notifications", json=body, headers=headers)
    assert again.status == 200, await again.text()
    assert (await again.json())["data"]["id"] == (await first.json())["data"]["id"]
    sent = [r for r in fake_monday.fake.requests_to("/v2") if r.authorization == fresh]
    assert len([r for r in sent if "create_notification" in str(r.body)]) == 1
