"""An admin's sender policy applies to rows decided before it changed (README "Who a
notification is sent as": a sender is never one the policy does not allow).

A row waits (a retry after monday's 429 here; `send_at` and `unknown` rows the same way) with
the sender the policy allowed when it was accepted; the admin then forbids that sender. When
the row goes out again, delivery refuses it: nothing more reaches monday.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update

from server.appkeys import ENGINE
from server.storage.tables import notifications
from tests.conftest import INSTALLER, Mint
from tests.installations.helpers import event, lifecycle_token
from tests.notifications.helpers import connect, notification
from tests.security.conftest import MEMBER, table


async def settled(client: Any) -> dict[str, Any]:
    while True:
        [current] = await table(client, "notifications")
        if current["delivery_status"] not in ("retry_scheduled", "queued", "sending"):
            return current
        await asyncio.sleep(0.02)


async def waiting_row(client: Any, fake: Any, mint: Mint, *, policy: str, send_as: str) -> None:
    """Installed by 11 with its API key and OAuth token; one row of member 12's waits for a
    retry after monday's 429, decided under `policy` as `send_as`."""
    answer = await client.post(
        "/monday/lifecycle", json=event("install"), headers={"Authorization": lifecycle_token()}
    )
    assert answer.status == 200
    await connect(client, fake, user=INSTALLER, kind="api_key")
    await connect(client, fake, user=INSTALLER, kind="oauth")
    admin = {"Authorization": mint(admin=True)}
    patched = await client.patch("/installation", json={"sender_policy": policy}, headers=admin)
    assert patched.status == 200
    fake.fail_next("rate_limit", retry_in_seconds=1)
    queued = await client.post(
        "/notifications", json=notification(), headers={"Authorization": mint(user=MEMBER)}
    )
    row = (await queued.json())["data"]
    assert (row["delivery_status"], row["sent_as"]) == ("retry_scheduled", send_as)
    assert len(fake.requests_to("/v2")) == 1


async def due_now(client: Any) -> None:
    async with client.app[ENGINE].begin() as conn:
        await conn.execute(update(notifications).values(next_attempt_at=None))


@pytest.mark.parametrize(
    ("first", "sent_as", "then"), [("installer", "installer", "app"), ("app", "app", "installer")]
)
async def test_a_waiting_row_is_not_sent_as_a_sender_the_policy_now_forbids(
    app: Any, fake_monday: Any, mint: Mint, first: str, sent_as: str, then: str
) -> None:
    fake = fake_monday.fake
    await waiting_row(app, fake, mint, policy=first, send_as=sent_as)
    admin = {"Authorization": mint(admin=True)}
    assert (await app.patch("/installation", json={"sender_policy": then}, headers=admin)).ok
    await due_now(app)
    final = await asyncio.wait_for(settled(app), timeout=30)
    assert final["delivery_status"] == "failed"
    assert final["last_error"]["code"] == "SENDER_NOT_ALLOWED"
    assert then in final["last_error"]["message"]
    assert len(fake.requests_to("/v2")) == 1  # only the first attempt, answered 429


async def test_a_policy_that_still_allows_the_sender_lets_the_row_go(
    app: Any, fake_monday: Any, mint: Mint
) -> None:
    fake = fake_monday.fake
    await waiting_row(app, fake, mint, policy="installer", send_as="installer")
    admin = {"Authorization": mint(admin=True)}
    patched = await app.patch(
        "/installation", json={"sender_policy": "app_then_installer"}, headers=admin
    )
    assert patched.ok
    await due_now(app)
    final = await asyncio.wait_for(settled(app), timeout=30)
    assert (final["delivery_status"], final["sent_as"]) == ("sent", "installer")
    assert len(fake.requests_to("/v2")) == 2
