"""Accounts are served fairly (contract §11) when rows are retried with their first request:
one account's backlog of `unknown` rows to ask monday again about does not hold back another
account's rows beyond one delivery batch. Over real HTTP against the fake monday, on SQLite
and PostgreSQL (`database_url` is parametrised)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from server.appkeys import ENGINE, SERVICES
from server.clock import frozen, utcnow
from server.installations.crypto import CredentialCipher
from server.storage.installations import SqlCredentials, upsert_installation
from tests.conftest import ACCOUNT, ENCRYPTION_KEY, FakeMondayServer
from tests.delivery.helpers import Client, row, server_on
from tests.notifications.helpers import MEMBER, OTHER_ACCOUNT, notification

OTHER_USER = "21"
A_BACKLOG = 40
CLAIM = 6


async def install_other_account(client: Client, fake: Any) -> None:
    """OTHER_ACCOUNT installed by OTHER_USER, whose OAuth credential it sends with."""
    async with client.app[ENGINE].begin() as connection:
        await upsert_installation(
            connection,
            OTHER_ACCOUNT,
            {
                "installer_user_id": OTHER_USER,
                "sender_policy": "app_then_installer",
                "installed": True,
                "last_event_type": "install",
            },
            now=utcnow(),
        )
    token = f"oauth-token-of-{OTHER_USER}"
    fake.add_user(OTHER_USER, OTHER_ACCOUNT, "Other user", "other@example.com")
    fake.add_token(token, OTHER_USER, OTHER_ACCOUNT, "oauth")
    await SqlCredentials(client.app[ENGINE], CredentialCipher([ENCRYPTION_KEY])).put(
        account_id=OTHER_ACCOUNT, user_id=OTHER_USER, kind="oauth", secret=token
    )


async def send(client: Client, token: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await client.post("/notifications", json=bodies, headers={"Authorization": token})
    assert response.status == 200, await response.text()
    data: list[dict[str, Any]] = (await response.json())["data"]
    return data


async def test_a_backlog_of_resends_does_not_hold_back_another_accounts_rows(
    tmp_path: Path, database_url: str, fake_monday: FakeMondayServer, mint: Any
) -> None:
    fake = fake_monday.fake
    # One row per request, so each `unknown` row is a request of its own to ask again.
    async with server_on(
        tmp_path, fake_monday, database_url=database_url, delivery_batch_size=1
    ) as client:
        worker = client.app[SERVICES].worker
        await worker.stop()  # the test runs the worker's passes itself
        worker.claim_limit = CLAIM
        await install_other_account(client, fake)

        # Account A: a backlog of rows monday ran but never answered for.
        fake.fail_next("execute_then_500", count=A_BACKLOG)
        a_rows = await send(
            client,
            mint(user=MEMBER),
            [notification(message=f"a{i}") for i in range(A_BACKLOG)],
        )
        assert {r["delivery_status"] for r in a_rows} == {"unknown"}
        # Account B: two such rows of its own, and one due later (scheduled), all due after
        # every row of A.
        other = mint(account=OTHER_ACCOUNT, user=OTHER_USER)
        fake.fail_next("execute_then_500", count=2)
        b_unknown = await send(
            client, other, [notification(recipient=OTHER_USER, message=f"b{i}") for i in range(2)]
        )
        assert {r["delivery_status"] for r in b_unknown} == {"unknown"}
        send_at = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        b_due = await send(
            client, other, [notification(recipient=OTHER_USER, message="b-due", send_at=send_at)]
        )
        assert b_due[0]["delivery_status"] == "scheduled"

        # Every row is due; one pass of the worker is one batch of CLAIM rows.
        with frozen(lambda: datetime.now(UTC) + timedelta(minutes=3)):
            handled = await worker.run_once()
        b_after = [await row(client, r["id"]) for r in b_unknown + b_due]
        a_after = [await row(client, r["id"]) for r in a_rows]

    assert [r["delivery_status"] for r in b_after] == ["sent"] * 3
    assert handled == CLAIM
    # Round robin: A's first resend, B's first resend and first send, then the second of
    # each of B's queues and of A's, then A's third.
    assert Counter(r["delivery_status"] for r in a_after) == {
        "sent": CLAIM - 3,
        "unknown": A_BACKLOG - CLAIM + 3,
    }
    assert sorted(n.text for n in fake.bell(OTHER_USER)) == ["b-due", "b0", "b1"]
    assert len(fake.bell(MEMBER)) == A_BACKLOG  # each ran once, at its first attempt
    assert {r["account_id"] for r in b_after} == {OTHER_ACCOUNT}
    assert {r["account_id"] for r in a_after} == {ACCOUNT}
