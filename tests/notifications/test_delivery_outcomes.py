"""monday's failures never lose a row: sent, retry_scheduled, failed or unknown."""

from __future__ import annotations

import asyncio
from typing import Any

from server.appkeys import ENGINE
from server.installations.crypto import CredentialCipher
from server.storage.installations import SqlCredentials
from tests.conftest import ACCOUNT, ENCRYPTION_KEY
from tests.notifications.helpers import MEMBER, connect, fetch_row, install, notification


async def send(client: Any, mint: Any) -> dict[str, Any]:
    response = await client.post(
        "/notifications", json=notification(), headers={"Authorization": mint(user=MEMBER)}
    )
    assert response.status == 200, await response.text()
    data: dict[str, Any] = (await response.json())["data"]
    return data


async def send_with_fault(
    client: Any, fake: Any, mint: Any, fault: str, **options: Any
) -> dict[str, Any]:
    """The member's app token is connected, monday fails its next call with `fault`, send one."""
    await install(client)
    await connect(client, fake, user=MEMBER, kind="oauth")
    fake.fail_next(fault, **options)
    return await send(client, mint)


async def read(client: Any, row_id: int) -> dict[str, Any]:
    row = await fetch_row(client.app[ENGINE], row_id)
    assert row is not None
    return row


async def wait_for_status(client: Any, row_id: int, status: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        row = await read(client, row_id)
        if row["delivery_status"] == status or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.05)


async def test_rate_limited_row_is_retried_by_the_worker(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    row = await send_with_fault(
        monday_client, fake_monday.fake, mint, "rate_limit", retry_in_seconds=0.2
    )
    assert row["delivery_status"] == "retry_scheduled"
    assert row["next_attempt_at"] is not None
    assert row["last_error"]["code"]
    done = await wait_for_status(monday_client, row["id"], "sent")
    assert done["delivery_status"] == "sent"
    assert done["attempts"] == 2
    assert len(fake_monday.fake.bell(MEMBER)) == 1


async def test_complexity_budget_is_retried(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    row = await send_with_fault(
        monday_client, fake_monday.fake, mint, "complexity", retry_in_seconds=0.2
    )
    assert row["delivery_status"] == "retry_scheduled"
    assert (await wait_for_status(monday_client, row["id"], "sent"))["delivery_status"] == "sent"


async def test_server_error_is_unknown_without_retry(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    """Contract §10: monday may have executed it before the 500, so not `failed`."""
    row = await send_with_fault(monday_client, fake_monday.fake, mint, "server_error")
    assert row["delivery_status"] == "unknown"
    await asyncio.sleep(0.3)
    assert (await read(monday_client, row["id"]))["delivery_status"] == "unknown"


async def test_bad_gateway_is_unknown_and_not_retried(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    row = await send_with_fault(monday_client, fake_monday.fake, mint, "bad_gateway")
    assert row["delivery_status"] == "unknown"
    await asyncio.sleep(0.3)
    assert (await read(monday_client, row["id"]))["attempts"] == 1


async def test_rejected_credential_needs_reconnect(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    row = await send_with_fault(monday_client, fake_monday.fake, mint, "unauthorized")
    assert row["delivery_status"] == "failed"
    credential = await SqlCredentials(
        monday_client.app[ENGINE], CredentialCipher([ENCRYPTION_KEY])
    ).get(ACCOUNT, MEMBER, "oauth")
    assert credential is not None and credential.needs_reconnect
    # The next send does not use the rejected token any more.
    again = await monday_client.post(
        "/notifications", json=notification(), headers={"Authorization": mint(user=MEMBER)}
    )
    assert again.status == 409


async def test_invalid_user_fails_with_mondays_code(
    monday_client: Any, fake_monday: Any, mint: Any
) -> None:
    row = await send_with_fault(monday_client, fake_monday.fake, mint, "invalid_user")
    assert row["delivery_status"] == "failed"
    assert row["last_error"]["code"] == "InvalidUserIdException"
    assert row["last_error"]["monday_request_id"]
